/**
 * PostgreSQL terminating the service's backends (pg_terminate_backend): under write load, and
 * deterministically in the middle of a transaction that holds work not yet committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mask } from '../helpers/expect-rpc.js';
import { acknowledgedMore, expectLoadIntact, underLoad, WriteLoad } from './support/load.js';
import { lockTask, waitForLockWaiters } from './support/locks.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { codeOf, ServiceProcess } from './support/service.js';

const DB = 'taskapi';
let cluster: PostgresCluster;
let service: ServiceProcess;

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
  service = await ServiceProcess.start(cluster.url(DB), { DB_POOL_MAX: '8' });
});

afterAll(async () => {
  service?.kill();
  cluster?.destroy();
});

const terminateServiceBackends = async () =>
  (
    await cluster.query<{ pid: number }>(
      `select pid from pg_stat_activity, pg_terminate_backend(pid)
        where datname = $1 and application_name = 'task-api'`,
      [DB],
    )
  ).length;

describe('backends terminated', () => {
  it('under write load: failures are UNAVAILABLE only, every acknowledged write is stored once', async () => {
    const tenant = await service.tenant('terminateload');
    const load = new WriteLoad(service, tenant, 8, 'terminate');
    let killed = 0;
    const report = await underLoad(load, `terminate under load`, async () => {
      await acknowledgedMore(load, 20);
      for (let round = 0; round < 5; round++) {
        killed += await terminateServiceBackends();
        await acknowledgedMore(load, 10);
      }
    });
    console.log(`terminate under load: ${killed} backends terminated`);
    await expectLoadIntact(cluster, DB, tenant, report);
    expect(killed).toBeGreaterThan(0);
    expect(service.crashes()).toEqual([]);
  });

  it.each(['grpc', 'connect'] as const)(
    'mid-transaction (%s): the call fails UNAVAILABLE and nothing of it is written',
    async (protocol) => {
      const tenant = await service.tenant(`terminatemid${protocol}`);
      const client = service.client(protocol, tenant.headers);
      const { task } = await client.TaskService.createTask({
        projectId: tenant.projectId,
        title: 'before',
        createdById: tenant.workerId,
      });
      const lock = await lockTask(cluster.url(DB), task.id);
      try {
        // The update has begun its transaction (tenant set, key checked) and waits on the row.
        const update = client.TaskService.updateTask(
          { task: { id: task.id, title: 'after' }, updateMask: mask('title') },
          { timeoutMs: 20_000 },
        ).then(
          () => 'succeeded',
          (err: unknown) => codeOf(err),
        );
        const [pid] = await waitForLockWaiters(cluster, DB, 1);
        await cluster.query('select pg_terminate_backend($1)', [pid]);
        expect(await update).toBe('UNAVAILABLE');
      } finally {
        await lock.release();
      }
      const after = await client.TaskService.getTask({ id: task.id });
      expect(after.task.title).toBe('before');
      expect(after.task.version).toBe(task.version);
      const events = await cluster.query<{ n: number }>(
        'select count(*)::int as n from task_events where tenant_id = $1::bigint and task_id = $2::bigint',
        [tenant.id, task.id],
        DB,
      );
      expect(events[0]!.n).toBe(1);
      // And the service goes on: the same update now goes through.
      const updated = await client.TaskService.updateTask({
        task: { id: task.id, title: 'after' },
        updateMask: mask('title'),
      });
      expect(updated.task.title).toBe('after');
    },
  );
});
