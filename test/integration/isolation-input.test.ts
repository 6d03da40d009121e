/**
 * Input that must never hurt the service (SPEC §5), over gRPC and Connect: hostile strings are
 * stored and returned verbatim, NUL characters are refused everywhere, and malformed or
 * oversized requests at the edge get a client error code, never INTERNAL, and the server keeps
 * serving. Also runs in schema-per-tenant mode (vitest projects *-schema).
 */

import type { JsonObject } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateTaskRequestSchema } from '../../src/gen/taskapi/v1/task_pb.js';
import { ListWorkersRequestSchema } from '../../src/gen/taskapi/v1/worker_pb.js';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError, mask, workerByHandle, workerById } from '../helpers/expect-rpc.js';
import { connectErrorCode, encode, rawConnect, rawGrpc, expectServing as serving } from '../helpers/raw.js';

let t: TestApp;
/** Its key is bound to a worker, the creator of its tasks. */
let A: TestTenant<true>;

beforeAll(async () => {
  t = await startTestApp();
  A = await t.tenant({ withWorker: true });
});
afterAll(async () => {
  await t?.stop();
});

let handles = 0;
const uniqueHandle = (prefix: string) => `@${prefix}${++handles}x${Date.now().toString(36)}`;
/** The server still answers tenant calls on both protocols. */
const expectServing = () => serving(PROTOCOLS.map((p) => t.client(p, A.headers)));

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    let c: ApiClient;
    beforeAll(() => {
      c = t.client(protocol, A.headers);
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
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a hostile string, on purpose
        '$1 $$ ${x} `cmd`',
        '"quoted" {"json": true} [1]',
        '\u2028\u2029\t tab',
        ':tenant_id */ /* -- ',
      ];

      it('in task title, description and tags; project name, description and metadata; worker capabilities', async () => {
        const metadata: JsonObject = {};
        HOSTILE.forEach((s, i) => {
          metadata[s] = s;
          metadata[`v${i}`] = [s, { [s]: s }];
        });
        const name = `${HOSTILE[0]} ${protocol}`;
        const description = HOSTILE.join('\n');
        const { project } = await c.ProjectService.createProject({ name, description, metadata });
        expect(project).toMatchObject({ name, description, metadata });
        expect((await c.ProjectService.getProject({ id: project.id })).project).toMatchObject({
          name,
          description,
          metadata,
        });

        const { worker } = await c.WorkerService.createWorker({
          handle: uniqueHandle('hostile'),
          type: WorkerType.AGENT,
          capabilities: HOSTILE,
        });
        expect(worker.capabilities).toEqual(HOSTILE);
        expect((await c.WorkerService.getWorker(workerById(worker.id))).worker.capabilities).toEqual(HOSTILE);

        for (const s of HOSTILE) {
          const fields = { title: s, description: s, tags: [s, 'x'] };
          const { task } = await c.TaskService.createTask({ projectId: project.id, ...fields });
          expect(task).toMatchObject(fields);
          expect((await c.TaskService.getTask({ id: task.id })).task).toMatchObject(fields);
          // The tag is a bound value: it matches exactly itself, and LIKE wildcards match nothing more.
          const { tasks } = await c.TaskService.listTasks({ projectId: project.id, tagsAll: [s] });
          expect(tasks.map((x) => x.id)).toEqual([task.id]);
        }
        const { tasks } = await c.TaskService.listTasks({ projectId: project.id, pageSize: 500 });
        expect(tasks.map((x) => x.title)).toEqual(HOSTILE);

        // Updates too.
        const [h1, h2, h3, h4, h5, h6] = HOSTILE.slice(1) as [string, string, string, string, string, string];
        const updated = await c.TaskService.updateTask({
          task: { id: tasks[0]!.id, title: h1, description: h2, tags: [h3] },
          updateMask: mask('title,description,tags'),
        });
        expect(updated.task).toMatchObject({ title: h1, description: h2, tags: [h3] });
        const renamed = await c.ProjectService.updateProject({
          project: { id: project.id, name: h1, description: h4, metadata: { [h5]: h6 } },
          updateMask: mask('name,description,metadata'),
        });
        expect(renamed.project).toMatchObject({ name: h1, description: h4, metadata: { [h5]: h6 } });
        // And the tables are all still there.
        await expectServing();
      });

      it('a NUL character in any string field is INVALID_ARGUMENT and writes nothing', async () => {
        const NUL = 'a\u0000b';
        const { project } = await c.ProjectService.createProject({ name: `nul target ${protocol}` });
        const { task } = await c.TaskService.createTask({ projectId: project.id, title: 'nul target' });
        const base = { projectId: project.id };
        const attempts: [string, () => Promise<unknown>][] = [
          ['task title', () => c.TaskService.createTask({ ...base, title: NUL })],
          ['task description', () => c.TaskService.createTask({ ...base, title: 'ok', description: NUL })],
          ['task tags', () => c.TaskService.createTask({ ...base, title: 'ok', tags: [NUL] })],
          ['task request_id', () => c.TaskService.createTask({ ...base, title: 'ok', requestId: NUL })],
          [
            'updated title',
            () => c.TaskService.updateTask({ task: { id: task.id, title: NUL }, updateMask: mask('title') }),
          ],
          [
            'updated description',
            () =>
              c.TaskService.updateTask({ task: { id: task.id, description: NUL }, updateMask: mask('description') }),
          ],
          [
            'updated tags',
            () => c.TaskService.updateTask({ task: { id: task.id, tags: ['ok', NUL] }, updateMask: mask('tags') }),
          ],
          ['tags_all', () => c.TaskService.listTasks({ tagsAll: [NUL] })],
          ['project name', () => c.ProjectService.createProject({ name: NUL })],
          ['project description', () => c.ProjectService.createProject({ name: 'ok', description: NUL })],
          ['metadata value', () => c.ProjectService.createProject({ name: 'ok', metadata: { k: NUL } })],
          ['metadata key', () => c.ProjectService.createProject({ name: 'ok', metadata: { [NUL]: 'v' } })],
          ['nested metadata', () => c.ProjectService.createProject({ name: 'ok', metadata: { deep: [{ k: NUL }] } })],
          ['task titles', () => c.ProjectService.createProjectWithTasks({ name: 'ok', taskTitles: ['fine', NUL] })],
          [
            'updated name',
            () => c.ProjectService.updateProject({ project: { id: project.id, name: NUL }, updateMask: mask('name') }),
          ],
          [
            'updated metadata',
            () =>
              c.ProjectService.updateProject({
                project: { id: project.id, metadata: { k: NUL } },
                updateMask: mask('metadata'),
              }),
          ],
          ['handle', () => c.WorkerService.createWorker({ handle: `@nul${protocol}\u0000`, type: WorkerType.AGENT })],
          [
            'capabilities',
            () =>
              c.WorkerService.createWorker({
                handle: uniqueHandle('nulcap'),
                type: WorkerType.AGENT,
                capabilities: [NUL],
              }),
          ],
          [
            'email',
            () => c.WorkerService.createWorker({ handle: uniqueHandle('nulmail'), email: 'a\u0000@example.com' }),
          ],
          ['handle lookup', () => c.WorkerService.getWorker(workerByHandle('@x\u0000'))],
        ];
        for (const [what, attempt] of attempts) {
          const err = await expectRpcError(attempt(), Code.InvalidArgument);
          expect(err.rawMessage, what).not.toMatch(/internal|sql/i);
        }
        expect((await c.TaskService.getTask({ id: task.id })).task).toEqual(task);
        expect((await c.ProjectService.getProject({ id: project.id })).project).toEqual(project);
        const { tasks } = await c.TaskService.listTasks({ projectId: project.id });
        expect(tasks.map((x) => x.id)).toEqual([task.id]);
        await expectServing();
      });
    });
  });
}

