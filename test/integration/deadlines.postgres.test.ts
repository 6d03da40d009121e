/**
 * The client's deadline bounds the database work of its call, and a call that ends early
 * writes nothing. A table lock held from another connection makes the call's statement wait
 * as long as the test wants. (PostgreSQL only: PGlite never fires statement_timeout.)
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestTenant, PROTOCOLS, startTestApp } from '../helpers/app.js';

let t: TestApp;
let tenant: TestTenant;
let projectId: string;
let workerId: string;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  const c = t.client('connect', tenant.headers);
  projectId = (await c.call('ProjectService', 'CreateProject', { name: 'deadlines' })).project.id;
  workerId = (await c.call('WorkerService', 'CreateWorker', { handle: '@w' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

async function holdLock(sql: string): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: t.db.url });
  await client.connect();
  await client.query('begin');
  await client.query(sql);
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

const countTasks = async () =>
  ((await t.client('connect', tenant.headers).call('TaskService', 'ListTasks', { projectId, pageSize: 500 })).tasks ?? []).length;

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    it('ends a call whose statement outlives the deadline with DEADLINE_EXCEEDED and writes nothing', async () => {
      const before = await countTasks();
      // Inserting a task checks its foreign keys with FOR KEY SHARE on workers: block that.
      const release = await holdLock('lock table workers in access exclusive mode');
      try {
        const started = Date.now();
        const err = await t
          .client(protocol, tenant.headers)
          .call('TaskService', 'CreateTask', { projectId, title: 'late', createdById: workerId }, { timeoutMs: 400 })
          .catch((e) => e);
        expect(err.code).toBe('DEADLINE_EXCEEDED');
        expect(Date.now() - started).toBeLessThan(3_000);
        // Still holding the lock: the server's statement is no longer waiting for it. It was
        // cancelled by its own statement_timeout, derived from the deadline, and its
        // transaction rolled back; it was not left running after the client gave up.
        await new Promise((r) => setTimeout(r, 300));
        const probe = new pg.Client({ connectionString: t.db.url });
        await probe.connect();
        const waiting = await probe.query(
          `select count(*)::int as n from pg_stat_activity
            where datname = current_database() and application_name = 'task-api' and wait_event_type = 'Lock'`,
        );
        await probe.end();
        expect(waiting.rows[0].n).toBe(0);
      } finally {
        await release();
      }
      expect(await countTasks()).toBe(before);
    });

    it('rolls back the transaction of a call the client cancels', async () => {
      const before = await countTasks();
      const release = await holdLock('lock table workers in access exclusive mode');
      const controller = new AbortController();
      const call = t
        .client(protocol, tenant.headers)
        .call('TaskService', 'CreateTask', { projectId, title: 'cancelled', createdById: workerId }, { signal: controller.signal })
        .catch((e) => e);
      await new Promise((r) => setTimeout(r, 300)); // the insert is waiting for the lock
      controller.abort();
      await call;
      await new Promise((r) => setTimeout(r, 200));
      await release(); // the insert can go on now, but its call is gone: it must not commit
      await new Promise((r) => setTimeout(r, 300));
      expect(await countTasks()).toBe(before);
    });
  });
}

describe('waiting for a pooled connection', () => {
  it('a caller whose deadline passes while it waits does not lose the connection it was waiting for', async () => {
    const own = await startTestApp({ env: { DB_POOL_MAX: '1', DB_CONNECTION_TIMEOUT_MS: '20000' } });
    try {
      const ten = await own.tenant();
      const cl = own.client('grpc', ten.headers);
      const { project } = await cl.call('ProjectService', 'CreateProject', { name: 'p' });
      const locker = new pg.Client({ connectionString: own.db.url });
      await locker.connect();
      await locker.query('begin');
      await locker.query('lock table tasks in access exclusive mode');
      // The only pooled connection is now busy with a call waiting on the lock.
      const busy = cl.call('TaskService', 'ListTasks', { projectId: project.id });
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      const err = await cl.call('ProjectService', 'GetProject', { id: project.id }, { timeoutMs: 300 }).catch((e) => e);
      expect(err.code).toBe('DEADLINE_EXCEEDED');
      expect(Date.now() - started).toBeLessThan(3_000);
      await locker.query('rollback');
      await locker.end();
      await busy;
      // The connection the abandoned call would have got went back to the pool.
      await expect(cl.call('ProjectService', 'GetProject', { id: project.id }, { timeoutMs: 2_000 })).resolves.toBeDefined();
    } finally {
      await own.stop();
    }
  });
});
