/**
 * Plans of the list queries as the service runs them: as taskapi_app, under row-level security.
 * A filter whose operator is not LEAKPROOF cannot be an index condition under RLS, which is why
 * the migrations mark jsonb_contains LEAKPROOF (migrations/shared/*leakproof-jsonb-contains.sql).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTenantDatabase, type TenantDatabase } from '../helpers/database.js';

let t: TenantDatabase;
beforeAll(async () => {
  t = await openTenantDatabase();
  // Enough rows, and statistics, for the planner to weigh its paths as it would in production:
  // 3000 tasks, each with a common tag, one in a hundred also 'urgent'.
  await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
    const tenant = t.tenantId.toString();
    await tx.exec(`insert into workers (tenant_id, handle) values ($1::bigint, '@planner')`, [tenant]);
    await tx.exec(`insert into projects (tenant_id, name) values ($1::bigint, 'plans')`, [tenant]);
    await tx.exec(
      `insert into tasks (tenant_id, project_id, title, created_by_id, tags)
       select $1::bigint, (select id from projects limit 1), 'task ' || g, (select id from workers limit 1),
              case when g % 100 = 0 then '["common", "urgent"]'::jsonb else '["common"]'::jsonb end
         from generate_series(1, 3000) g`,
      [tenant],
    );
  });
  await t.open.db.withTransaction((tx) => tx.exec('analyze tasks'), { asOwner: true });
});
afterAll(async () => {
  await t?.close();
});

const plan = (sql: string, values: unknown[]) =>
  t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
    // Tiny test tables would always be scanned sequentially; take that path away to see which
    // index paths the planner is allowed to use.
    await tx.many(`select set_config('enable_seqscan', 'off', true)`);
    const rows = await tx.many<{ 'QUERY PLAN': string }>(`explain (costs off) ${sql}`, values);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  });

describe('under row-level security', () => {
  it('jsonb_contains is LEAKPROOF', async () => {
    const row = await t.open.db.withTransaction((tx) =>
      tx.one<{ leakproof: boolean }>(
        `select proleakproof as leakproof from pg_proc where oid = 'pg_catalog.jsonb_contains(jsonb, jsonb)'::regprocedure`,
      ),
    );
    expect(row.leakproof).toBe(true);
  });

  it('tags_all is an index condition of the (tenant_id, tags) GIN index', async () => {
    const text = await plan(`select count(*) from tasks where tenant_id = $1::bigint and tags @> $2::jsonb`, [
      t.tenantId.toString(),
      '["urgent"]',
    ]);
    expect(text).toContain('tasks_tags_idx');
    expect(text).toMatch(/Index Cond: .*tags @>/s);
  });

  it('a worker is found by handle through the unique index', async () => {
    const text = await plan(`select id from workers where tenant_id = $1::bigint and handle_key = lower($2)`, [
      t.tenantId.toString(),
      '@Planner',
    ]);
    expect(text).toMatch(/Index Scan using workers_handle_key/);
    expect(text).toMatch(/Index Cond: .*handle_key/s);
  });
});