describe('bad input at the edge', () => {
  const JSON_HEADERS = () => ({ 'content-type': 'application/json', ...A.headers });

  it('Connect JSON: metadata that is not an object is INVALID_ARGUMENT', async () => {
    for (const metadata of ['5', '[1]', '"text"', 'true', '[{"a":1}]']) {
      const res = await rawConnect(
        t.port,
        'taskapi.v1.ProjectService/CreateProject',
        `{"name":"bad metadata","metadata":${metadata}}`,
        JSON_HEADERS(),
      );
      expect(connectErrorCode(res), `metadata: ${metadata}`).toBe('invalid_argument');
    }
    // null is the JSON form of an unset Struct.
    const ok = await rawConnect(
      t.port,
      'taskapi.v1.ProjectService/CreateProject',
      '{"name":"null metadata","metadata":null}',
      JSON_HEADERS(),
    );
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
      const res = await rawConnect(t.port, 'taskapi.v1.ProjectService/CreateProject', body, JSON_HEADERS());
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
      const res = await rawConnect(t.port, 'taskapi.v1.TaskService/CreateTask', body, JSON_HEADERS());
      expect(connectErrorCode(res), `body ${body}`).toBe('invalid_argument');
    }
    for (const [path, body] of [
      ['WorkerService/CreateWorker', '{"handle":"@typed","type":"WORKER_TYPE_ROBOT"}'],
      // Proto JSON spells FieldMask paths in lowerCamelCase; snake_case there is malformed.
      ['TaskService/UpdateTask', '{"task":{"id":"1","dueDate":"2030-07-01T00:00:00Z"},"updateMask":"due_date"}'],
    ]) {
      const res = await rawConnect(t.port, `taskapi.v1.${path}`, body!, JSON_HEADERS());
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
      const res = await rawConnect(t.port, 'taskapi.v1.TaskService/CreateTask', body, {
        'content-type': 'application/proto',
        ...A.headers,
      });
      const code = connectErrorCode(res);
      expect(code, `connect, ${body.toString('hex')}`).not.toMatch(/^(internal|unknown)$/);
      expect(code).toBe('invalid_argument');

      const grpcRes = await rawGrpc(t.port, '/taskapi.v1.TaskService/CreateTask', body, A.headers);
      expect(grpcRes.ok, `grpc, ${body.toString('hex')}`).toBe(false);
      if (!grpcRes.ok) {
        expect(
          [grpc.status.INTERNAL, grpc.status.UNKNOWN],
          `grpc, ${body.toString('hex')}: ${grpcRes.details}`,
        ).not.toContain(grpcRes.code);
        expect(grpcRes.code).toBe(grpc.status.INVALID_ARGUMENT);
      }
    }
    // A well-formed binary request still works on both paths.
    const { project } = await t.client('connect', A.headers).ProjectService.createProject({ name: 'binary target' });
    const ok = await rawGrpc(
      t.port,
      '/taskapi.v1.TaskService/CreateTask',
      encode(CreateTaskRequestSchema, { projectId: project.id, title: 'binary ok' }),
      A.headers,
    );
    expect(ok.ok ? 'OK' : `${ok.code} ${ok.details}`).toBe('OK');
    const okConnect = await rawConnect(
      t.port,
      'taskapi.v1.TaskService/CreateTask',
      encode(CreateTaskRequestSchema, { projectId: project.id, title: 'binary ok 2' }),
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
    const grpcRes = await rawGrpc(t.port, '/taskapi.v1.WorkerService/ListWorkers', encode(ListWorkersRequestSchema), {
      ...A.headers,
      'x-big': big,
    });
    expect(grpcRes.ok).toBe(false);
    if (!grpcRes.ok) expect(grpcRes.code).not.toBe(grpc.status.OK);
    await expectServing();
  });

  it('an oversized message is RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    // Connect only: over gRPC the refused stream stays open on the server until the session
    // ends, which holds the graceful stop of this file's app for its whole grace period.
    const description = 'x'.repeat(5 * 1024 * 1024);
    await expectRpcError(
      t.client('connect', A.headers).ProjectService.createProject({ name: 'huge', description }),
      Code.ResourceExhausted,
    );
    await expectServing();
  });
});
