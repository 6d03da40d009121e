/**
 * Idempotent creates (request_id), the same contract for every create RPC, over gRPC and
 * Connect: a retry returns the first response and writes nothing, also when retries race; the
 * same id with a different request is INVALID_ARGUMENT and writes nothing; ids are per tenant;
 * a refused or failed create does not use up its id. A new create RPC gets all of it by adding
 * one entry to CREATES.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenToStatements } from '../../src/services/statement-listeners.js';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { type ApiClient, WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError, listAll, ts } from '../helpers/expect-rpc.js';
import { clockPast } from '../helpers/wait.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

/** What a tenant needs for its creates: a worker (the creator) and a project. */
interface Fixture {
  api: ApiClient;
  workerId: bigint;
  projectId: bigint;
}

interface CreateCase {
  /** Sends the create; `variant` 0 is the original request, 1 differs from it in one field. */
  create(f: Fixture, requestId: string, variant?: 0 | 1): Promise<unknown>;
  /** A create with this request id that the service refuses (it must not keep the id). */
  refused(f: Fixture, requestId: string): Promise<unknown>;
  /** How many rows of the created kind the tenant has. */
  count(f: Fixture): Promise<number>;
}

const countProjects = async (f: Fixture) =>
  (
    await listAll(
      (pageToken) => f.api.ProjectService.listProjects({ pageSize: 500, pageToken }),
      (r) => r.projects,
    )
  ).items.length;

const MISSING = 987654321n;

const CREATES: Record<string, CreateCase> = {
  CreateTask: {
    create: (f, requestId, variant = 0) =>
      f.api.TaskService.createTask({
        projectId: f.projectId,
        createdById: f.workerId,
        title: variant ? 'exactly twice' : 'exactly once',
        tags: ['i'],
        dueDate: ts('2030-01-01T00:00:00Z'),
        requestId,
      }),
    refused: (f, requestId) =>
      f.api.TaskService.createTask({
        projectId: f.projectId,
        createdById: f.workerId,
        title: 'x',
        assigneeId: MISSING,
        requestId,
      }),
    count: async (f) =>
      (
        await listAll(
          (pageToken) => f.api.TaskService.listTasks({ projectId: f.projectId, pageSize: 500, pageToken }),
          (r) => r.tasks,
        )
      ).items.length,
  },
  CreateProject: {
    create: (f, requestId, variant = 0) =>
      f.api.ProjectService.createProject({ name: 'Once', metadata: { n: variant + 1 }, requestId }),
    refused: (f, requestId) => f.api.ProjectService.createProject({ name: '', requestId }),
    count: countProjects,
  },
  CreateProjectWithTasks: {
    create: (f, requestId, variant = 0) =>
      f.api.ProjectService.createProjectWithTasks({
        name: 'Batch once',
        taskTitles: ['x', variant ? 'z' : 'y'],
        createdById: f.workerId,
        requestId,
      }),
    refused: (f, requestId) =>
      f.api.ProjectService.createProjectWithTasks({ name: 'x', taskTitles: ['a'], createdById: MISSING, requestId }),
    count: countProjects,
  },
  CreateWorker: {
    create: (f, requestId, variant = 0) =>
      f.api.WorkerService.createWorker({
        handle: `@idem${requestId.replace(/\W/g, '')}`,
        type: WorkerType.AGENT,
        capabilities: [variant ? 'y' : 'x'],
        requestId,
      }),
    // The fixture's worker already has this handle.
    refused: (f, requestId) => f.api.WorkerService.createWorker({ handle: '@creator', requestId }),
    count: async (f) =>
      (
        await listAll(
          (pageToken) => f.api.WorkerService.listWorkers({ pageSize: 500, pageToken }),
          (r) => r.workers,
        )
      ).items.length,
  },
};

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let f: Fixture;
    let other: Fixture;

    const fixture = async (): Promise<Fixture> => {
      const api = t.client(protocol, (await t.tenant()).headers);
      const { worker } = await api.WorkerService.createWorker({ handle: '@creator' });
      const { project } = await api.ProjectService.createProject({ name: 'idempotency' });
      return { api, workerId: worker.id, projectId: project.id };
    };

    beforeAll(async () => {
      f = await fixture();
      other = await fixture();
    });

    for (const [rpc, c] of Object.entries(CREATES)) {
      describe(rpc, () => {
        it('a retry returns the first response (same ids, same timestamps) and writes nothing', async () => {
          const first = await c.create(f, `${rpc}-retry`);
          const count = await c.count(f);
          // A replay that wrote again would now get a later created_at.
          await clockPast();
          expect(await c.create(f, `${rpc}-retry`)).toEqual(first);
          expect(await c.count(f)).toBe(count);
        });

        it('the same request_id with a different request is INVALID_ARGUMENT and writes nothing', async () => {
          await c.create(f, `${rpc}-changed`);
          const count = await c.count(f);
          await expectRpcError(c.create(f, `${rpc}-changed`, 1), Code.InvalidArgument, 'request_id');
          expect(await c.count(f)).toBe(count);
        });

        it('racing retries get the same response and one row is written', async () => {
          const count = await c.count(f);
          const results = await Promise.all([1, 2, 3].map(() => c.create(f, `${rpc}-race`)));
          for (const r of results) expect(r).toEqual(results[0]);
          expect(await c.count(f)).toBe(count + 1);
        });

        it('request ids are per tenant', async () => {
          await c.create(f, `${rpc}-tenant`);
          const count = await c.count(other);
          // A replay of the first tenant's response would write nothing here.
          await c.create(other, `${rpc}-tenant`);
          expect(await c.count(other)).toBe(count + 1);
        });

        it('a refused create does not use up its request_id', async () => {
          const err = await expectRpcError(c.refused(f, `${rpc}-refused`), [
            Code.InvalidArgument,
            Code.FailedPrecondition,
            Code.AlreadyExists,
          ]);
          expect(err.rawMessage).not.toContain('request_id');
          // Had the refused attempt kept the id, this different request would be INVALID_ARGUMENT.
          const count = await c.count(f);
          await c.create(f, `${rpc}-refused`);
          expect(await c.count(f)).toBe(count + 1);
        });
      });
    }

    it('the same request_id for another create RPC is a different request', async () => {
      await CREATES.CreateProject!.create(f, 'shared-between-rpcs');
      const count = await countProjects(f);
      await expectRpcError(
        CREATES.CreateProjectWithTasks!.create(f, 'shared-between-rpcs'),
        Code.InvalidArgument,
        'request_id',
      );
      expect(await countProjects(f)).toBe(count);
    });

    it('a create that fails inside its transaction does not use up its request_id', async () => {
      const requestId = `failed-${protocol}`;
      const detach = listenToStatements(t.app.database.db, (sql) => {
        if (sql.includes('insert into task_events')) throw new Error('boom');
      });
      try {
        await expectRpcError(
          f.api.ProjectService.createProjectWithTasks({
            name: 'Retry me',
            taskTitles: ['a'],
            createdById: f.workerId,
            requestId,
          }),
          Code.Internal,
        );
      } finally {
        detach();
      }
      const res = await f.api.ProjectService.createProjectWithTasks({
        name: 'Retry me',
        taskTitles: ['a'],
        createdById: f.workerId,
        requestId,
      });
      expect(res.project.name).toBe('Retry me');
    });
  });
}
