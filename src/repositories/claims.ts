/**
 * Claims and leases (SPEC §6): each operation is one statement. A claim picks and takes its task
 * in a single `with c as (select … for update skip locked limit 1) update … from c` (the shape
 * of River's JobGetAvailable and graphile-worker's get_job): concurrent claimers skip each
 * other's candidate rows instead of queueing on them, and no row is locked that is not handed out.
 */
import type { Tx } from '../db/index.js';
import type { Task, TaskStatus } from '../domain.js';
import { TASKS } from './rows.js';
import { Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

type Row = Record<string, unknown>;

/** A write's task before and after, from one statement. */
export interface BeforeAfter {
  readonly before: Task;
  readonly after: Task;
}

const pairs = (rows: Row[]): BeforeAfter[] =>
  rows.map((r) => ({ before: TASKS.parseAs(r, 'before'), after: TASKS.parse(r) }));

export interface ClaimFilter {
  readonly workerId: bigint;
  /** The worker's capabilities: the task's required ones must be among them. */
  readonly capabilities: readonly string[];
  readonly projectId: bigint | null;
  readonly tagsAll: readonly string[];
  readonly leaseSeconds: number;
}

/**
 * Takes the first claimable task in claim order (priority, due date with none last, id) for the
 * worker, or nothing. Claimable: pending and unassigned or assigned to this worker, or
 * in_progress whose lease expired (and was noticed: see expireLeases); in both cases not before
 * `not_before`, with every required capability held, in the project and with the tags asked for.
 * Served by tasks_claim_order_idx (tasks_claim_project_order_idx with a project).
 */
export async function claimTask(tx: Tx, f: ClaimFilter): Promise<BeforeAfter | undefined> {
  const q = new Params();
  const tenant = q.bind(tenantOf(tx), 'bigint');
  const worker = q.id(f.workerId);
  const where = [
    `t.tenant_id = ${tenant}`,
    // The predicate of the partial claim indexes, word for word, so the planner can use them.
    `(t.status = 'pending' or (t.status = 'in_progress' and t.lease_end = 'expired'))`,
    `((t.status = 'pending' and (t.assignee_id is null or t.assignee_id = ${worker}))
      or (t.status = 'in_progress' and t.lease_end = 'expired'))`,
    `(t.not_before is null or t.not_before <= now())`,
    `t.required_capabilities <@ ${q.bind(JSON.stringify(f.capabilities), 'jsonb')}`,
  ];
  if (f.projectId !== null) where.push(`t.project_id = ${q.id(f.projectId)}`);
  if (f.tagsAll.length > 0) where.push(`t.tags @> ${q.bind(JSON.stringify(f.tagsAll), 'jsonb')}`);
  const row = await tx.maybeOne<Row>(
    `with c as (
        select ${TASKS.columns('t')} from tasks t
         where ${where.join('\n           and ')}
         order by t.priority_rank desc, t.due_date, t.id
         limit 1
         for update skip locked
     )
     update tasks t set
        status = 'in_progress',
        assignee_id = ${worker},
        attempts = t.attempts + 1,
        lease_token = t.lease_token + 1,
        lease_expires_at = now() + make_interval(secs => ${q.bind(f.leaseSeconds, 'int')}),
        lease_end = null,
        version = t.version + 1,
        updated_at = now()
       from c
      where t.tenant_id = ${tenant} and t.id = c.id
      returning ${TASKS.row('t')}, ${TASKS.row('c', 'before')}`,
    q.values,
  );
  return row && pairs([row])[0];
}

/**
 * Notices up to `limit` leases of the tenant that ran out: each is marked expired (its task stays
 * in_progress and becomes claimable again) with `last_error` saying so, or, when the task has used
 * up `max_attempts`, the task is blocked: a dead letter for a human to look at. Rows another
 * transaction holds are skipped (it is claiming, heartbeating or releasing them).
 */
export async function expireLeases(tx: Tx, limit: number): Promise<BeforeAfter[]> {
  const rows = await tx.many<Row>(
    `with e as (
        select ${TASKS.columns('t')} from tasks t
         where t.tenant_id = $1::bigint and t.lease_end is null and t.lease_expires_at is not null
           and t.lease_expires_at <= now()
         order by t.lease_expires_at
         limit $2::int
         for update skip locked
     )
     update tasks t set
        lease_end = 'expired',
        status = case when e.max_attempts > 0 and e.attempts >= e.max_attempts then 'blocked' else e.status end,
        last_error = case when e.max_attempts > 0 and e.attempts >= e.max_attempts
                          then format('lease expired at %s; all %s attempts used', e.lease_expires_at, e.max_attempts)
                          else format('lease expired at %s (attempt %s)', e.lease_expires_at, e.attempts) end,
        version = t.version + 1,
        updated_at = now()
       from e
      where t.tenant_id = $1::bigint and t.id = e.id
      returning ${TASKS.row('t')}, ${TASKS.row('e', 'before')}`,
    [tenantOf(tx), limit],
  );
  return pairs(rows);
}

/** Whether the tenant has a running lease (ended or not); the reaper forgets tenants without. */
export async function hasRunningLeases(tx: Tx): Promise<boolean> {
  const row = await tx.one<{ found: boolean }>(
    `select exists (select 1 from tasks where tenant_id = $1::bigint and lease_end is null and lease_expires_at is not null) as found`,
    [tenantOf(tx)],
  );
  return row.found;
}

/** The task locked for a lease operation, with the database's clock (leases run on it, not ours). */
export async function lockTaskWithClock(tx: Tx, id: bigint): Promise<{ task: Task; now: Date } | undefined> {
  const row = await tx.maybeOne<Row & { db_now: Date }>(
    `select ${TASKS.row()}, now() as db_now from tasks where tenant_id = $1::bigint and id = $2::bigint for update`,
    [tenantOf(tx), id.toString()],
  );
  return row && { task: TASKS.parse(row), now: row.db_now };
}

/** Moves the lease's end to now + `seconds`. Not a new version: the task's content did not change. */
export async function extendLease(tx: Tx, id: bigint, seconds: number): Promise<Task> {
  const row = await tx.one<Row>(
    `update tasks set lease_expires_at = now() + make_interval(secs => $3::int)
      where tenant_id = $1::bigint and id = $2::bigint
      returning ${TASKS.row()}`,
    [tenantOf(tx), id.toString(), seconds],
  );
  return TASKS.parse(row);
}

export interface Release {
  readonly status: TaskStatus;
  readonly unassign: boolean;
  /** null keeps the last error. */
  readonly lastError: string | null;
  /** Seconds from now before the task is claimable again; null leaves not_before alone. */
  readonly retryAfterSeconds: number | null;
}

/** Ends the current lease as released, with the task's next status. */
export async function releaseTask(tx: Tx, id: bigint, r: Release): Promise<Task> {
  const q = new Params();
  const row = await tx.one<Row>(
    `update tasks set
        status = ${q.bind(r.status, 'text')},
        assignee_id = case when ${q.bind(r.unassign, 'boolean')} then null else assignee_id end,
        last_error = coalesce(${q.bind(r.lastError, 'text')}, last_error),
        not_before = case when ${q.bind(r.retryAfterSeconds, 'int')} is null then not_before
                          else now() + make_interval(secs => ${q.bind(r.retryAfterSeconds, 'int')}) end,
        lease_end = 'released',
        lease_expires_at = null,
        version = version + 1,
        updated_at = now()
      where tenant_id = ${q.bind(tenantOf(tx), 'bigint')} and id = ${q.id(id)}
      returning ${TASKS.row()}`,
    q.values,
  );
  return TASKS.parse(row);
}
