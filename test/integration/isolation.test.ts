/**
 * Tenant isolation and security at the RPC edge (SPEC §5), over gRPC and Connect: admin token,
 * tenant resolution (x-tenant-id and subdomain), API keys, keys bound to workers, a
 * cross-tenant matrix over every tenant RPC, and bad input that must never become INTERNAL.
 * Also runs in schema-per-tenant mode (vitest projects *-schema).
 */
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { type DescMessage, type MessageShape, fromBinary, toBinary, create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListWorkersRequestSchema, ListWorkersResponseSchema } from '../../src/gen/taskapi/v1/worker_pb.js';
import { CreateTaskRequestSchema } from '../../src/gen/taskapi/v1/task_pb.js';
import { PROTOCOLS, type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import { type Json, RpcError } from '../helpers/clients.js';

let t: TestApp;
/** A key bound to a worker (the actor of its writes). */
let A: TestTenant;
/** A plain key (no worker): writes name their creator. */
let B: TestTenant;

beforeAll(async () => {
  t = await startTestApp();
  A = await t.tenant({ withWorker: true });
  B = await t.tenant();
});
afterAll(async () => {
  await t?.stop();
});

/** The gRPC code name a call failed with, or 'OK'. */
async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'OK';
  } catch (err) {
    if (err instanceof RpcError) return err.code;
    throw err;
  }
}

