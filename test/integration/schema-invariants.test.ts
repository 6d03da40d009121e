/**
 * Invariants of the migrated schema (row mode), read from the catalog (SPEC §3, §5): every
 * tenant-owned table keys, references and indexes by tenant_id first (so that rows can never
 * point into another tenant, and the schema distributes by tenant_id on Citus), row-level
 * security is enabled and forced on each, and the service's role owns none of them and cannot
 * bypass the policies. Runs in the row-mode projects only (the file name is not isolation*).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenDatabase, Tx } from '../../src/db/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const APP_ROLE = 'taskapi_app';
const EXPECTED_TENANT_TABLES = ['api_keys', 'idempotency_records', 'projects', 'task_events', 'tasks', 'workers'];

let testDb: TestDatabase;
let opened: OpenDatabase;
/** Tables of schema public with a tenant_id column, except the registry itself. */
let tenantTables: string[];

const catalog = <T>(fn: (tx: Tx) => Promise<T>) => opened.db.withTransaction(fn, { asOwner: true, readOnly: true });

beforeAll(async () => {
  testDb = await createTestDatabase({ tenancy: 'row' });
  opened = await testDb.open();
  const rows = await catalog((tx) =>
    tx.many<{ name: string }>(
      `select c.relname as name
         from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
        where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname <> 'tenants'
        order by 1`,
    ),
  );
  tenantTables = rows.map((r) => r.name);
});
afterAll(async () => {
  await opened?.close();
  await testDb?.drop();
});

