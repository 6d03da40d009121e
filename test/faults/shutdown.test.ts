/**
 * SIGTERM while calls are blocked on a row lock: the process must exit within
 * SHUTDOWN_GRACE_MS (+ about two seconds) with exit code 0, every blocked call must end with
 * UNAVAILABLE, and none of their writes may land.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mask } from '../helpers/expect-rpc.js';
import { lockTask, waitForLockWaiters } from './support/locks.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { codeOf, ServiceProcess } from './support/service.js';

const DB = 'taskapi';
const GRACE_MS = 1_000;
const BLOCKED = 4;
let cluster: PostgresCluster;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
});

afterAll(async () => {
  service?.kill();
  cluster?.destroy();
});

describe('SIGTERM with calls blocked on a row lock', () => {
  it('ends every blocked call with UNAVAILABLE and exits 0 within the grace period', async () => {
    service = await ServiceProcess.start(cluster.url(DB), { SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    const tenant = await service.tenant('shutdown');
    const grpc = service.client('grpc', tenant.headers);
    const connect = service.client('connect', tenant.headers);
    const { task } = await connect.TaskService.createTask({
      projectId: tenant.projectId,
      title: 'locked',
      createdById: tenant.workerId,
    });
    const lock = await lockTask(cluster.url(DB), task.id);
    let outcomes: string[];
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    let exitMs: number;
    let sent = Date.now();
    try {
      const blocked = Array.from({ length: BLOCKED }, (_, i) =>
        (i % 2 ? grpc : connect).TaskService.updateTask(
          { task: { id: task.id, title: `blocked ${i}` }, updateMask: mask('title') },
          // Far beyond the grace period: only the shutdown may end these calls.
          { timeoutMs: 30_000, signal: AbortSignal.timeout(20_000) },
        )
          .then(
            () => 'succeeded',
            (err: unknown) => codeOf(err),
          )
          .then((outcome) => `${outcome} after ${Date.now() - sent} ms`),
      );
      await waitForLockWaiters(cluster, DB, BLOCKED);
      sent = Date.now();
      service.signal('SIGTERM');
      // The process may hang here; the lock is only released after the deadline below.
      const exited = await Promise.race([
        service.exit,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), GRACE_MS + 10_000)),
      ]);
      exitMs = Date.now() - sent;
      exit = exited ?? { code: null, signal: null };
      outcomes = await Promise.race([
        Promise.all(blocked),
        new Promise<string[]>((r) => setTimeout(() => r(Array(BLOCKED).fill('no answer')), 2_000)),
      ]);
      console.log(
        `shutdown: exit ${JSON.stringify(exit)} after ${exitMs} ms; blocked calls: ${JSON.stringify(outcomes)}`,
      );
    } finally {
      await lock.release();
    }
    if (exit.code === null && exit.signal === null) {
      const late = await Promise.race([
        service.exit,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
      ]);
      console.log(
        `shutdown: after the lock was released: ${late ? `exit ${JSON.stringify(late)} ${Date.now() - sent} ms after SIGTERM` : 'still running'}`,
      );
    }
    expect.soft(outcomes.map((o) => o.replace(/ after \d+ ms$/, ''))).toEqual(Array(BLOCKED).fill('UNAVAILABLE'));
    expect.soft(exit).toEqual({ code: 0, signal: null });
    expect.soft(exitMs).toBeLessThan(GRACE_MS + 2_000);
    // Nothing of the cancelled updates landed.
    const rows = await cluster.query<{ title: string }>('select title from tasks where id = $1::bigint', [task.id], DB);
    expect(rows).toEqual([{ title: 'locked' }]);
  });
});
