/**
 * The second wall of isolation (SPEC §5), tested below the repositories: with the service's own
 * Database, a deliberately unfiltered query in a tenant transaction sees only that tenant's
 * rows, writes of another tenant's rows are refused by row-level security, a transaction
 * without a tenant sees nothing, and nothing of a tenant transaction survives into the next one
 * on the same pooled connection. Holds in row mode and in schema mode (where the tables live in
 * schema tenant_<id> and the search path is set per transaction).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, DbError, type Tx } from '../../src/db/index.js';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { WorkerType } from '../helpers/clients.js';
import { TEST_TENANCY } from '../helpers/env.js';

const TENANT_TABLES = ['workers', 'projects', 'tasks', 'task_events', 'api_keys', 'idempotency_records'] as const;

let t: TestApp;
let db: Database;
let A: TestTenant;
let B: TestTenant;
const seeded: Record<string, { workerId: string; projectId: string; taskId: string; subtaskId: string }> = {};

/** The table as it is named from outside any tenant's search path. */
const qualified = (tenantId: bigint, table: string) =>
  TEST_TENANCY === 'schema' ? `tenant_${tenantId}.${table}` : `public.${table}`;

async function seed(tenant: TestTenant): Promise<void> {
  const c = t.client('connect', tenant.headers);
  const { worker } = await c.WorkerService.createWorker({
    handle: '@rls',
    type: WorkerType.AGENT,
    requestId: `w-${tenant.id}`,
  });
  const { project } = await c.ProjectService.createProject({ name: `rls ${tenant.id}`, requestId: `p-${tenant.id}` });
  const { task } = await c.TaskService.createTask({
    projectId: project.id,
    title: 'root',
    createdById: worker.id,
    assigneeId: worker.id,
  });
  const { task: subtask } = await c.TaskService.createTask({
    projectId: project.id,
    title: 'sub',
    createdById: worker.id,
    parentTaskId: task.id,
  });
  seeded[String(tenant.id)] = {
    workerId: String(worker.id),
    projectId: String(project.id),
    taskId: String(task.id),
    subtaskId: String(subtask.id),
  };
}

