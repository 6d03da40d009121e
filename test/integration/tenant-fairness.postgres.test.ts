/**
 * Fair use of the pool between tenants: one tenant's calls stuck on a row lock hold at most its
 * share of the connections (DB_POOL_TENANT_MAX); its further calls wait in its own queue and
 * give up with RESOURCE_EXHAUSTED (or DEADLINE_EXCEEDED at their deadline), while another
 * tenant's calls go on without delay. (PostgreSQL only: the embedded pool has one connection.)
 */

import { ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { Code, expectRpcError, mask } from '../helpers/expect-rpc.js';
import { waitFor } from '../helpers/wait.js';

const POOL = 4;
const SHARE = 2;
const MAX_WAIT_MS = 1_500;

let t: TestApp;
let A: TestTenant;
let B: TestTenant;
let a: ApiClient;
let b: ApiClient;
let taskA: bigint;
let taskB: bigint;

const until = (what: string, condition: () => boolean | Promise<boolean>) => waitFor(condition, what);

async function firstTask(api: ApiClient): Promise<bigint> {
  const { tasks } = await api.ProjectService.createProjectWithTasks({ name: 'p', taskTitles: ['locked'] });
  return tasks[0]!.id;
}

beforeAll(async () => {
  t = await startTestApp({
    env: {
      DB_POOL_MAX: String(POOL),
      DB_POOL_TENANT_MAX: String(SHARE),
      DB_CONNECTION_TIMEOUT_MS: String(MAX_WAIT_MS),
    },
  });
  A = await t.tenant({ withWorker: true });
  B = await t.tenant({ withWorker: true });
  a = t.client('grpc', A.headers);
  b = t.client('connect', B.headers);
  taskA = await firstTask(a);
  taskB = await firstTask(b);
});
afterAll(async () => {
  await t?.stop();
});

/** Holds a row lock on tenant A's task from outside the service until released. */
async function lockTaskA(): Promise<() => Promise<void>> {
  const locker = new pg.Client({ connectionString: t.db.url });
  await locker.connect();
  await locker.query('begin');
  await locker.query('select id from tasks where tenant_id = $1::bigint and id = $2::bigint for update', [A.id, taskA]);
  return async () => {
    await locker.query('rollback');
    await locker.end();
  };
}

describe('one tenant blocked on a row lock', () => {
  it('holds only its share of the pool; the other tenant is served at once; the waiting calls get RESOURCE_EXHAUSTED', async () => {
    const limiter = t.app.database.db.tenantLimiter!;
    expect(limiter.maxPerTenant).toBe(SHARE);
    const unlock = await lockTaskA();
    let blocked: Promise<'OK' | ConnectError>[] = [];
    try {
      // Ten updates of the locked task: two hold connections waiting for the lock, eight queue.
      blocked = Array.from({ length: 10 }, (_, i) =>
        a.TaskService.updateTask({ task: { id: taskA, title: `try ${i}` }, updateMask: mask('title') }).then(
          () => 'OK' as const,
          (err: unknown) => ConnectError.from(err),
        ),
      );
      await until('tenant A holds its share and queues the rest', () => {
        const s = limiter.stats();
        return s.active === SHARE && s.waiting === 10 - SHARE;
      });

      // Tenant B reads and writes while A's calls still hold their connections on the lock:
      // with A holding the whole pool, B would have waited for it and failed UNAVAILABLE.
      const got = await b.TaskService.getTask({ id: taskB });
      expect(got.task.id).toBe(taskB);
      await b.TaskService.updateTask({ task: { id: taskB, title: 'B goes on' }, updateMask: mask('title') });
      expect(limiter.stats().active).toBeGreaterThanOrEqual(SHARE);

      // A's own GetTask with a short deadline queues behind A's share and meets its deadline.
      await expectRpcError(a.TaskService.getTask({ id: taskA }, { timeoutMs: 300 }), Code.DeadlineExceeded);

      // The queued calls give up after the wait limit, saying the tenant's share was busy.
      await until('the queued calls gave up', async () => {
        const settled = await Promise.all(blocked.map((p) => Promise.race([p, Promise.resolve('pending')])));
        return settled.filter((r) => r !== 'pending').length >= 10 - SHARE;
      });
      const settled = await Promise.all(blocked.map((p) => Promise.race([p, Promise.resolve('pending')])));
      const exhausted = settled.filter((r) => r instanceof ConnectError && r.code === Code.ResourceExhausted);
      expect(exhausted).toHaveLength(10 - SHARE);
      for (const e of exhausted)
        expect((e as ConnectError).rawMessage).toMatch(/share of database connections .* busy/);
      expect(settled.filter((r) => r === 'pending')).toHaveLength(SHARE);
    } finally {
      await unlock();
    }
    // The two that held connections finish once the lock is gone.
    const results = await Promise.all(blocked);
    expect(results.filter((r) => r === 'OK')).toHaveLength(SHARE);
    await until('every slot is back', () => limiter.stats().active === 0 && limiter.stats().waiting === 0);
    await a.TaskService.getTask({ id: taskA }, { timeoutMs: 2_000 });
  });

  it('a cancelled call leaves its tenant queue, and the slot it waited for goes to the next in line', async () => {
    const limiter = t.app.database.db.tenantLimiter!;
    const unlock = await lockTaskA();
    try {
      const holders = Array.from({ length: SHARE }, () =>
        a.TaskService.updateTask({ task: { id: taskA, title: 'holder' }, updateMask: mask('title') }),
      );
      await until('A holds its share', () => limiter.stats().active === SHARE);
      const controller = new AbortController();
      const cancelled = a.TaskService.getTask({ id: taskA }, { signal: controller.signal }).catch((e: unknown) => e);
      const next = a.TaskService.getTask({ id: taskA }, { timeoutMs: 5_000 });
      await until('two calls queue', () => limiter.stats().waiting === 2);
      controller.abort();
      await cancelled;
      await until('the cancelled call left the queue', () => limiter.stats().waiting === 1);
      await unlock();
      await Promise.all(holders);
      expect((await next).task.id).toBe(taskA);
    } finally {
      await unlock().catch(() => {});
    }
  });
});

describe('health', () => {
  it('says NOT_SERVING while no pooled connection can be had, SERVING again after', async () => {
    const own = await startTestApp({
      env: { DB_POOL_MAX: '2', DB_POOL_TENANT_MAX: '2', DB_CONNECTION_TIMEOUT_MS: '5000' },
    });
    const check = async () => {
      const res = await fetch(`http://127.0.0.1:${own.port}/grpc.health.v1.Health/Check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      return ((await res.json()) as { status: string }).status;
    };
    try {
      const tenant = await own.tenant({ withWorker: true });
      const api = own.client('grpc', tenant.headers);
      const id = await firstTask(api);
      expect(await check()).toBe('SERVING');
      const locker = new pg.Client({ connectionString: own.db.url });
      await locker.connect();
      await locker.query('begin');
      await locker.query('select id from tasks where id = $1::bigint for update', [id]);
      const stuck = [0, 1].map(() =>
        api.TaskService.updateTask({ task: { id, title: 'x' }, updateMask: mask('title') }),
      );
      await until(
        'the pool is fully in use',
        () => own.app.database.db.pool.idleCount === 0 && own.app.database.db.pool.totalCount === 2,
      );
      await until('health says NOT_SERVING', async () => (await check()) === 'NOT_SERVING');
      await locker.query('rollback');
      await locker.end();
      await Promise.all(stuck);
      await until('health says SERVING again', async () => (await check()) === 'SERVING');
    } finally {
      await own.stop();
    }
  });
});
