/**
 * The feed trigger of task_events (migrations 1764100000500 and 1764200000000) on a fresh
 * database, where PL/pgSQL plans its lookup of a task's previous event while the table is
 * empty: that lookup must use the index, not read the table once per inserted event.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Tx } from '../../src/db/index.js';
import { appendTaskEvents } from '../../src/repositories/events.js';
import { useTenantDatabase } from '../helpers/database.js';

const t = useTenantDatabase();

beforeAll(async () => {
  // Statistics that say "empty", as after a bulk load that wrote no events (the benchmark's seed)
  // or on a quiet new tenant: the planner then prefers reading the table to the index.
  await t.open.db.withTransaction((tx) => tx.exec('analyze task_events'), { asOwner: true });
});

const TASKS = 300;
let seeds = 0;

/** Tasks inserted set-based (no events), as a bulk load leaves them. */
async function seedTasks(tx: Tx): Promise<{ id: string; project_id: string }[]> {
  const tenant = t.tenantId.toString();
  const worker = await tx.one<{ id: string }>(
    `insert into workers (tenant_id, handle) values ($1::bigint, $2) returning id::text`,
    [tenant, `@feed${++seeds}`],
  );
  const project = await tx.one<{ id: string }>(
    `insert into projects (tenant_id, name) values ($1::bigint, 'feed') returning id::text`,
    [tenant],
  );
  return tx.many(
    `insert into tasks (tenant_id, project_id, title, created_by_id)
     select $1::bigint, $2::bigint, 'task ' || n, $3::bigint from generate_series(1, $4::int) n
     returning id::text, project_id::text`,
    [tenant, project.id, worker.id, TASKS],
  );
}

/** Sequential scans of task_events in this transaction so far. */
const seqScans = async (tx: Tx) =>
  Number(
    (
      await tx.one<{ n: string }>(
        `select coalesce(sum(seq_scan), 0)::text as n from pg_stat_xact_user_tables where relname = 'task_events'`,
      )
    ).n,
  );

describe('the feed trigger', () => {
  it('looks up each event’s predecessor by index, also when planned on an empty table', async () => {
    const { scans, feed } = await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
      const tasks = await seedTasks(tx);
      const before = await seqScans(tx);
      for (const kind of ['completed', 'updated'] as const) {
        await appendTaskEvents(
          tx,
          tasks.map((task, i) => ({
            taskId: BigInt(task.id),
            projectId: BigInt(task.project_id),
            kind,
            actorId: null,
            taskVersion: BigInt(kind === 'completed' ? 2 : 3),
            data: { n: i },
          })),
        );
      }
      const scans = (await seqScans(tx)) - before;
      const feed = await tx.many<{ same: boolean }>(
        `select feed_xact = pg_current_xact_id() and xact_id = pg_current_xact_id() as same from task_events`,
      );
      return { scans, feed };
    });
    // Without the index the trigger scans the table once per event: 600 scans here.
    expect(scans).toBeLessThan(10);
    expect(feed).toHaveLength(2 * TASKS);
    expect(feed.every((r) => r.same)).toBe(true);
  });

  it('stamps a created event with its transaction without running for it', async () => {
    const rows = await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
      const [task] = await seedTasks(tx);
      await appendTaskEvents(tx, [
        {
          taskId: BigInt(task!.id),
          projectId: BigInt(task!.project_id),
          kind: 'created',
          actorId: null,
          taskVersion: 1n,
          data: {},
        },
      ]);
      return tx.many<{ same: boolean }>(
        `select feed_xact = pg_current_xact_id() and xact_id = pg_current_xact_id() as same
           from task_events where task_id = $1::bigint`,
        [task!.id],
      );
    });
    expect(rows).toEqual([{ same: true }]);
  });
});
