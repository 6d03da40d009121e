/**
 * The benchmark's data. Tenants and API keys go through the service's TenantService (so keys are
 * real and hashed as the service hashes them); the bulk rows are inserted set-based as the owner
 * (`insert ... select ... from unnest/generate_series`), then ANALYZE. The owner here is a
 * superuser, which row-level security does not bind, so one statement fills every tenant.
 */
import { WorkerType } from '../../src/gen/taskapi/v1/resources_pb.js';
import { TenantService } from '../../src/gen/taskapi/v1/tenant_pb.js';
import { WorkerService } from '../../src/gen/taskapi/v1/worker_pb.js';
import type { RpcClient } from './clients.js';
import type { BenchData, ClaimData, TenantData, WatchData } from './data.js';
import { CLAIM_AGENTS, PENDING_TASKS_PER_PROJECT, WATCH_TASKS } from './scenarios.js';

/** What runs the owner's SQL: a pg client, or PGlite. */
export interface Sql {
  query<R>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export interface SeedSize {
  readonly tenants: number;
  readonly workersPerTenant: number;
  /** Top-level tasks per tenant; every tenth gets one subtask on top. */
  readonly tasksPerTenant: number;
  /** Tasks per project (≥ 50 so that a page by project is full). */
  readonly tasksPerProject: number;
  /** Task ids per tenant handed to the load generators. */
  readonly sampledTaskIds: number;
  /** Claimable tasks in the contended-claim project. */
  readonly claimTasks: number;
}

export const FULL_SEED: SeedSize = {
  tenants: 20,
  workersPerTenant: 50,
  tasksPerTenant: 5_000,
  tasksPerProject: 200,
  sampledTaskIds: 1_000,
  claimTasks: 5_000,
};
export const QUICK_SEED: SeedSize = {
  tenants: 20,
  workersPerTenant: 20,
  tasksPerTenant: 1_000,
  tasksPerProject: 200,
  sampledTaskIds: 300,
  claimTasks: 1_000,
};

const TAGS = ['backend', 'frontend', 'infra', 'research', 'docs', 'urgent', 'customer', 'ml'];

/** Tenants and their keys, through the API with the admin token. */
export async function createTenants(
  admin: RpcClient,
  adminToken: string,
  count: number,
): Promise<{ id: string; key: string }[]> {
  const auth = { authorization: `Bearer ${adminToken}` };
  const out: { id: string; key: string }[] = [];
  for (let i = 1; i <= count; i++) {
    const { tenant } = await admin.call(
      TenantService.method.createTenant,
      { name: `Bench tenant ${i}`, subdomain: `bench-${i}` },
      null,
      auth,
    );
    const { secret } = await admin.call(
      TenantService.method.createApiKey,
      { tenantId: tenant.id, name: 'bench' },
      null,
      auth,
    );
    out.push({ id: String(tenant.id), key: secret });
  }
  return out;
}

/** The bulk rows, set-based; returns the row counts. */
export async function seedRows(
  sql: Sql,
  tenantIds: string[],
  size: SeedSize,
): Promise<{ workers: number; projects: number; tasks: number }> {
  const ids = tenantIds;
  const [role] = (await sql.query<{ rolsuper: boolean }>('select rolsuper from pg_roles where rolname = current_user'))
    .rows;
  if (!role?.rolsuper) {
    throw new Error(
      'seeding needs a superuser connection (--database): row-level security binds every other owner to one tenant',
    );
  }
  await sql.query(
    `insert into workers (tenant_id, handle, type, email, capabilities)
     select t, '@worker-' || n, case when n % 3 = 0 then 'human' else 'agent' end,
            case when n % 3 = 0 then 'worker' || n || '@example.com' end,
            case when n % 2 = 0 then '["search", "code"]'::jsonb else '["review"]'::jsonb end
       from unnest($1::bigint[]) as t, generate_series(1, $2::int) as n`,
    [ids, size.workersPerTenant],
  );
  const projectsPerTenant = Math.max(1, Math.floor(size.tasksPerTenant / size.tasksPerProject));
  await sql.query(
    `insert into projects (tenant_id, name, description, status, metadata)
     select t, 'Project ' || n, 'Seeded project ' || n, case when n % 10 = 0 then 'completed' else 'active' end,
            jsonb_build_object('team', 'team-' || (n % 5), 'seed', n)
       from unnest($1::bigint[]) as t, generate_series(1, $2::int) as n`,
    [ids, projectsPerTenant],
  );
  // Tasks spread evenly over the tenant's projects; statuses, priorities, tags, assignees (70 %)
  // and due dates (60 %, from two months ago to two months ahead) vary with n.
  await sql.query(
    `with w as (select tenant_id, array_agg(id order by id) as ids from workers group by tenant_id),
          p as (select tenant_id, array_agg(id order by id) as ids from projects group by tenant_id)
     insert into tasks (tenant_id, project_id, title, description, status, priority, tags,
                        assignee_id, created_by_id, due_date, created_at, updated_at)
     select w.tenant_id,
            p.ids[1 + n % cardinality(p.ids)],
            'Seeded task ' || n,
            case when n % 4 = 0 then 'Details of task ' || n || ': ' || md5(n::text) else '' end,
            (array['pending', 'pending', 'pending', 'in_progress', 'in_progress', 'review', 'completed', 'completed', 'blocked'])[1 + (n * 7) % 9],
            (array['low', 'medium', 'medium', 'high', 'critical'])[1 + (n * 3) % 5],
            case when n % 8 = (n / 8) % 8 then jsonb_build_array(($3::text[])[1 + n % 8])
                 else jsonb_build_array(($3::text[])[1 + n % 8], ($3::text[])[1 + (n / 8) % 8]) end,
            case when n % 10 < 7 then w.ids[1 + (n * 13) % cardinality(w.ids)] end,
            w.ids[1 + (n * 7) % cardinality(w.ids)],
            case when n % 5 < 3 then now() + ((n % 120) - 60) * interval '1 day' + (n % 1440) * interval '1 minute' end,
            now() - (n % 90) * interval '1 day', now() - (n % 30) * interval '1 day'
       from w join p using (tenant_id), generate_series(1, $2::int) as n
      where w.tenant_id = any($1::bigint[])`,
    [ids, size.tasksPerTenant, TAGS],
  );
  await sql.query(
    `insert into tasks (tenant_id, project_id, title, status, priority, tags, assignee_id, created_by_id, parent_task_id)
     select tenant_id, project_id, 'Subtask of ' || id, 'pending', 'medium', '["sub"]', assignee_id, created_by_id, id
       from tasks where tenant_id = any($1::bigint[]) and parent_task_id is null and id % 10 = 0`,
    [ids],
  );
  await sql.query('analyze');
  const [counts] = (
    await sql.query<{ workers: string; projects: string; tasks: string }>(
      `select (select count(*) from workers) as workers, (select count(*) from projects) as projects, (select count(*) from tasks) as tasks`,
    )
  ).rows;
  return { workers: Number(counts!.workers), projects: Number(counts!.projects), tasks: Number(counts!.tasks) };
}

/** Ids for the load generators: every worker and project, and a sample of tasks that is the same on every run (ids of a fresh database are). */
export async function sampleData(sql: Sql, tenants: { id: string; key: string }[], size: SeedSize): Promise<BenchData> {
  const out: TenantData[] = [];
  for (const t of tenants) {
    const q = async (text: string, values: unknown[]) =>
      (await sql.query<{ id: string }>(text, values)).rows.map((r) => String(r.id));
    out.push({
      ...t,
      workerIds: await q('select id from workers where tenant_id = $1::bigint order by id', [t.id]),
      projectIds: await q('select id from projects where tenant_id = $1::bigint order by id', [t.id]),
      taskIds: await q('select id from tasks where tenant_id = $1::bigint order by md5(id::text) limit $2::int', [
        t.id,
        size.sampledTaskIds,
      ]),
    });
  }
  // Adjacent pairs of the seed's tag cycle occur together in about 1/32 of the tasks.
  const tagPairs = TAGS.map((tag, i) => [tag, TAGS[(i + 1) % TAGS.length]!] as [string, string]);
  return { tenants: out, tagPairs };
}

/** A fresh project of `PENDING_TASKS_PER_PROJECT` pending tasks, made set-based (untimed). */
export async function projectOfPendingTasks(sql: Sql, tenant: TenantData): Promise<string> {
  const { rows } = await sql.query<{ id: string }>(
    `with p as (insert into projects (tenant_id, name) values ($1::bigint, 'Bench completion ' || clock_timestamp()) returning id),
          t as (insert into tasks (tenant_id, project_id, title, created_by_id, assignee_id)
                select $1::bigint, p.id, 'To complete ' || n, $2::bigint, case when n % 2 = 0 then $2::bigint end
                  from p, generate_series(1, $3::int) as n)
     select id from p`,
    [tenant.id, tenant.workerIds[0], PENDING_TASKS_PER_PROJECT],
  );
  return String(rows[0]!.id);
}

const AGENT_CAPABILITIES = ['search', 'code', 'llm'];

/**
 * The contended-claim queue, in the tenant's data: `CLAIM_AGENTS` agent workers made through
 * WorkerService, each with an API key of its own bound to it (TenantService, admin token), and
 * one project of `size.claimTasks` pending, unassigned tasks (set-based, as the owner). The tasks
 * vary in priority and due date (so the claim order matters) and in required capabilities: every
 * seventh needs one no agent has ("gpu"), and every claim's scan passes over it.
 */
export async function claimQueue(
  admin: RpcClient,
  adminToken: string,
  owner: Sql,
  tenant: TenantData,
  size: SeedSize,
): Promise<ClaimData> {
  const agents: { workerId: string; key: string }[] = [];
  for (let i = 1; i <= CLAIM_AGENTS; i++) {
    const { worker } = await admin.call(
      WorkerService.method.createWorker,
      { handle: `@bench-agent-${i}`, type: WorkerType.AGENT, capabilities: AGENT_CAPABILITIES },
      tenant,
    );
    const { secret } = await admin.call(
      TenantService.method.createApiKey,
      { tenantId: BigInt(tenant.id), workerId: worker.id, name: `bench agent ${i}` },
      null,
      { authorization: `Bearer ${adminToken}` },
    );
    agents.push({ workerId: String(worker.id), key: secret });
  }
  const { rows } = await owner.query<{ id: string }>(
    `with p as (insert into projects (tenant_id, name) values ($1::bigint, 'Bench claim queue') returning id),
          t as (insert into tasks (tenant_id, project_id, title, created_by_id, priority, due_date, required_capabilities)
                select $1::bigint, p.id, 'To claim ' || n, $2::bigint,
                       (array['low', 'medium', 'medium', 'high', 'critical'])[1 + n % 5],
                       case when n % 2 = 0 then now() + (n % 30) * interval '1 day' end,
                       case n % 7 when 0 then '["gpu"]'::jsonb when 1 then '["search", "code"]' when 2 then '["llm"]'
                                  else '[]' end
                  from p, generate_series(1, $3::int) as n)
     select id from p`,
    [tenant.id, tenant.workerIds[0], size.claimTasks],
  );
  await owner.query('analyze tasks');
  return { tenantId: tenant.id, projectId: String(rows[0]!.id), capabilities: AGENT_CAPABILITIES, agents };
}

/** The watched project: `WATCH_TASKS` tasks no other scenario touches (set-based, as the owner). */
export async function watchProject(owner: Sql, tenant: TenantData): Promise<WatchData> {
  const { rows } = await owner.query<{ id: string; project_id: string }>(
    `with p as (insert into projects (tenant_id, name) values ($1::bigint, 'Bench watched project') returning id)
     insert into tasks (tenant_id, project_id, title, created_by_id)
     select $1::bigint, p.id, 'Watched ' || n, $2::bigint from p, generate_series(1, $3::int) as n
     returning id, project_id`,
    [tenant.id, tenant.workerIds[0], WATCH_TASKS],
  );
  return {
    tenantId: tenant.id,
    key: tenant.key,
    projectId: String(rows[0]!.project_id),
    taskIds: rows.map((r) => String(r.id)),
  };
}