/** The call fails with `code`; the error is shown when it does not. */
async function expectCode(call: Promise<unknown>, code: string): Promise<RpcError> {
  const err = await call.then(
    (res) => {
      throw new Error(`expected ${code}, got a response: ${JSON.stringify(res)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  expect((err as RpcError).code, (err as RpcError).message).toBe(code);
  return err as RpcError;
}

let handles = 0;
const uniqueHandle = (prefix: string) => `@${prefix}${++handles}x${Date.now().toString(36)}`;

/** A raw unary gRPC call (bytes in, bytes out) through grpc-js, with channel options. */
function rawGrpc(
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  channelOptions: grpc.ChannelOptions = {},
): Promise<{ ok: true; body: Buffer } | { ok: false; code: number; details: string }> {
  const client = new grpc.Client(`127.0.0.1:${t.port}`, grpc.credentials.createInsecure(), channelOptions);
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      metadata,
      { deadline: Date.now() + 10_000 },
      (err, res) => {
        client.close();
        if (err) resolve({ ok: false, code: err.code, details: err.details });
        else resolve({ ok: true, body: res! });
      },
    );
  });
}

const encode = <D extends DescMessage>(schema: D, init: Partial<MessageShape<D>> = {}) =>
  Buffer.from(toBinary(schema, create(schema, init as never)));

/** A raw Connect unary call over HTTP/1.1 (any body, any content type). */
async function rawConnect(
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string>,
): Promise<{ status: number; contentType: string; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${t.port}/${path}`, {
    method: 'POST',
    headers: { 'connect-protocol-version': '1', ...headers },
    body,
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
}

/**
 * A Connect JSON call over node:http, which (unlike fetch) sends the Host header it is given:
 * the tenant subdomain. Failures throw RpcError like the test clients.
 */
function connectWithHost(host: string, headers: Record<string, string>, service: string, method: string, request: Json): Promise<Json> {
  const body = JSON.stringify(request);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: t.port,
        method: 'POST',
        path: `/taskapi.v1.${service}/${method}`,
        headers: { ...headers, host, 'content-type': 'application/json', 'connect-protocol-version': '1', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (res.statusCode === 200) resolve(json);
          else reject(new RpcError(String(json.code).toUpperCase(), json.message ?? ''));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Connect error bodies are JSON whatever the codec: the code as a snake_case name. */
function connectErrorCode(res: { status: number; body: Buffer }): string {
  expect(res.status).toBeGreaterThanOrEqual(400);
  return (JSON.parse(res.body.toString('utf8')) as { code: string }).code;
}

/** The server still answers tenant calls on both protocols. */
async function expectServing(headers = A.headers): Promise<void> {
  for (const protocol of PROTOCOLS) {
    const res = await t.client(protocol, headers).call('WorkerService', 'ListWorkers', {});
    expect(Array.isArray(res.workers)).toBe(true);
  }
}

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    const client = (headers?: Record<string, string>) => t.client(protocol, headers);

    describe('TenantService', () => {
      it('requires the admin token: none, a wrong one or a tenant key are UNAUTHENTICATED', async () => {
        await expectCode(client().call('TenantService', 'ListTenants', {}), 'UNAUTHENTICATED');
        await expectCode(client({ authorization: 'Bearer wrong-token' }).call('TenantService', 'ListTenants', {}), 'UNAUTHENTICATED');
        await expectCode(client({ authorization: `Bearer ${t.adminToken}x` }).call('TenantService', 'ListTenants', {}), 'UNAUTHENTICATED');
        await expectCode(client({ authorization: t.adminToken }).call('TenantService', 'ListTenants', {}), 'UNAUTHENTICATED');
        await expectCode(client({ authorization: `Basic ${t.adminToken}` }).call('TenantService', 'ListTenants', {}), 'UNAUTHENTICATED');
        await expectCode(client(A.headers).call('TenantService', 'GetTenant', { id: A.id }), 'UNAUTHENTICATED');
        await expectCode(
          client({ authorization: `Bearer ${A.apiKey}` }).call('TenantService', 'CreateApiKey', { tenantId: A.id, name: 'escalate' }),
          'UNAUTHENTICATED',
        );
        await expectCode(client().call('TenantService', 'CreateTenant', { name: 'x', subdomain: `nope${protocol}` }), 'UNAUTHENTICATED');
        const admin = client({ authorization: `Bearer ${t.adminToken}` });
        const { tenant } = await admin.call('TenantService', 'GetTenant', { id: A.id });
        expect(tenant.id).toBe(A.id);
      });

      it('CreateApiKey returns a working secret; after RevokeApiKey the key is UNAUTHENTICATED', async () => {
        const admin = client({ authorization: `Bearer ${t.adminToken}` });
        const key = await admin.call('TenantService', 'CreateApiKey', { tenantId: B.id, name: `revoke-${protocol}` });
        expect(typeof key.secret).toBe('string');
        expect(key.secret.length).toBeGreaterThan(20);
        expect(key.apiKeyId).toMatch(/^[1-9]\d*$/);
        const headers = { 'x-tenant-id': B.id, authorization: `Bearer ${key.secret}` };
        await client(headers).call('WorkerService', 'ListWorkers', {});
        await admin.call('TenantService', 'RevokeApiKey', { tenantId: B.id, apiKeyId: key.apiKeyId });
        await expectCode(client(headers).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(client(headers).call('ProjectService', 'CreateProject', { name: 'after revoke' }), 'UNAUTHENTICATED');
        // The other keys of the tenant are untouched.
        await client(B.headers).call('WorkerService', 'ListWorkers', {});
        // A key id of tenant B cannot be revoked through tenant A.
        const other = await admin.call('TenantService', 'CreateApiKey', { tenantId: B.id, name: `keep-${protocol}` });
        await expectCode(admin.call('TenantService', 'RevokeApiKey', { tenantId: A.id, apiKeyId: other.apiKeyId }), 'NOT_FOUND');
        await client({ 'x-tenant-id': B.id, authorization: `Bearer ${other.secret}` }).call('WorkerService', 'ListWorkers', {});
      });
    });

    describe('tenant and key resolution', () => {
      it('no x-tenant-id and no tenant subdomain: UNAUTHENTICATED', async () => {
        await expectCode(client({ authorization: `Bearer ${A.apiKey}` }).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(client().call('TaskService', 'ListTasks', {}), 'UNAUTHENTICATED');
        await expectCode(client({ 'x-tenant-id': '', authorization: `Bearer ${A.apiKey}` }).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
      });

      it('an unknown tenant is NOT_FOUND, with or without a key', async () => {
        await expectCode(client({ 'x-tenant-id': '987654321' }).call('WorkerService', 'ListWorkers', {}), 'NOT_FOUND');
        await expectCode(
          client({ 'x-tenant-id': '987654321', authorization: `Bearer ${A.apiKey}` }).call('WorkerService', 'ListWorkers', {}),
          'NOT_FOUND',
        );
        await expectCode(
          client({ 'x-tenant-id': '9223372036854775807', authorization: `Bearer ${A.apiKey}` }).call('ProjectService', 'ListProjects', {}),
          'NOT_FOUND',
        );
      });

      it('a missing, garbage, forged or admin key is UNAUTHENTICATED', async () => {
        const as = (authorization?: string) =>
          client(authorization === undefined ? { 'x-tenant-id': A.id } : { 'x-tenant-id': A.id, authorization });
        await expectCode(as().call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as('Bearer').call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as('Bearer garbage').call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Bearer ${t.adminToken}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Basic ${A.apiKey}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        // Well-formed keys with a wrong secret, in this tenant and in one that does not exist.
        await expectCode(as(`Bearer tk_${A.id}_${'A'.repeat(43)}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Bearer tk_987654321_${'A'.repeat(43)}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Bearer ${A.apiKey.slice(0, -1)}${A.apiKey.endsWith('A') ? 'B' : 'A'}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Bearer ${A.apiKey}'; drop table api_keys; --`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        await expectCode(as(`Bearer ${'x'.repeat(4000)}`).call('WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
        // The real key still works (case-insensitive scheme).
        await as(`bearer ${A.apiKey}`).call('WorkerService', 'ListWorkers', {});
      });

      it("the key of tenant A with x-tenant-id of B is PERMISSION_DENIED, and B's key for A too", async () => {
        await expectCode(
          client({ 'x-tenant-id': B.id, authorization: `Bearer ${A.apiKey}` }).call('WorkerService', 'ListWorkers', {}),
          'PERMISSION_DENIED',
        );
        await expectCode(
          client({ 'x-tenant-id': A.id, authorization: `Bearer ${B.apiKey}` }).call('ProjectService', 'CreateProject', { name: 'sneaky' }),
          'PERMISSION_DENIED',
        );
        const { projects } = await client(A.headers).call('ProjectService', 'ListProjects', {});
        expect((projects ?? []).map((p: Json) => p.name)).not.toContain('sneaky');
      });

      it('a malformed x-tenant-id is INVALID_ARGUMENT, never INTERNAL', async () => {
        for (const bad of ['abc', '1abc', '-1', '0', '1.5', '1e3', '0x10', '99999999999999999999', '9223372036854775808', `${A.id}; drop table tenants`, "1' or '1'='1"]) {
          const err = await expectCode(
            client({ 'x-tenant-id': bad, authorization: `Bearer ${A.apiKey}` }).call('WorkerService', 'ListWorkers', {}),
            'INVALID_ARGUMENT',
          );
          expect(err.message).toContain('x-tenant-id');
        }
      });

      if (protocol === 'connect') {
        it('selects the tenant by the subdomain of the Host header', async () => {
          const hostOf = (sub: string) => `${sub}.localhost:${t.port}`;
          const auth = { authorization: `Bearer ${A.apiKey}` };
          const { worker } = await connectWithHost(hostOf(A.subdomain), auth, 'WorkerService', 'GetWorker', { id: A.workerId });
          expect(worker.id).toBe(A.workerId);
          // A longer host name works the same way (acme.tasks.example.com), in any case.
          const { workers } = await connectWithHost(`${A.subdomain.toUpperCase()}.tasks.example.com`, auth, 'WorkerService', 'ListWorkers', {});
          expect(workers.map((w: Json) => w.id)).toContain(A.workerId);
          await expectCode(connectWithHost(hostOf(B.subdomain), auth, 'WorkerService', 'ListWorkers', {}), 'PERMISSION_DENIED');
          await expectCode(connectWithHost(hostOf('no-such-tenant-here'), auth, 'WorkerService', 'ListWorkers', {}), 'NOT_FOUND');
          await expectCode(connectWithHost(hostOf(A.subdomain), {}, 'WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
          await expectCode(connectWithHost(`localhost:${t.port}`, auth, 'WorkerService', 'ListWorkers', {}), 'UNAUTHENTICATED');
          // x-tenant-id wins over the host.
          const viaHeader = await connectWithHost(hostOf(B.subdomain), A.headers, 'WorkerService', 'GetWorker', { id: A.workerId });
          expect(viaHeader.worker.id).toBe(A.workerId);
        });
      } else {
        it('selects the tenant by the subdomain of :authority', async () => {
          const auth = { authorization: `Bearer ${A.apiKey}` };
          const listWorkers = (authority: string, headers: Record<string, string>) =>
            rawGrpc('/taskapi.v1.WorkerService/ListWorkers', encode(ListWorkersRequestSchema), headers, { 'grpc.default_authority': authority });
          const res = await listWorkers(`${A.subdomain}.localhost:${t.port}`, auth);
          if (!res.ok) throw new Error(`ListWorkers failed: ${res.code} ${res.details}`);
          const ids = fromBinary(ListWorkersResponseSchema, res.body).workers.map((w) => w.id.toString());
          expect(ids).toContain(A.workerId);
          const denied = await listWorkers(`${B.subdomain}.localhost:${t.port}`, auth);
          expect(denied.ok ? 'OK' : denied.code).toBe(grpc.status.PERMISSION_DENIED);
          const unknown = await listWorkers(`no-such-tenant-here.localhost:${t.port}`, auth);
          expect(unknown.ok ? 'OK' : unknown.code).toBe(grpc.status.NOT_FOUND);
        });
      }
    });

    describe('a key bound to a worker', () => {
      it('makes that worker the creator; another explicit created_by_id is rejected and writes nothing', async () => {
        const a = client(A.headers);
        const { project } = await a.call('ProjectService', 'CreateProject', { name: `actor ${protocol}` });
        const { task } = await a.call('TaskService', 'CreateTask', { projectId: project.id, title: 'by the key worker' });
        expect(task.createdById).toBe(A.workerId);
        expect(task.createdBy?.id).toBe(A.workerId);
        const same = await a.call('TaskService', 'CreateTask', { projectId: project.id, title: 'explicit same', createdById: A.workerId });
        expect(same.task.createdById).toBe(A.workerId);

        const { worker: other } = await a.call('WorkerService', 'CreateWorker', { handle: uniqueHandle('other'), type: 'WORKER_TYPE_HUMAN' });
        const code = await codeOf(a.call('TaskService', 'CreateTask', { projectId: project.id, title: 'impersonation', createdById: other.id }));
        expect(['PERMISSION_DENIED', 'INVALID_ARGUMENT']).toContain(code);
        const code2 = await codeOf(
          a.call('ProjectService', 'CreateProjectWithTasks', { name: `impersonation ${protocol}`, taskTitles: ['x'], createdById: other.id }),
        );
        expect(['PERMISSION_DENIED', 'INVALID_ARGUMENT']).toContain(code2);
        const { tasks } = await a.call('TaskService', 'ListTasks', { projectId: project.id });
        expect(tasks.map((x: Json) => x.title).sort()).toEqual(['by the key worker', 'explicit same']);
        const { projects } = await a.call('ProjectService', 'ListProjects', { pageSize: 500 });
        expect(projects.map((p: Json) => p.name)).not.toContain(`impersonation ${protocol}`);

        // A key without a worker must name the creator.
        const { project: pb } = await client(B.headers).call('ProjectService', 'CreateProject', { name: `no actor ${protocol}` });
        await expectCode(client(B.headers).call('TaskService', 'CreateTask', { projectId: pb.id, title: 'who?' }), 'INVALID_ARGUMENT');
      });
    });

    describe('cross-tenant matrix', () => {
      interface Seed {
        worker: Json;
        project: Json;
        task: Json;
        subtask: Json;
      }
      let a: Seed;
      let bWorker: Json;
      let bProject: Json;
      let bTask: Json;
      let before: Json;
      // Fresh tenants with plain keys: their contents are exactly what this block creates.
      let MA: TestTenant;
      let MB: TestTenant;
      const asA = () => client(MA.headers);
      const asB = () => client(MB.headers);

      /** Everything of A's data the matrix could touch, as A reads it. */
      async function snapshotA(): Promise<Json> {
        const c = asA();
        return {
          worker: (await c.call('WorkerService', 'GetWorker', { id: a.worker.id })).worker,
          byHandle: (await c.call('WorkerService', 'GetWorker', { handle: a.worker.handle })).worker,
          project: (await c.call('ProjectService', 'GetProject', { id: a.project.id })).project,
          task: (await c.call('TaskService', 'GetTask', { id: a.task.id, view: 'TASK_VIEW_FULL' })).task,
          subtask: (await c.call('TaskService', 'GetTask', { id: a.subtask.id, view: 'TASK_VIEW_FULL' })).task,
          tasks: (await c.call('TaskService', 'ListTasks', { projectId: a.project.id })).tasks,
          workers: (await c.call('WorkerService', 'ListWorkers', { pageSize: 500 })).workers,
          projects: (await c.call('ProjectService', 'ListProjects', { pageSize: 500 })).projects,
        };
      }

      beforeAll(async () => {
        MA = await t.tenant();
        MB = await t.tenant();
        const c = asA();
        // In schema mode every tenant numbers its rows from 1: filler rows push A's ids past
        // B's, so that an id of A names nothing in B (in row mode ids are unique anyway).
        for (let i = 0; i < 2; i++) {
          const { worker: w } = await c.call('WorkerService', 'CreateWorker', { handle: uniqueHandle('filler') });
          const { project: p } = await c.call('ProjectService', 'CreateProject', { name: `filler ${i}` });
          await c.call('TaskService', 'CreateTask', { projectId: p.id, title: 'filler', createdById: w.id });
        }
        const { worker } = await c.call('WorkerService', 'CreateWorker', {
          handle: uniqueHandle('onlyina'),
          type: 'WORKER_TYPE_AGENT',
          capabilities: ['search'],
        });
        const { project } = await c.call('ProjectService', 'CreateProject', {
          name: `A secret ${protocol}`,
          description: 'belongs to A',
          metadata: { owner: 'A' },
        });
        const { task } = await c.call('TaskService', 'CreateTask', {
          projectId: project.id,
          title: 'A task',
          tags: ['a-only'],
          assigneeId: worker.id,
          createdById: worker.id,
          priority: 'TASK_PRIORITY_HIGH',
        });
        const { task: subtask } = await c.call('TaskService', 'CreateTask', {
          projectId: project.id,
          title: 'A subtask',
          parentTaskId: task.id,
          createdById: worker.id,
        });
        a = { worker, project, task, subtask };

        const b = asB();
        bWorker = (await b.call('WorkerService', 'CreateWorker', { handle: uniqueHandle('inb'), type: 'WORKER_TYPE_HUMAN' })).worker;
        bProject = (await b.call('ProjectService', 'CreateProject', { name: `B project ${protocol}` })).project;
        bTask = (await b.call('TaskService', 'CreateTask', { projectId: bProject.id, title: 'B task', createdById: bWorker.id })).task;
        before = await snapshotA();
        expect(before.task.subtasks.map((s: Json) => s.id)).toEqual([subtask.id]);
        // Precondition of every NOT_FOUND below: A's ids are not also B's ids.
        expect(bWorker.id).not.toBe(worker.id);
        expect(bProject.id).not.toBe(project.id);
        expect([task.id, subtask.id]).not.toContain(bTask.id);
      });

      it("WorkerService: A's worker is NOT_FOUND for B by id and by handle, and not listed", async () => {
        const b = asB();
        await expectCode(b.call('WorkerService', 'GetWorker', { id: a.worker.id }), 'NOT_FOUND');
        await expectCode(b.call('WorkerService', 'GetWorker', { handle: a.worker.handle }), 'NOT_FOUND');
        await expectCode(b.call('WorkerService', 'GetWorker', { handle: a.worker.handle.toUpperCase() }), 'NOT_FOUND');
        await expectCode(b.call('WorkerService', 'DeleteWorker', { id: a.worker.id }), 'NOT_FOUND');
        const { workers } = await b.call('WorkerService', 'ListWorkers', { pageSize: 500 });
        const ids = (workers ?? []).map((w: Json) => w.id);
        expect(ids).toContain(bWorker.id);
        expect(ids).not.toContain(a.worker.id);
        const agents = await b.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT', pageSize: 500 });
        expect((agents.workers ?? []).map((w: Json) => w.id)).not.toContain(a.worker.id);
      });

      it("ProjectService: A's project is NOT_FOUND for every call of B, and not listed", async () => {
        const b = asB();
        await expectCode(b.call('ProjectService', 'GetProject', { id: a.project.id }), 'NOT_FOUND');
        await expectCode(
          b.call('ProjectService', 'UpdateProject', { project: { id: a.project.id, name: 'pwned' }, updateMask: 'name' }),
          'NOT_FOUND',
        );
        await expectCode(
          b.call('ProjectService', 'UpdateProject', {
            project: { id: a.project.id, name: 'pwned', status: 'PROJECT_STATUS_ARCHIVED', metadata: { x: 1 } },
            expectedVersion: a.project.version,
          }),
          'NOT_FOUND',
        );
        await expectCode(b.call('ProjectService', 'DeleteProject', { id: a.project.id, force: true }), 'NOT_FOUND');
        await expectCode(b.call('ProjectService', 'DeleteProject', { id: a.project.id }), 'NOT_FOUND');
        await expectCode(b.call('ProjectService', 'CompleteProjectTasks', { projectId: a.project.id }), 'NOT_FOUND');
        const { projects } = await b.call('ProjectService', 'ListProjects', { pageSize: 500 });
        const ids = (projects ?? []).map((p: Json) => p.id);
        expect(ids).toContain(bProject.id);
        expect(ids).not.toContain(a.project.id);
        const active = await b.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ACTIVE', pageSize: 500 });
        expect((active.projects ?? []).map((p: Json) => p.id)).not.toContain(a.project.id);
      });

      it("ProjectService: B cannot create tasks for A's worker", async () => {
        const b = asB();
        const name = `B with A creator ${protocol}`;
        await expectCode(
          b.call('ProjectService', 'CreateProjectWithTasks', { name, taskTitles: ['one', 'two'], createdById: a.worker.id }),
          'FAILED_PRECONDITION',
        );
        const { projects } = await b.call('ProjectService', 'ListProjects', { pageSize: 500 });
        expect((projects ?? []).map((p: Json) => p.name)).not.toContain(name);
      });

      it("TaskService: A's tasks are NOT_FOUND for every call of B", async () => {
        const b = asB();
        for (const id of [a.task.id, a.subtask.id]) {
          await expectCode(b.call('TaskService', 'GetTask', { id }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'GetTask', { id, view: 'TASK_VIEW_FULL' }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'UpdateTask', { task: { id, title: 'pwned' }, updateMask: 'title' }), 'NOT_FOUND');
          await expectCode(
            b.call('TaskService', 'UpdateTask', { task: { id, status: 'TASK_STATUS_COMPLETED' }, updateMask: 'status', expectedVersion: '1' }),
            'NOT_FOUND',
          );
          await expectCode(b.call('TaskService', 'DeleteTask', { id }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'DeleteTask', { id, expectedVersion: '1' }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'AssignTask', { id, workerId: bWorker.id }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'AssignTask', { id }), 'NOT_FOUND');
        }
      });

      it("TaskService agent RPCs: A's workers, projects and tasks are NOT_FOUND for B, and never claimed by B", async () => {
        const b = asB();
        await expectCode(b.call('TaskService', 'ClaimTask', { workerId: a.worker.id }), 'NOT_FOUND');
        await expectCode(b.call('TaskService', 'ClaimTask', { workerId: bWorker.id, projectId: a.project.id }), 'NOT_FOUND');
        // A's task carries this tag; B's claim by tag finds nothing.
        expect((await b.call('TaskService', 'ClaimTask', { workerId: bWorker.id, tagsAll: ['a-only'] })).task).toBeUndefined();
        for (const id of [a.task.id, a.subtask.id]) {
          await expectCode(b.call('TaskService', 'HeartbeatTask', { id, leaseToken: '1' }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'ReleaseTask', { id, leaseToken: '1', status: 'TASK_STATUS_COMPLETED' }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'GetTaskTree', { id }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'GetTaskTree', { id, maxDepth: 1 }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'ListTaskEvents', { taskId: id }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'UpdateTask', { task: { id, title: 'pwned' }, updateMask: 'title', leaseToken: '1' }), 'NOT_FOUND');
          await expectCode(b.call('TaskService', 'AssignTask', { id, workerId: bWorker.id, leaseToken: '1' }), 'NOT_FOUND');
        }
        await expectCode(b.call('TaskService', 'ListTaskEvents', { projectId: a.project.id }), 'NOT_FOUND');
      });

      it("TaskService: references from B into A are FAILED_PRECONDITION and write nothing", async () => {
        const b = asB();
        await expectCode(b.call('TaskService', 'AssignTask', { id: bTask.id, workerId: a.worker.id }), 'FAILED_PRECONDITION');
        await expectCode(b.call('TaskService', 'CreateTask', { projectId: a.project.id, title: 'into A', createdById: bWorker.id }), 'FAILED_PRECONDITION');
        await expectCode(
          b.call('TaskService', 'CreateTask', { projectId: bProject.id, title: 'A assignee', createdById: bWorker.id, assigneeId: a.worker.id }),
          'FAILED_PRECONDITION',
        );
        await expectCode(b.call('TaskService', 'CreateTask', { projectId: bProject.id, title: 'A creator', createdById: a.worker.id }), 'FAILED_PRECONDITION');
        await expectCode(
          b.call('TaskService', 'CreateTask', { projectId: bProject.id, title: 'A parent', createdById: bWorker.id, parentTaskId: a.task.id }),
          'FAILED_PRECONDITION',
        );
        await expectCode(
          b.call('TaskService', 'UpdateTask', { task: { id: bTask.id, assigneeId: a.worker.id }, updateMask: 'assigneeId' }),
          'FAILED_PRECONDITION',
        );
        await expectCode(
          b.call('TaskService', 'UpdateTask', { task: { id: bTask.id, parentTaskId: a.task.id }, updateMask: 'parentTaskId' }),
          'FAILED_PRECONDITION',
        );
        const { task } = await b.call('TaskService', 'GetTask', { id: bTask.id });
        expect(task).toEqual(bTask);
        const { tasks } = await b.call('TaskService', 'ListTasks', { projectId: bProject.id, pageSize: 500 });
        expect(tasks.map((x: Json) => x.id)).toEqual([bTask.id]);
      });

      it("TaskService: ListTasks of B never returns A's tasks, whatever the filter", async () => {
        const b = asB();
        const ids = async (request: Json) => ((await b.call('TaskService', 'ListTasks', request)).tasks ?? []).map((x: Json) => x.id);
        expect(await ids({ projectId: a.project.id })).toEqual([]);
        expect(await ids({ projectId: a.project.id, view: 'TASK_VIEW_FULL' })).toEqual([]);
        expect(await ids({ assigneeId: a.worker.id })).toEqual([]);
        expect(await ids({ createdById: a.worker.id })).toEqual([]);
        expect(await ids({ parentTaskId: a.task.id })).toEqual([]);
        expect(await ids({ tagsAll: ['a-only'] })).toEqual([]);
        expect(await ids({ priority: 'TASK_PRIORITY_HIGH' })).toEqual([]);
        // Unfiltered lists in every order hold B's tasks only.
        const own = await ids({ pageSize: 500 });
        expect(own).toContain(bTask.id);
        for (const request of [{ orderBy: 'TASK_ORDER_BY_PRIORITY' }, { orderBy: 'TASK_ORDER_BY_DUE_DATE' }, { statuses: ['TASK_STATUS_PENDING'] }, { view: 'TASK_VIEW_FULL' }]) {
          const listed = await ids({ ...request, pageSize: 500 });
          expect(listed).not.toContain(a.task.id);
          expect(listed).not.toContain(a.subtask.id);
          expect([...listed].sort()).toEqual([...own].sort());
        }
      });

      it("a request_id A used is B's own: B never gets A's stored response", async () => {
        const requestId = `shared-request-${protocol}`;
        const request = { name: `idempotent ${protocol}`, requestId };
        const first = (await asA().call('ProjectService', 'CreateProject', request)).project;
        const again = (await asA().call('ProjectService', 'CreateProject', request)).project;
        expect(again).toEqual(first);
        const theirs = (await asB().call('ProjectService', 'CreateProject', request)).project;
        expect(theirs.id).not.toBe(first.id);
        await expectCode(asB().call('ProjectService', 'GetProject', { id: first.id }), 'NOT_FOUND');
        expect((await asB().call('ProjectService', 'GetProject', { id: theirs.id })).project).toEqual(theirs);
        await asA().call('ProjectService', 'DeleteProject', { id: first.id });
        await asB().call('ProjectService', 'DeleteProject', { id: theirs.id });
      });

      it("a page token of A's list does not open A's rows to B", async () => {
        const page = await asA().call('TaskService', 'ListTasks', { projectId: a.project.id, pageSize: 1 });
        expect(page.nextPageToken).toBeTruthy();
        const code = await codeOf(asB().call('TaskService', 'ListTasks', { projectId: a.project.id, pageSize: 1, pageToken: page.nextPageToken }));
        if (code === 'OK') {
          const res = await asB().call('TaskService', 'ListTasks', { projectId: a.project.id, pageSize: 1, pageToken: page.nextPageToken });
          expect(res.tasks ?? []).toEqual([]);
        } else {
          expect(code).toBe('INVALID_ARGUMENT');
        }
      });

      it("A's data is unchanged afterwards (same versions, same fields)", async () => {
        const after = await snapshotA();
        expect(after).toEqual(before);
        expect(after.task.version).toBe(a.task.version);
        expect(after.project.version).toBe(a.project.version);
        expect(after.task.assigneeId).toBe(a.worker.id);
        expect(after.task.status ?? 'TASK_STATUS_PENDING').toBe('TASK_STATUS_PENDING');
      });
    });

    describe('hostile strings are stored and returned verbatim', () => {
      const HOSTILE = [
        "'; drop table tasks; --",
        "Robert'); DROP TABLE tasks;--",
        '🚀 ship it 👩🏽‍💻🏳️‍🌈',
        'مرحبا بالعالم שלום',
        '\u202eevil\u202c',
        'e\u0301 Z\u0324\u0354\u0367\u0311a\u0308\u0356\u032d',
        '\\',
        'back\\slash \\n \\u0000 \\x00',
        '%_',
        '100% _done_ like %',
        '$1 $$ ${x} `cmd`',
        '"quoted" {"json": true} [1]',
        '\u2028\u2029\t tab',
        ':tenant_id */ /* -- ',
      ];

      it('in task title, description and tags; project name, description and metadata; worker capabilities', async () => {
        const c = client(A.headers);
        const metadata: Json = {};
        HOSTILE.forEach((s, i) => {
          metadata[s] = s;
          metadata[`v${i}`] = [s, { [s]: s }];
        });
        const name = `${HOSTILE[0]} ${protocol}`;
        const description = HOSTILE.join('\n');
        const { project } = await c.call('ProjectService', 'CreateProject', { name, description, metadata });
        expect(project.name).toBe(name);
        expect(project.description).toBe(description);
        expect(project.metadata).toEqual(metadata);
        const got = (await c.call('ProjectService', 'GetProject', { id: project.id })).project;
        expect(got.name).toBe(name);
        expect(got.description).toBe(description);
        expect(got.metadata).toEqual(metadata);

        const { worker } = await c.call('WorkerService', 'CreateWorker', { handle: uniqueHandle('hostile'), type: 'WORKER_TYPE_AGENT', capabilities: HOSTILE });
        expect(worker.capabilities).toEqual(HOSTILE);
        expect((await c.call('WorkerService', 'GetWorker', { id: worker.id })).worker.capabilities).toEqual(HOSTILE);

        for (const s of HOSTILE) {
          const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: s, description: s, tags: [s, 'x'] });
          expect(task.title).toBe(s);
          expect(task.description).toBe(s);
          expect(task.tags).toEqual([s, 'x']);
          const { task: read } = await c.call('TaskService', 'GetTask', { id: task.id });
          expect(read.title).toBe(s);
          expect(read.description).toBe(s);
          expect(read.tags).toEqual([s, 'x']);
          // The tag is a bound value: it matches exactly itself, and LIKE wildcards match nothing more.
          const { tasks } = await c.call('TaskService', 'ListTasks', { projectId: project.id, tagsAll: [s] });
          expect(tasks.map((x: Json) => x.id)).toEqual([task.id]);
        }
        const { tasks } = await c.call('TaskService', 'ListTasks', { projectId: project.id, pageSize: 500 });
        expect(tasks.map((x: Json) => x.title)).toEqual(HOSTILE);

        // Updates too.
        const first = tasks[0];
        const updated = await c.call('TaskService', 'UpdateTask', {
          task: { id: first.id, title: HOSTILE[1], description: HOSTILE[2], tags: [HOSTILE[3]] },
          updateMask: 'title,description,tags',
        });
        expect(updated.task.title).toBe(HOSTILE[1]);
        expect(updated.task.description).toBe(HOSTILE[2]);
        expect(updated.task.tags).toEqual([HOSTILE[3]]);
        const renamed = await c.call('ProjectService', 'UpdateProject', {
          project: { id: project.id, name: HOSTILE[1], description: HOSTILE[4], metadata: { [HOSTILE[5]!]: HOSTILE[6] } },
          updateMask: 'name,description,metadata',
        });
        expect(renamed.project.name).toBe(HOSTILE[1]);
        expect(renamed.project.description).toBe(HOSTILE[4]);
        expect(renamed.project.metadata).toEqual({ [HOSTILE[5]!]: HOSTILE[6] });
        // And the tables are all still there.
        await expectServing();
      });

      it('a NUL character in any string field is INVALID_ARGUMENT and writes nothing', async () => {
        const c = client(A.headers);
        const NUL = 'a\u0000b';
        const { project } = await c.call('ProjectService', 'CreateProject', { name: `nul target ${protocol}` });
        const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'nul target' });
        const attempts: [string, string, Json][] = [
          ['TaskService', 'CreateTask', { projectId: project.id, title: NUL }],
          ['TaskService', 'CreateTask', { projectId: project.id, title: 'ok', description: NUL }],
          ['TaskService', 'CreateTask', { projectId: project.id, title: 'ok', tags: [NUL] }],
          ['TaskService', 'CreateTask', { projectId: project.id, title: 'ok', requestId: NUL }],
          ['TaskService', 'UpdateTask', { task: { id: task.id, title: NUL }, updateMask: 'title' }],
          ['TaskService', 'UpdateTask', { task: { id: task.id, description: NUL }, updateMask: 'description' }],
          ['TaskService', 'UpdateTask', { task: { id: task.id, tags: ['ok', NUL] }, updateMask: 'tags' }],
          ['TaskService', 'ListTasks', { tagsAll: [NUL] }],
          ['ProjectService', 'CreateProject', { name: NUL }],
          ['ProjectService', 'CreateProject', { name: 'ok', description: NUL }],
          ['ProjectService', 'CreateProject', { name: 'ok', metadata: { k: NUL } }],
          ['ProjectService', 'CreateProject', { name: 'ok', metadata: { [NUL]: 'v' } }],
          ['ProjectService', 'CreateProject', { name: 'ok', metadata: { deep: [{ k: NUL }] } }],
          ['ProjectService', 'CreateProjectWithTasks', { name: 'ok', taskTitles: ['fine', NUL] }],
          ['ProjectService', 'UpdateProject', { project: { id: project.id, name: NUL }, updateMask: 'name' }],
          ['ProjectService', 'UpdateProject', { project: { id: project.id, metadata: { k: NUL } }, updateMask: 'metadata' }],
          ['WorkerService', 'CreateWorker', { handle: `@nul${protocol}\u0000`, type: 'WORKER_TYPE_AGENT' }],
          ['WorkerService', 'CreateWorker', { handle: uniqueHandle('nulcap'), type: 'WORKER_TYPE_AGENT', capabilities: [NUL] }],
          ['WorkerService', 'CreateWorker', { handle: uniqueHandle('nulmail'), email: `a\u0000@example.com` }],
          ['WorkerService', 'GetWorker', { handle: `@x\u0000` }],
        ];
        for (const [service, method, request] of attempts) {
          const err = await codeOf(c.call(service, method, request));
          expect(err, `${method} ${JSON.stringify(request)}`).toBe('INVALID_ARGUMENT');
        }
        const { task: same } = await c.call('TaskService', 'GetTask', { id: task.id });
        expect(same).toEqual(task);
        const { project: sameProject } = await c.call('ProjectService', 'GetProject', { id: project.id });
        expect(sameProject).toEqual(project);
        const { tasks } = await c.call('TaskService', 'ListTasks', { projectId: project.id });
        expect(tasks.map((x: Json) => x.id)).toEqual([task.id]);
        await expectServing();
      });
    });
  });
}

describe('bad input at the edge', () => {
  const JSON_HEADERS = () => ({ 'content-type': 'application/json', ...A.headers });

  it('Connect JSON: metadata that is not an object is INVALID_ARGUMENT', async () => {
    for (const metadata of ['5', '[1]', '"text"', 'true', '[{"a":1}]']) {
      const res = await rawConnect('taskapi.v1.ProjectService/CreateProject', `{"name":"bad metadata","metadata":${metadata}}`, JSON_HEADERS());
      expect(connectErrorCode(res), `metadata: ${metadata}`).toBe('invalid_argument');
    }
    // null is the JSON form of an unset Struct.
    const ok = await rawConnect('taskapi.v1.ProjectService/CreateProject', '{"name":"null metadata","metadata":null}', JSON_HEADERS());
    expect(ok.status).toBe(200);
    await expectServing();
  });

  it('Connect JSON: malformed bodies and wrongly typed fields are INVALID_ARGUMENT', async () => {
    const bodies = [
      '{"name": ',
      '{name: "x"}',
      'not json at all',
      '{"name":"x"}}',
      '',
      '[]',
      '"a string"',
      '{"name":"x","noSuchField":1}',
      '{"name":5}',
      '{"name":"x","status":"NO_SUCH_STATUS"}',
      '{"name":"x","status":99}',
      '{"name":"x","metadata":{"a":1},"requestId":{}}',
      '\u0000\u0001\u0002',
    ];
    for (const body of bodies) {
      const res = await rawConnect('taskapi.v1.ProjectService/CreateProject', body, JSON_HEADERS());
      expect(connectErrorCode(res), `body ${JSON.stringify(body)}`).toBe('invalid_argument');
    }
    for (const body of [
      '{"projectId":"abc","title":"x"}',
      '{"projectId":"99999999999999999999","title":"x"}',
      '{"projectId":"1.5","title":"x"}',
      '{"projectId":"1","title":"x","dueDate":"yesterday"}',
      '{"projectId":"1","title":"x","tags":"not-a-list"}',
      '{"projectId":"1","title":"x","priority":"TASK_PRIORITY_URGENT"}',
    ]) {
      const res = await rawConnect('taskapi.v1.TaskService/CreateTask', body, JSON_HEADERS());
      expect(connectErrorCode(res), `body ${body}`).toBe('invalid_argument');
    }
    await expectServing();
  });

  it('malformed protobuf bytes over Connect and gRPC are refused as bad input, never INTERNAL/UNKNOWN', async () => {
    const garbage = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // wire type 7, endless varint
      Buffer.from([0x12, 0x40, 0x41]), // field 2 (title), 64 bytes announced, 1 sent
      Buffer.from([0x08]), // field 1 varint without its value
      Buffer.from('this is not protobuf at all, just text that is not a message'),
    ];
    for (const body of garbage) {
      const res = await rawConnect('taskapi.v1.TaskService/CreateTask', body, { 'content-type': 'application/proto', ...A.headers });
      const code = connectErrorCode(res);
      expect(code, `connect, ${body.toString('hex')}`).not.toMatch(/^(internal|unknown)$/);
      expect(code).toBe('invalid_argument');

      const grpcRes = await rawGrpc('/taskapi.v1.TaskService/CreateTask', body, A.headers);
      expect(grpcRes.ok, `grpc, ${body.toString('hex')}`).toBe(false);
      if (!grpcRes.ok) {
        expect([grpc.status.INTERNAL, grpc.status.UNKNOWN], `grpc, ${body.toString('hex')}: ${grpcRes.details}`).not.toContain(grpcRes.code);
        expect(grpcRes.code).toBe(grpc.status.INVALID_ARGUMENT);
      }
    }
    // A well-formed binary request still works on both paths.
    const { project } = await t.client('connect', A.headers).call('ProjectService', 'CreateProject', { name: 'binary target' });
    const ok = await rawGrpc(
      '/taskapi.v1.TaskService/CreateTask',
      encode(CreateTaskRequestSchema, { projectId: BigInt(project.id), title: 'binary ok' }),
      A.headers,
    );
    expect(ok.ok ? 'OK' : `${ok.code} ${ok.details}`).toBe('OK');
    const okConnect = await rawConnect(
      'taskapi.v1.TaskService/CreateTask',
      encode(CreateTaskRequestSchema, { projectId: BigInt(project.id), title: 'binary ok 2' }),
      { 'content-type': 'application/proto', ...A.headers },
    );
    expect(okConnect.status).toBe(200);
    await expectServing();
  });

  it('an oversized header is refused, and the server keeps serving', async () => {
    const big = 'a'.repeat(100 * 1024);
    // HTTP/1.1: 431 Request Header Fields Too Large.
    const res = await fetch(`http://127.0.0.1:${t.port}/taskapi.v1.WorkerService/ListWorkers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', ...A.headers, 'x-big': big },
      body: '{}',
    }).then(
      (r) => r.status,
      (err: Error) => `network error: ${err.message} ${String((err.cause as Error | undefined)?.message ?? '')}`,
    );
    expect(res).toBe(431);
    // gRPC (HTTP/2): the call fails with a status, not a hang.
    const grpcRes = await rawGrpc('/taskapi.v1.WorkerService/ListWorkers', encode(ListWorkersRequestSchema), { ...A.headers, 'x-big': big });
    expect(grpcRes.ok).toBe(false);
    if (!grpcRes.ok) expect(grpcRes.code).not.toBe(grpc.status.OK);
    await expectServing();
  });

  it('an oversized message is RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    // Connect only: over gRPC the refused stream stays open on the server until the session
    // ends, which holds the graceful stop of this file's app for its whole grace period.
    const description = 'x'.repeat(5 * 1024 * 1024);
    const code = await codeOf(t.client('connect', A.headers).call('ProjectService', 'CreateProject', { name: 'huge', description }));
    expect(code).toBe('RESOURCE_EXHAUSTED');
    await expectServing();
  });
});
