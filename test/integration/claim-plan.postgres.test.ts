/**
 * The plan of ClaimTask's statement as the service runs it (as taskapi_app, under row-level
 * security) on ~100k tasks of one tenant, most of them done: the candidate is found by walking
 * tasks_claim_order_idx in claim order from the tenant's start, so the statement reads a handful
 * of index entries, never sorts, and locks only the row it hands out. PostgreSQL server only:
 * loading 100k rows into PGlite takes minutes on a busy machine, and the plan that matters is
 * the server's (PGlite picked the same plans when tried).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tx } from '../../src/db/index.js';
import { type ClaimFilter, claimTask, expireLeases } from '../../src/repositories/claims.js';
import { openTenantDatabase, type TenantDatabase } from '../helpers/database.js';

const TASKS = 100_000;

let t: TenantDatabase;
let workerId: bigint;
let projectId: bigint;

beforeAll(async () => {
  t = await openTenantDatabase();
  const ids = await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
    const tenant = t.tenantId.toString();
    const w = await tx.one<{ id: string }>(
      `insert into workers (tenant_id, handle, capabilities) values ($1::bigint, '@claimer', '["python"]') returning id`,
      [tenant],
    );
    await tx.exec(`insert into projects (tenant_id, name) select $1::bigint, 'p' || g from generate_series(1, 20) g`, [
      tenant,
    ]);
    // 85% completed, 10% in progress with a running lease, 5% pending; mixed priorities, due
    // dates and capabilities.
    await tx.exec(
      `insert into tasks (tenant_id, project_id, title, created_by_id, status, priority, due_date,
                          required_capabilities, lease_token, lease_expires_at, assignee_id)
       select $1::bigint, p.id, 'task ' || g, $2::bigint,
              case when g % 20 = 0 then 'pending' when g % 10 = 1 then 'in_progress' else 'completed' end,
              (array['low', 'medium', 'high', 'critical'])[1 + g % 4],
              case when g % 3 = 0 then now() + make_interval(days => g % 50) end,
              case when g % 7 = 0 then '["rust"]'::jsonb else '[]'::jsonb end,
              case when g % 10 = 1 then 1 else 0 end,
              case when g % 10 = 1 then now() + interval '1 hour' end,
              case when g % 10 = 1 then $2::bigint end
         from generate_series(1, $3::int) g
         join (select id, row_number() over (order by id) - 1 as n from projects) p on p.n = (g / 20) % 20`,
      [tenant, w.id, TASKS],
    );
    const p = await tx.one<{ id: string }>(`select id from projects order by id limit 1`);
    return { worker: BigInt(w.id), project: BigInt(p.id) };
  });
  workerId = ids.worker;
  projectId = ids.project;
  await t.open.db.withTransaction((tx) => tx.exec('analyze tasks'), { asOwner: true });
}, 180_000);
afterAll(async () => {
  await t?.close();
});

/**
 * EXPLAIN ANALYZE of the statements a repository function sends, in a transaction rolled back
 * afterwards (ANALYZE runs them).
 */
async function explain(run: (tx: Tx) => Promise<unknown>): Promise<string[]> {
  const plans: string[] = [];
  const rollback = new Error('roll back');
  await t.open.db
    .withTenantTransaction(t.tenantId, async (tx) => {
      const explaining: Tx = {
        tenantId: tx.tenantId,
        many: async <R>(text: string, values?: readonly unknown[]) => {
          const rows = await tx.many<{ 'QUERY PLAN': string }>(
            `explain (analyze, costs off, timing off, summary off) ${text}`,
            values,
          );
          plans.push(rows.map((r) => r['QUERY PLAN']).join('\n'));
          return [] as R[];
        },
        one: () => Promise.reject(new Error('not explained')),
        maybeOne: async <R>(text: string, values?: readonly unknown[]) => {
          await explaining.many(text, values);
          return undefined as R | undefined;
        },
        exec: async (text, values) => (await explaining.many(text, values)).length,
      };
      await run(explaining);
      throw rollback;
    })
    .catch((err: unknown) => {
      if (err !== rollback) throw err;
    });
  return plans;
}

const filter = (f: Partial<ClaimFilter> = {}): ClaimFilter => ({
  workerId,
  capabilities: ['python'],
  projectId: null,
  tagsAll: [],
  leaseSeconds: 60,
  ...f,
});

/** The actual row count of the plan node that scans `index`. */
const rowsOf = (plan: string, index: string) => {
  const m = plan.match(new RegExp(`Index Scan using ${index} on tasks t\\w* \\(actual rows=([\\d.]+)`));
  // PostgreSQL 18 (PGlite) prints fractional row counts.
  return m ? Number(m[1]) : null;
};

describe(`ClaimTask on ${TASKS} tasks, as taskapi_app`, () => {
  it('walks tasks_claim_order_idx in claim order: no sort, a few rows read, one row locked', async () => {
    const [plan] = await explain((tx) => claimTask(tx, filter()));
    // Row-level security is in force: the plan checks the transaction's tenant.
    expect(plan).toContain("current_setting('app.tenant_id'");
    expect(plan).toContain('Index Scan using tasks_claim_order_idx on tasks t');
    expect(plan).not.toMatch(/Sort/);
    expect(plan).toMatch(/LockRows \(actual rows=1(\.00)? /);
    expect(rowsOf(plan!, 'tasks_claim_order_idx')).toBeLessThan(50);
  });

  it('with a project filter, too', async () => {
    const [plan] = await explain((tx) => claimTask(tx, filter({ projectId })));
    expect(plan).toContain('tasks_claim_project_order_idx');
    expect(plan).not.toMatch(/Sort/);
    expect(plan).toMatch(/LockRows \(actual rows=1(\.00)? /);
    expect(rowsOf(plan!, 'tasks_claim_project_order_idx')).toBeLessThan(50);
  });

  it('noticing expired leases reads only the running-lease index', async () => {
    const [plan] = await explain((tx) => expireLeases(tx, 100));
    expect(plan).toContain('tasks_lease_running_idx');
    expect(plan).not.toMatch(/Seq Scan/);
  });
});