describe('tenant-owned tables', () => {
  it('are the expected ones, with tenant_id not null and referencing tenants (history aside)', async () => {
    expect(tenantTables).toEqual(EXPECTED_TENANT_TABLES);
    const nullable = await catalog((tx) =>
      tx.many<{ name: string }>(
        `select c.relname as name from pg_attribute a join pg_class c on c.oid = a.attrelid
          where c.relname = any($1::text[]) and c.relnamespace = 'public'::regnamespace
            and a.attname = 'tenant_id' and not a.attnotnull`,
        [tenantTables],
      ),
    );
    expect(nullable).toEqual([]);
    const toTenants = await catalog((tx) =>
      tx.many<{ name: string }>(
        `select distinct c.relname as name from pg_constraint k join pg_class c on c.oid = k.conrelid
          where k.contype = 'f' and k.confrelid = 'public.tenants'::regclass and c.relname = any($1::text[])
          order by 1`,
        [tenantTables],
      ),
    );
    // task_events alone has no foreign key to tenants: the append-only history is the hottest
    // insert, checked row by row (migration 1764300000000 says what holds its tenant_id instead:
    // row-level security, asserted for every tenant table below).
    expect(toTenants.map((r) => r.name)).toEqual(tenantTables.filter((name) => name !== 'task_events'));
  });

  it('have tenant_id first in their primary key', async () => {
    const rows = await catalog((tx) =>
      tx.many<{ name: string; first: string | null; cols: string[] }>(
        `select c.relname as name,
                (select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum = k.conkey[1]) as first,
                array(select a.attname from unnest(k.conkey) with ordinality u(n, i)
                        join pg_attribute a on a.attrelid = c.oid and a.attnum = u.n order by u.i)::text[] as cols
           from pg_class c left join pg_constraint k on k.conrelid = c.oid and k.contype = 'p'
          where c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[])
          order by 1`,
        [tenantTables],
      ),
    );
    expect(rows).toHaveLength(tenantTables.length);
    for (const row of rows) {
      expect(row.first, `primary key of ${row.name}: (${row.cols})`).toBe('tenant_id');
      expect(row.cols.length, `primary key of ${row.name}`).toBeGreaterThanOrEqual(2);
    }
  });

  it('lead every index with tenant_id, unique ones (constraints and indexes) included', async () => {
    const rows = await catalog((tx) =>
      tx.many<{ tbl: string; idx: string; first: string | null; is_unique: boolean; def: string }>(
        `select c.relname as tbl, i.relname as idx, x.indisunique as is_unique,
                (select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum = x.indkey[0]) as first,
                pg_get_indexdef(x.indexrelid) as def
           from pg_index x
           join pg_class c on c.oid = x.indrelid
           join pg_class i on i.oid = x.indexrelid
          where c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[])
          order by 1, 2`,
        [tenantTables],
      ),
    );
    expect(rows.length).toBeGreaterThan(tenantTables.length);
    expect(rows.map((r) => r.idx)).toEqual(
      expect.arrayContaining(['workers_handle_key', 'api_keys_secret_hash_key', 'tasks_tags_idx', 'tasks_pkey']),
    );
    for (const row of rows) expect(row.first, row.def).toBe('tenant_id');
    // Every table has its unique indexes covered (the primary key at least).
    const uniqueTables = new Set(rows.filter((r) => r.is_unique).map((r) => r.tbl));
    expect([...uniqueTables].sort()).toEqual(tenantTables);

    const constraints = await catalog((tx) =>
      tx.many<{ name: string; first: string | null; def: string }>(
        `select k.conname as name, pg_get_constraintdef(k.oid) as def,
                (select a.attname from pg_attribute a where a.attrelid = k.conrelid and a.attnum = k.conkey[1]) as first
           from pg_constraint k join pg_class c on c.oid = k.conrelid
          where k.contype in ('u', 'p', 'x') and c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[])`,
        [tenantTables],
      ),
    );
    for (const k of constraints) expect(k.first, `${k.name}: ${k.def}`).toBe('tenant_id');
  });

  it('reference each other only through tenant_id (composite foreign keys)', async () => {
    const fks = await catalog((tx) =>
      tx.many<{ name: string; def: string; pairs: string[]; deltype: string; setcols: string[] | null }>(
        `select k.conname as name, pg_get_constraintdef(k.oid) as def, k.confdeltype::text as deltype,
                array(select a.attname || '->' || b.attname
                        from unnest(k.conkey, k.confkey) with ordinality u(src, dst, i)
                        join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.src
                        join pg_attribute b on b.attrelid = k.confrelid and b.attnum = u.dst
                       order by u.i)::text[] as pairs,
                (select array_agg(a.attname::text) from unnest(k.confdelsetcols) s(n)
                   join pg_attribute a on a.attrelid = k.conrelid and a.attnum = s.n) as setcols
           from pg_constraint k
           join pg_class src on src.oid = k.conrelid
           join pg_class dst on dst.oid = k.confrelid
          where k.contype = 'f' and src.relnamespace = 'public'::regnamespace
            and src.relname = any($1::text[]) and dst.relname = any($1::text[])
          order by 1`,
        [tenantTables],
      ),
    );
    const names = fks.map((f) => f.name);
    for (const expected of [
      'tasks_project_fkey',
      'tasks_assignee_fkey',
      'tasks_created_by_fkey',
      'tasks_parent_fkey',
      'api_keys_worker_fkey',
    ]) {
      expect(names).toContain(expected);
    }
    for (const fk of fks) {
      expect(fk.pairs[0], fk.def).toBe('tenant_id->tenant_id');
      expect(fk.pairs.length, fk.def).toBeGreaterThanOrEqual(2);
      // ON DELETE SET NULL must name its columns, or it would null tenant_id too.
      if (fk.deltype === 'n' || fk.deltype === 'd') {
        expect(fk.setcols, fk.def).not.toBeNull();
        expect(fk.setcols, fk.def).not.toContain('tenant_id');
      }
    }
    // No tenant table references another one without a foreign key of this shape.
    const anyOther = await catalog((tx) =>
      tx.many<{ name: string }>(
        `select k.conname as name from pg_constraint k join pg_class src on src.oid = k.conrelid
          where k.contype = 'f' and src.relnamespace = 'public'::regnamespace and src.relname = any($1::text[])
            and k.confrelid <> 'public.tenants'::regclass
            and not exists (select 1 from pg_class dst where dst.oid = k.confrelid and dst.relname = any($1::text[]))`,
        [tenantTables],
      ),
    );
    expect(anyOther).toEqual([]);
  });

  it('use bigint ids and timestamptz timestamps', async () => {
    const cols = await catalog((tx) =>
      tx.many<{ tbl: string; col: string; type: string }>(
        `select c.relname as tbl, a.attname as col, format_type(a.atttypid, a.atttypmod) as type
           from pg_attribute a join pg_class c on c.oid = a.attrelid
          where c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[] || array['tenants'])
            and a.attnum > 0 and not a.attisdropped
            and (a.attname = 'id' or a.attname like '%\\_id' or a.attname like '%\\_at' or a.attname = 'due_date')`,
        [tenantTables],
      ),
    );
    expect(cols.map((c) => `${c.tbl}.${c.col}`)).toEqual(
      expect.arrayContaining([
        'tasks.id',
        'tasks.project_id',
        'tasks.due_date',
        'tasks.created_at',
        'workers.tenant_id',
        'tenants.id',
      ]),
    );
    for (const c of cols) {
      // xact_id is no row id: the writing transaction of an event (the change feed's outbox stamp).
      const special: Record<string, string> = { request_id: 'text', xact_id: 'xid8' };
      const expected =
        c.col.endsWith('_at') || c.col === 'due_date' ? 'timestamp with time zone' : (special[c.col] ?? 'bigint');
      expect(c.type, `${c.tbl}.${c.col}`).toBe(expected);
    }
  });

  it('have row-level security enabled and forced, with a tenant policy for reads and writes', async () => {
    const rows = await catalog((tx) =>
      tx.many<{ name: string; rls: boolean; forced: boolean; policies: string; using_ok: boolean; check_ok: boolean }>(
        `select c.relname as name, c.relrowsecurity as rls, c.relforcerowsecurity as forced,
                (select count(*) from pg_policy p where p.polrelid = c.oid) as policies,
                coalesce((select bool_and(pg_get_expr(p.polqual, p.polrelid) like '%app.tenant_id%')
                            from pg_policy p where p.polrelid = c.oid), false) as using_ok,
                coalesce((select bool_and(p.polcmd in ('r', 'd') or pg_get_expr(p.polwithcheck, p.polrelid) like '%app.tenant_id%')
                            from pg_policy p where p.polrelid = c.oid), false) as check_ok
           from pg_class c
          where c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[])
          order by 1`,
        [tenantTables],
      ),
    );
    expect(rows.map((r) => r.name)).toEqual(tenantTables);
    for (const r of rows) {
      expect(r, r.name).toMatchObject({ rls: true, forced: true, using_ok: true, check_ok: true });
      expect(Number(r.policies), r.name).toBeGreaterThanOrEqual(1);
    }
  });

  it('have a GIN index on tasks.tags (leading with tenant_id)', async () => {
    const rows = await catalog((tx) =>
      tx.many<{ idx: string; def: string }>(
        `select i.relname as idx, pg_get_indexdef(x.indexrelid) as def
           from pg_index x
           join pg_class i on i.oid = x.indexrelid
           join pg_am am on am.oid = i.relam
          where x.indrelid = 'public.tasks'::regclass and am.amname = 'gin'
            and exists (select 1 from unnest(x.indkey) k(n)
                          join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n where a.attname = 'tags')`,
      ),
    );
    expect(rows.length, 'a GIN index on tasks.tags').toBeGreaterThanOrEqual(1);
    expect(rows[0]!.def).toMatch(/USING gin \(tenant_id, tags/);
  });
});

describe(`the app role ${APP_ROLE}`, () => {
  it('exists, is not superuser, cannot bypass RLS and cannot log in', async () => {
    const role = await catalog((tx) =>
      tx.maybeOne<{
        rolsuper: boolean;
        rolbypassrls: boolean;
        rolcanlogin: boolean;
        rolcreaterole: boolean;
        rolcreatedb: boolean;
      }>(`select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb from pg_roles where rolname = $1`, [
        APP_ROLE,
      ]),
    );
    expect(role).toEqual({
      rolsuper: false,
      rolbypassrls: false,
      rolcanlogin: false,
      rolcreaterole: false,
      rolcreatedb: false,
    });
  });

  it('owns none of the tables, is no member of their owner, and cannot TRUNCATE (which skips RLS)', async () => {
    const rows = await catalog((tx) =>
      tx.many<{ name: string; owner: string; member: boolean; truncate: boolean; trigger: boolean }>(
        `select c.relname as name, pg_get_userbyid(c.relowner) as owner,
                pg_has_role($2, c.relowner, 'member') as member,
                has_table_privilege($2, c.oid, 'truncate') as truncate,
                has_table_privilege($2, c.oid, 'trigger') as trigger
           from pg_class c
          where c.relnamespace = 'public'::regnamespace and c.relname = any($1::text[] || array['tenants'])
          order by 1`,
        [tenantTables, APP_ROLE],
      ),
    );
    expect(rows).toHaveLength(tenantTables.length + 1);
    for (const r of rows) {
      expect(r.owner, r.name).not.toBe(APP_ROLE);
      expect(r, r.name).toMatchObject({ member: false, truncate: false, trigger: false });
    }
    const owned = await catalog((tx) =>
      tx.one<{ n: string }>(
        `select count(*) as n from pg_class where relowner = (select oid from pg_roles where rolname = $1)`,
        [APP_ROLE],
      ),
    );
    expect(owned.n).toBe('0');
  });

  it('may only append to task_events (no update or delete)', async () => {
    const privs = await catalog((tx) =>
      tx.one<{ sel: boolean; ins: boolean; upd: boolean; del: boolean }>(
        `select has_table_privilege($1, 'public.task_events', 'select') as sel,
                has_table_privilege($1, 'public.task_events', 'insert') as ins,
                has_table_privilege($1, 'public.task_events', 'update') as upd,
                has_table_privilege($1, 'public.task_events', 'delete') as del`,
        [APP_ROLE],
      ),
    );
    expect(privs).toEqual({ sel: true, ins: true, upd: false, del: false });
  });
});
