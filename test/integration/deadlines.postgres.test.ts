/**
 * The client's deadline bounds the database work of its call, and a call that ends early
 * writes nothing. A table lock held from another connection makes the call's statement wait
 * as long as the test wants. (PostgreSQL only: PGlite never fires statement_timeout.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { holdLock, waitForLockWaiters, waitForServiceIdle } from '../helpers/wait.js';

let t: TestApp;
let reader: ApiClient;
let headers: Record<string, string>;
let projectId: bigint;
let workerId: bigint;

beforeAll(async () => {
  t = await startTestApp();
  headers = (await t.tenant()).headers;
  reader = t.client('connect', headers);
  projectId = (await reader.ProjectService.createProject({ name: 'deadlines' })).project.id;
  workerId = (await reader.WorkerService.createWorker({ handle: '@w' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

const countTasks = async () => (await reader.TaskService.listTasks({ projectId, pageSize: 500 })).tasks.length;
// Inserting a task checks its foreign keys with FOR KEY SHARE on workers: this blocks it.
const LOCK_WORKERS = 'lock table workers in access exclusive mode';

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    it('ends a call whose statement outlives the deadline with DEADLINE_EXCEEDED and writes nothing', async () => {
      const before = await countTasks();
      const lock = await holdLock(t.db.url, LOCK_WORKERS);
      try {
        const call = t
          .client(protocol, headers)
          .TaskService.createTask({ projectId, title: 'late', createdById: workerId }, { timeoutMs: 400 });
        await expectRpcError(call, Code.DeadlineExceeded);
        // Still holding the lock: the server's statement stops waiting for it. It was cancelled
        // by its own statement_timeout, derived from the deadline, and its transaction rolled
        // back; it was not left running after the client gave up.
        await lock.waiters(0);
      } finally {
        await lock.release();
      }
      expect(await countTasks()).toBe(before);
    });

    it('rolls back the transaction of a call the client cancels', async () => {
      const before = await countTasks();
      const lock = await holdLock(t.db.url, LOCK_WORKERS);
      try {
        const controller = new AbortController();
        const call = t
          .client(protocol, headers)
          .TaskService.createTask(
            { projectId, title: 'cancelled', createdById: workerId },
            { signal: controller.signal },
          );
        await lock.waiters(1);
        controller.abort();
        await expectRpcError(call, Code.Canceled);
      } finally {
        // The insert can go on now, but its call is gone: it must not commit.
        await lock.release();
      }
      await waitForServiceIdle(t.db.url);
      expect(await countTasks()).toBe(before);
    });
  });
}

describe('waiting for a pooled connection', () => {
  it('a caller whose deadline passes while it waits does not lose the connection it was waiting for', async () => {
    const own = await startTestApp({ env: { DB_POOL_MAX: '1', DB_CONNECTION_TIMEOUT_MS: '20000' } });
    try {
      const cl = own.client('grpc', (await own.tenant()).headers);
      const { project } = await cl.ProjectService.createProject({ name: 'p' });
      const lock = await holdLock(own.db.url, 'lock table tasks in access exclusive mode');
      // The only pooled connection is now busy with a call waiting on the lock.
      const busy = cl.TaskService.listTasks({ projectId: project.id });
      await waitForLockWaiters(own.db.url, 1);
      await expectRpcError(cl.ProjectService.getProject({ id: project.id }, { timeoutMs: 300 }), Code.DeadlineExceeded);
      await lock.release();
      await busy;
      // The connection the abandoned call would have got went back to the pool.
      const { project: again } = await cl.ProjectService.getProject({ id: project.id }, { timeoutMs: 10_000 });
      expect(again.id).toBe(project.id);
    } finally {
      await own.stop();
    }
  });
});
