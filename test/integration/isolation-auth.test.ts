/**
 * Who may call (SPEC §5), over gRPC and Connect: the admin token of TenantService, API keys
 * and their revocation, tenant resolution (x-tenant-id, the subdomain of Host or :authority),
 * and keys bound to a worker. What another tenant can reach: isolation-matrix.test.ts.
 * Also runs in schema-per-tenant mode (vitest projects *-schema).
 */
import { fromBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListWorkersRequestSchema, ListWorkersResponseSchema } from '../../src/gen/taskapi/v1/worker_pb.js';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant, tenantHeaders } from '../helpers/app.js';
import { WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { connectWithHost, encode, rawGrpc } from '../helpers/raw.js';

let t: TestApp;
/** A key bound to a worker (the actor of its writes). */
let A: TestTenant<true>;
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

let handles = 0;
const uniqueHandle = (prefix: string) => `@${prefix}${++handles}x${Date.now().toString(36)}`;

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    const client = (headers?: Record<string, string>) => t.client(protocol, headers);

    describe('TenantService', () => {
      it('requires the admin token: none, a wrong one or a tenant key are UNAUTHENTICATED', async () => {
        for (const authorization of [
          undefined,
          'Bearer wrong-token',
          `Bearer ${t.adminToken}x`,
          t.adminToken,
          `Basic ${t.adminToken}`,
          `Bearer ${A.apiKey}`,
        ]) {
          const c = client(authorization === undefined ? {} : { authorization });
          await expectRpcError(c.TenantService.listTenants({}), Code.Unauthenticated);
          await expectRpcError(
            c.TenantService.createApiKey({ tenantId: A.id, name: 'escalate' }),
            Code.Unauthenticated,
          );
        }
        await expectRpcError(client(A.headers).TenantService.getTenant({ id: A.id }), Code.Unauthenticated);
        await expectRpcError(
          client().TenantService.createTenant({ name: 'x', subdomain: `nope${protocol}` }),
          Code.Unauthenticated,
        );
        const admin = client({ authorization: `Bearer ${t.adminToken}` });
        const { tenant } = await admin.TenantService.getTenant({ id: A.id });
        expect(tenant.id).toBe(A.id);
      });

      it('CreateApiKey returns a working secret; after RevokeApiKey the key is UNAUTHENTICATED', async () => {
        const admin = client({ authorization: `Bearer ${t.adminToken}` });
        const key = await admin.TenantService.createApiKey({ tenantId: B.id, name: `revoke-${protocol}` });
        expect(key.secret.length).toBeGreaterThan(20);
        expect(key.apiKeyId).toBeGreaterThan(0n);
        const headers = tenantHeaders(B.id, key.secret);
        await client(headers).WorkerService.listWorkers({});
        await admin.TenantService.revokeApiKey({ tenantId: B.id, apiKeyId: key.apiKeyId });
        await expectRpcError(client(headers).WorkerService.listWorkers({}), Code.Unauthenticated);
        await expectRpcError(
          client(headers).ProjectService.createProject({ name: 'after revoke' }),
          Code.Unauthenticated,
        );
        // The other keys of the tenant are untouched.
        await client(B.headers).WorkerService.listWorkers({});
        // A key id of tenant B cannot be revoked through tenant A.
        const other = await admin.TenantService.createApiKey({ tenantId: B.id, name: `keep-${protocol}` });
        await expectRpcError(
          admin.TenantService.revokeApiKey({ tenantId: A.id, apiKeyId: other.apiKeyId }),
          Code.NotFound,
        );
        await client(tenantHeaders(B.id, other.secret)).WorkerService.listWorkers({});
      });
    });

    describe('tenant and key resolution', () => {
      const key = () => `Bearer ${A.apiKey}`;

      it('no x-tenant-id and no tenant subdomain: UNAUTHENTICATED', async () => {
        await expectRpcError(client({ authorization: key() }).WorkerService.listWorkers({}), Code.Unauthenticated);
        await expectRpcError(client().TaskService.listTasks({}), Code.Unauthenticated);
        await expectRpcError(
          client({ 'x-tenant-id': '', authorization: key() }).WorkerService.listWorkers({}),
          Code.Unauthenticated,
        );
      });

      it('an unknown tenant is NOT_FOUND, with or without a key', async () => {
        await expectRpcError(
          client({ 'x-tenant-id': '987654321' }).WorkerService.listWorkers({}),
          Code.NotFound,
          'tenant',
        );
        await expectRpcError(
          client({ 'x-tenant-id': '987654321', authorization: key() }).WorkerService.listWorkers({}),
          Code.NotFound,
        );
        await expectRpcError(
          client({ 'x-tenant-id': '9223372036854775807', authorization: key() }).ProjectService.listProjects({}),
          Code.NotFound,
        );
      });

      it('a missing, garbage, forged or admin key is UNAUTHENTICATED', async () => {
        const as = (authorization?: string) =>
          client(
            authorization === undefined
              ? { 'x-tenant-id': String(A.id) }
              : { 'x-tenant-id': String(A.id), authorization },
          );
        const flipped = `${A.apiKey.slice(0, -1)}${A.apiKey.endsWith('A') ? 'B' : 'A'}`;
        for (const authorization of [
          undefined,
          'Bearer',
          'Bearer garbage',
          `Bearer ${t.adminToken}`,
          `Basic ${A.apiKey}`,
          // Well-formed keys with a wrong secret, in this tenant and in one that does not exist.
          `Bearer tk_${A.id}_${'A'.repeat(43)}`,
          `Bearer tk_987654321_${'A'.repeat(43)}`,
          `Bearer ${flipped}`,
          `Bearer ${A.apiKey}'; drop table api_keys; --`,
          `Bearer ${'x'.repeat(4000)}`,
        ]) {
          await expectRpcError(as(authorization).WorkerService.listWorkers({}), Code.Unauthenticated);
        }
        // The real key still works (case-insensitive scheme).
        await as(`bearer ${A.apiKey}`).WorkerService.listWorkers({});
      });

      it("the key of tenant A with x-tenant-id of B is PERMISSION_DENIED, and B's key for A too", async () => {
        await expectRpcError(
          client({ 'x-tenant-id': String(B.id), authorization: key() }).WorkerService.listWorkers({}),
          Code.PermissionDenied,
        );
        await expectRpcError(
          client(tenantHeaders(A.id, B.apiKey)).ProjectService.createProject({ name: 'sneaky' }),
          Code.PermissionDenied,
        );
        const { projects } = await client(A.headers).ProjectService.listProjects({});
        expect(projects.map((p) => p.name)).not.toContain('sneaky');
      });

      it('a malformed x-tenant-id is INVALID_ARGUMENT naming it, never INTERNAL', async () => {
        for (const bad of [
          'abc',
          '1abc',
          '-1',
          '0',
          '1.5',
          '1e3',
          '0x10',
          '99999999999999999999',
          '9223372036854775808',
          `${A.id}; drop table tenants`,
          "1' or '1'='1",
        ]) {
          await expectRpcError(
            client({ 'x-tenant-id': bad, authorization: key() }).WorkerService.listWorkers({}),
            Code.InvalidArgument,
            'x-tenant-id',
          );
        }
      });

      if (protocol === 'connect') {
        it('selects the tenant by the subdomain of the Host header', async () => {
          const hostOf = (sub: string) => `${sub}.localhost:${t.port}`;
          const auth = { authorization: key() };
          const call = (host: string, headers: Record<string, string>, method: string, request: unknown) =>
            connectWithHost(t.port, host, headers, `taskapi.v1.WorkerService/${method}`, request) as Promise<{
              worker?: { id: string };
              workers?: { id: string }[];
            }>;
          const getA = { id: String(A.workerId) };
          expect((await call(hostOf(A.subdomain), auth, 'GetWorker', getA)).worker?.id).toBe(String(A.workerId));
          // A longer host name works the same way (acme.tasks.example.com), in any case.
          const { workers } = await call(`${A.subdomain.toUpperCase()}.tasks.example.com`, auth, 'ListWorkers', {});
          expect(workers?.map((w) => w.id)).toContain(String(A.workerId));
          await expectRpcError(call(hostOf(B.subdomain), auth, 'ListWorkers', {}), Code.PermissionDenied);
          await expectRpcError(call(hostOf('no-such-tenant-here'), auth, 'ListWorkers', {}), Code.NotFound);
          await expectRpcError(call(hostOf(A.subdomain), {}, 'ListWorkers', {}), Code.Unauthenticated);
          await expectRpcError(call(`localhost:${t.port}`, auth, 'ListWorkers', {}), Code.Unauthenticated);
          // x-tenant-id wins over the host.
          expect((await call(hostOf(B.subdomain), A.headers, 'GetWorker', getA)).worker?.id).toBe(String(A.workerId));
        });
      } else {
        it('selects the tenant by the subdomain of :authority', async () => {
          const auth = { authorization: key() };
          const listWorkers = (authority: string) =>
            rawGrpc(t.port, '/taskapi.v1.WorkerService/ListWorkers', encode(ListWorkersRequestSchema), auth, {
              'grpc.default_authority': authority,
            });
          const res = await listWorkers(`${A.subdomain}.localhost:${t.port}`);
          if (!res.ok) expect.fail(`ListWorkers failed: ${res.code} ${res.details}`);
          expect(fromBinary(ListWorkersResponseSchema, res.body).workers.map((w) => w.id)).toContain(A.workerId);
          const denied = await listWorkers(`${B.subdomain}.localhost:${t.port}`);
          expect(denied.ok ? 'OK' : denied.code).toBe(grpc.status.PERMISSION_DENIED);
          const unknown = await listWorkers(`no-such-tenant-here.localhost:${t.port}`);
          expect(unknown.ok ? 'OK' : unknown.code).toBe(grpc.status.NOT_FOUND);
        });
      }
    });

    describe('a key bound to a worker', () => {
      it('makes that worker the creator; another explicit created_by_id is rejected and writes nothing', async () => {
        const a = client(A.headers);
        const { project } = await a.ProjectService.createProject({ name: `actor ${protocol}` });
        const { task } = await a.TaskService.createTask({ projectId: project.id, title: 'by the key worker' });
        expect(task.createdById).toBe(A.workerId);
        expect(task.createdBy?.id).toBe(A.workerId);
        const same = await a.TaskService.createTask({
          projectId: project.id,
          title: 'explicit same',
          createdById: A.workerId,
        });
        expect(same.task.createdById).toBe(A.workerId);

        const { worker: other } = await a.WorkerService.createWorker({
          handle: uniqueHandle('other'),
          type: WorkerType.HUMAN,
        });
        const refused = [Code.PermissionDenied, Code.InvalidArgument];
        await expectRpcError(
          a.TaskService.createTask({ projectId: project.id, title: 'impersonation', createdById: other.id }),
          refused,
          'created_by_id',
        );
        await expectRpcError(
          a.ProjectService.createProjectWithTasks({
            name: `impersonation ${protocol}`,
            taskTitles: ['x'],
            createdById: other.id,
          }),
          refused,
          'created_by_id',
        );
        const { tasks } = await a.TaskService.listTasks({ projectId: project.id });
        expect(tasks.map((x) => x.title).sort()).toEqual(['by the key worker', 'explicit same']);
        const { projects } = await a.ProjectService.listProjects({ pageSize: 500 });
        expect(projects.map((p) => p.name)).not.toContain(`impersonation ${protocol}`);

        // A key without a worker must name the creator.
        const { project: pb } = await client(B.headers).ProjectService.createProject({ name: `no actor ${protocol}` });
        await expectRpcError(
          client(B.headers).TaskService.createTask({ projectId: pb.id, title: 'who?' }),
          Code.InvalidArgument,
          'created_by_id',
        );
      });
    });
  });
}
