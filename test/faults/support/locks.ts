/** Holding a task's row lock from outside the service, to keep its calls inside a transaction. */
import pg from 'pg';
import type { PostgresCluster } from './postgres-cluster.js';
import { waitFor } from './processes.js';

export interface RowLock {
  release(): Promise<void>;
}

/** `select … for update` on one task, in a transaction of a superuser connection. */
export async function lockTask(url: string, taskId: bigint): Promise<RowLock> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query('select id from tasks where id = $1::bigint for update', [String(taskId)]);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query('rollback').catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

/** The service's backends (application_name task-api) of `database` waiting on a lock. */
export async function lockWaiters(cluster: PostgresCluster, database: string): Promise<number[]> {
  const rows = await cluster.query<{ pid: number }>(
    `select pid from pg_stat_activity
      where datname = $1 and application_name = 'task-api' and wait_event_type = 'Lock'`,
    [database],
  );
  return rows.map((r) => r.pid);
}

/** Waits until `count` of the service's backends wait on a lock; returns their pids. */
export function waitForLockWaiters(cluster: PostgresCluster, database: string, count: number): Promise<number[]> {
  return waitFor(`${count} calls waiting on the row lock`, async () => {
    const pids = await lockWaiters(cluster, database);
    return pids.length >= count ? pids : undefined;
  });
}
