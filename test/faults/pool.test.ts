/**
 * Pool exhaustion: every pooled connection is held by a call waiting on a row lock. Calls
 * beyond the pool wait for a connection within their deadline and then fail with a clear code
 * (DEADLINE_EXCEEDED by their deadline, UNAVAILABLE after DB_CONNECTION_TIMEOUT_MS without
 * one), never INTERNAL; once the lock is gone everything completes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mask } from '../helpers/expect-rpc.js';
import { lockTask, waitForLockWaiters } from './support/locks.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { codeOf, ServiceProcess } from './support/service.js';

const DB = 'taskapi';
const POOL = 2;
const CONNECTION_TIMEOUT_MS = 1_500;
const DEADLINE_MS = 800;
const SLACK_MS = 1_500;
let cluster: PostgresCluster;
let service: ServiceProcess;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
  service = await ServiceProcess.start(cluster.url(DB), {
    DB_POOL_MAX: String(POOL),
    // One tenant may use the whole pool here: this case is the pool running out, not the
    // per-tenant share (test/integration/tenant-fairness.postgres.test.ts has that).
    DB_POOL_TENANT_MAX: String(POOL),
    DB_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
  });
});

afterAll(async () => {
  service?.kill();
  cluster?.destroy();
});

describe('pool exhausted', () => {
  it('makes calls beyond the pool wait within their deadline and fail with a clear code', async () => {
    const tenant = await service.tenant('pool');
    const grpc = service.client('grpc', tenant.headers);
    const connect = service.client('connect', tenant.headers);
    const { task } = await connect.TaskService.createTask({
      projectId: tenant.projectId,
      title: 'contended',
      createdById: tenant.workerId,
    });
    const lock = await lockTask(cluster.url(DB), task.id);
    let holders: Promise<string>[] = [];
    try {
      holders = Array.from({ length: POOL }, (_, i) =>
        (i % 2 ? grpc : connect).TaskService.updateTask(
          { task: { id: task.id, title: `holder ${i}` }, updateMask: mask('title') },
          { timeoutMs: 30_000 },
        ).then(
          () => 'succeeded',
          (err: unknown) => codeOf(err),
        ),
      );
      await waitForLockWaiters(cluster, DB, POOL);

      const timed = async (fn: () => Promise<unknown>) => {
        const started = Date.now();
        const outcome = await fn().then(
          () => 'succeeded',
          (err: unknown) => codeOf(err),
        );
        return { outcome, ms: Date.now() - started };
      };
      const safety = () => AbortSignal.timeout(CONNECTION_TIMEOUT_MS + 10_000);
      const withDeadline = await Promise.all(
        [grpc, connect, grpc, connect].map((c) =>
          timed(() => c.TaskService.getTask({ id: task.id }, { timeoutMs: DEADLINE_MS, signal: safety() })),
        ),
      );
      const withoutDeadline = await Promise.all(
        [grpc, connect].map((c) => timed(() => c.TaskService.getTask({ id: task.id }, { signal: safety() }))),
      );
      console.log(
        `pool exhausted: with a ${DEADLINE_MS} ms deadline ${JSON.stringify(withDeadline)}; without ${JSON.stringify(withoutDeadline)}`,
      );
      for (const r of withDeadline) {
        expect(r.outcome).toMatch(/^(DEADLINE_EXCEEDED|UNAVAILABLE)$/);
        // It waited for a connection (not refused at once), but no longer than its deadline.
        expect(r.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
        expect(r.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      for (const r of withoutDeadline) {
        expect(r.outcome).toBe('UNAVAILABLE');
        expect(r.ms).toBeGreaterThanOrEqual(CONNECTION_TIMEOUT_MS - 50);
        expect(r.ms).toBeLessThan(CONNECTION_TIMEOUT_MS + SLACK_MS);
      }
    } finally {
      await lock.release();
    }
    // The holders were only waiting: they complete, and the pool serves again.
    expect(await Promise.all(holders)).toEqual(Array(POOL).fill('succeeded'));
    const after = await grpc.TaskService.getTask({ id: task.id });
    expect(after.task.title).toMatch(/^holder \d$/);
    expect(service.crashes()).toEqual([]);
  });
});