/** The DbError a transaction failed with. */
async function dbErrorOf(run: Promise<unknown>): Promise<DbError> {
  const err = await run.then(
    () => new Error('expected the database to refuse, but it did not'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DbError);
  return err as DbError;
}

async function expectRlsRefusal(run: Promise<unknown>): Promise<void> {
  const err = await dbErrorOf(run);
  expect(err.kind).toBe('permission');
  expect(err.code).toBe('42501');
}

const asTenant = <T>(tenantId: bigint, fn: (tx: Tx) => Promise<T>) => db.withTenantTransaction(tenantId, fn);

beforeAll(async () => {
  // One pooled connection (embedded mode has exactly one anyway), so that consecutive
  // transactions are known to share it.
  t = await startTestApp({ env: { DB_POOL_MAX: '1' } });
  db = t.app.database.db;
  A = await t.tenant();
  B = await t.tenant();
  await seed(A);
  await seed(B);
});
afterAll(async () => {
  await t?.stop();
});

describe('row-level security under a tenant transaction', () => {
  it.each(TENANT_TABLES)("an unfiltered select * from %s returns only that tenant's rows", async (table) => {
    for (const tenant of [A, B]) {
      const rows = await asTenant(tenant.id, (tx) => tx.many<{ tenant_id: string }>(`select * from ${table}`));
      expect(rows.length, `${table} of tenant ${tenant.id}`).toBeGreaterThan(0);
      expect(new Set(rows.map((r) => String(r.tenant_id)))).toEqual(new Set([String(tenant.id)]));
      // Asking for the other tenant's rows explicitly finds nothing either.
      const other = tenant === A ? B : A;
      const theirs = await asTenant(tenant.id, (tx) =>
        tx.many(`select * from ${table} where tenant_id = $1::bigint`, [other.id]),
      );
      expect(theirs).toEqual([]);
    }
  });

  it("joins, aggregates and recursive queries see only the tenant's rows", async () => {
    const counts = await asTenant(A.id, (tx) =>
      tx.one<{ tasks: string; tenants_of_tasks: string; joined: string; tree: string }>(
        `select (select count(*) from tasks) as tasks,
                (select count(distinct tenant_id) from tasks) as tenants_of_tasks,
                (select count(*) from tasks t join workers w on w.id = t.created_by_id) as joined,
                (with recursive tree(id) as (
                   select id from tasks where parent_task_id is null
                   union all select t.id from tasks t join tree on t.parent_task_id = tree.id)
                 select count(*) from tree) as tree`,
      ),
    );
    expect(Number(counts.tenants_of_tasks)).toBe(1);
    expect(Number(counts.joined)).toBe(Number(counts.tasks));
    expect(Number(counts.tree)).toBe(Number(counts.tasks));
    // A's ids looked up by id alone (no tenant filter) from B's transaction: only B's own rows
    // can come back (in schema mode ids are per schema, so B may have rows with the same ids).
    const { taskId, subtaskId, workerId, projectId } = seeded[String(A.id)]!;
    const found = await asTenant(B.id, (tx) =>
      tx.many<{ tenant_id: string }>(
        `select tenant_id from tasks where id = any($1::bigint[])
         union all select tenant_id from workers where id = $2::bigint
         union all select tenant_id from projects where id = $3::bigint`,
        [[taskId, subtaskId], workerId, projectId],
      ),
    );
    expect(found.filter((r) => String(r.tenant_id) !== String(B.id))).toEqual([]);
    const leaked = await asTenant(B.id, (tx) => tx.many(`select id from tasks where tenant_id <> $1::bigint`, [B.id]));
    expect(leaked).toEqual([]);
  });

  if (TEST_TENANCY === 'schema') {
    it("schema mode: another tenant's schema, named explicitly, shows no rows", async () => {
      for (const table of TENANT_TABLES) {
        const result = await asTenant(A.id, (tx) => tx.many(`select * from ${qualified(B.id, table)}`)).then(
          (rows) => rows,
          (err: unknown) => err,
        );
        if (Array.isArray(result)) expect(result, table).toEqual([]);
        else expect((result as DbError).kind, table).toBe('permission');
      }
    });
  }

  describe("writes of another tenant's rows are refused (42501)", () => {
    it("inserts with the tenant_id of B inside A's transaction", async () => {
      const b = seeded[String(B.id)]!;
      const inserts: [string, unknown[]][] = [
        [`insert into workers (tenant_id, handle) values ($1::bigint, '@intruder')`, [B.id]],
        [`insert into projects (tenant_id, name) values ($1::bigint, 'intruder')`, [B.id]],
        [
          `insert into tasks (tenant_id, project_id, title, created_by_id) values ($1::bigint, $2::bigint, 'intruder', $3::bigint)`,
          [B.id, b.projectId, b.workerId],
        ],
        [
          `insert into task_events (tenant_id, task_id, project_id, kind) values ($1::bigint, $2::bigint, $3::bigint, 'created')`,
          [B.id, b.taskId, b.projectId],
        ],
        [`insert into api_keys (tenant_id, secret_hash) values ($1::bigint, $2)`, [B.id, Buffer.alloc(32, 7)]],
        [
          `insert into idempotency_records (tenant_id, request_id, request_hash) values ($1::bigint, 'intruder', $2)`,
          [B.id, Buffer.alloc(32, 7)],
        ],
      ];
      for (const [sql, values] of inserts) await expectRlsRefusal(asTenant(A.id, (tx) => tx.exec(sql, values)));
    });

    it("moving A's own rows to B is refused; B's rows cannot be updated or deleted from A", async () => {
      const a = seeded[String(A.id)]!;
      const b = seeded[String(B.id)]!;
      for (const table of ['workers', 'projects', 'tasks', 'api_keys', 'idempotency_records']) {
        await expectRlsRefusal(asTenant(A.id, (tx) => tx.exec(`update ${table} set tenant_id = $1::bigint`, [B.id])));
      }
      // Rolled back at the end whatever it did, so that a failure cannot damage A's data.
      const ROLLBACK = new Error('rollback');
      let touched: Record<string, number> = {};
      await asTenant(A.id, async (tx) => {
        touched = {
          byTenant: await tx.exec(`update tasks set title = 'pwned' where tenant_id = $1::bigint`, [B.id]),
          byIdAndTenant: await tx.exec(
            `update projects set name = 'pwned' where id = $1::bigint and tenant_id = $2::bigint`,
            [b.projectId, B.id],
          ),
          deleteTasks: await tx.exec(`delete from tasks where tenant_id = $1::bigint`, [B.id]),
          deleteWorkers: await tx.exec(`delete from workers where tenant_id = $1::bigint`, [B.id]),
          deleteKeys: await tx.exec(`delete from api_keys where tenant_id = $1::bigint`, [B.id]),
          // A forgotten tenant filter, by id alone. In schema mode ids are per schema, so the
          // same id may name one of A's own rows there: only row mode can tell.
          ...(TEST_TENANCY === 'row'
            ? { byIdOnly: await tx.exec(`update tasks set title = 'pwned' where id = $1::bigint`, [b.taskId]) }
            : {}),
        };
        throw ROLLBACK;
      }).catch((err: unknown) => {
        if (err !== ROLLBACK) throw err;
      });
      expect(
        Object.values(touched).every((n) => n === 0),
        JSON.stringify(touched),
      ).toBe(true);
      expect(Object.keys(touched).length).toBeGreaterThanOrEqual(5);
      // History is append-only, even for the tenant's own events.
      await expectRlsRefusal(
        asTenant(A.id, (tx) =>
          tx.exec(`update task_events set kind = 'updated' where task_id = $1::bigint`, [a.taskId]),
        ),
      );
      await expectRlsRefusal(
        asTenant(A.id, (tx) => tx.exec(`delete from task_events where task_id = $1::bigint`, [a.taskId])),
      );
      // B's data is intact.
      const bTask = await asTenant(B.id, (tx) =>
        tx.one<{ title: string; version: string }>(`select title, version from tasks where id = $1::bigint`, [
          b.taskId,
        ]),
      );
      expect(bTask).toEqual({ title: 'root', version: '1' });
      const bCounts = await asTenant(B.id, (tx) =>
        tx.one<{ workers: string; keys: string }>(
          `select (select count(*) from workers) as workers, (select count(*) from api_keys) as keys`,
        ),
      );
      expect(Number(bCounts.workers)).toBe(1);
      expect(Number(bCounts.keys)).toBe(1);
    });
  });
});

describe('a transaction without a tenant', () => {
  it('sees no tenant rows in any tenant table and cannot write one', async () => {
    for (const tenant of [A, B]) {
      for (const table of TENANT_TABLES) {
        const rows = await db.withTransaction((tx) => tx.many(`select * from ${qualified(tenant.id, table)}`));
        expect(rows, `${table} of ${tenant.id}`).toEqual([]);
      }
    }
    await expectRlsRefusal(
      db.withTransaction((tx) =>
        tx.exec(`insert into ${qualified(A.id, 'projects')} (tenant_id, name) values ($1::bigint, 'no tenant')`, [
          A.id,
        ]),
      ),
    );
    // The tenant registry itself is readable: it is not tenant-owned.
    const tenants = await db.withTransaction((tx) =>
      tx.many<{ id: string }>('select id from public.tenants where id = any($1::bigint[])', [[A.id, B.id]]),
    );
    expect(tenants.map((r) => String(r.id)).sort()).toEqual([String(A.id), String(B.id)].sort());
  });
});

describe('nothing of a tenant transaction survives into the next one', () => {
  const SESSION = `select pg_backend_pid() as pid, current_setting('app.tenant_id', true) as tenant,
                          current_user as usr, current_setting('search_path') as search_path`;
  type Session = { pid: number; tenant: string | null; usr: string; search_path: string };

  it('the next transaction on the same connection has no tenant, and sees no rows', async () => {
    const inside = await asTenant(A.id, (tx) => tx.one<Session>(SESSION));
    expect(inside.tenant).toBe(String(A.id));
    expect(inside.usr).toBe('taskapi_app');
    if (TEST_TENANCY === 'schema') expect(inside.search_path).toContain(`tenant_${A.id}`);

    const next = await db.withTransaction((tx) => tx.one<Session>(SESSION));
    expect(next.pid).toBe(inside.pid);
    expect([null, '']).toContain(next.tenant);
    expect(next.search_path).not.toContain('tenant_');
    const rows = await db.withTransaction((tx) => tx.many(`select * from ${qualified(A.id, 'tasks')}`));
    expect(rows).toEqual([]);

    // Outside any transaction, on the raw pooled connection: no tenant, no app role.
    const raw = await db.withClient(async (client) => (await client.query<Session>(SESSION)).rows[0]!);
    expect(raw.pid).toBe(inside.pid);
    expect([null, '']).toContain(raw.tenant);
    expect(raw.usr).not.toBe('taskapi_app');
    expect(raw.search_path).not.toContain('tenant_');
  });

  it('also after a tenant transaction that failed and rolled back', async () => {
    const failed = await asTenant(A.id, async (tx) => {
      await tx.one(SESSION);
      throw new Error('boom');
    }).catch((e: Error) => e.message);
    expect(failed).toBe('boom');
    await dbErrorOf(asTenant(A.id, (tx) => tx.exec('select 1/0')));
    const next = await db.withTransaction((tx) => tx.one<Session>(SESSION));
    expect([null, '']).toContain(next.tenant);
    // And the next tenant transaction is B's alone.
    const seen = await asTenant(B.id, (tx) => tx.many<{ tenant_id: string }>('select tenant_id from tasks'));
    expect(new Set(seen.map((r) => String(r.tenant_id)))).toEqual(new Set([String(B.id)]));
  });
});

describe('the role tenant transactions run as', () => {
  it('is taskapi_app: not superuser, not BYPASSRLS, owner of nothing, member of no owner', async () => {
    const role = await asTenant(A.id, (tx) =>
      tx.one<{ usr: string; rolsuper: boolean; rolbypassrls: boolean; owned: string; row_security: string }>(
        `select current_user as usr, r.rolsuper, r.rolbypassrls,
                (select count(*) from pg_class c where c.relowner = r.oid) as owned,
                current_setting('row_security') as row_security
           from pg_roles r where r.rolname = current_user`,
      ),
    );
    expect(role).toEqual({ usr: 'taskapi_app', rolsuper: false, rolbypassrls: false, owned: '0', row_security: 'on' });

    const tables = await db.withTransaction(
      (tx) =>
        tx.many<{ name: string; owner: string; app_is_member: boolean; rls: boolean; forced: boolean }>(
          `select n.nspname || '.' || c.relname as name, pg_get_userbyid(c.relowner) as owner,
                  pg_has_role('taskapi_app', c.relowner, 'member') as app_is_member,
                  c.relrowsecurity as rls, c.relforcerowsecurity as forced
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind = 'r' and c.relname = any($1::text[]) and n.nspname = any($2::text[])`,
          [TENANT_TABLES, TEST_TENANCY === 'schema' ? [`tenant_${A.id}`, `tenant_${B.id}`] : ['public']],
        ),
      { asOwner: true },
    );
    expect(tables.length).toBe(TENANT_TABLES.length * (TEST_TENANCY === 'schema' ? 2 : 1));
    for (const table of tables) {
      expect(table.owner, table.name).not.toBe('taskapi_app');
      expect(table.app_is_member, table.name).toBe(false);
      expect(table.rls, table.name).toBe(true);
      expect(table.forced, table.name).toBe(true);
    }
  });
});
