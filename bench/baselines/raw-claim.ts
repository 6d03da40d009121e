/**
 * Baseline of the contended claim: what a claim and its release cost with no service at all. A
 * plain `pg` pool of the service's size; each operation is one tenant transaction with the
 * service's guarantees — role taskapi_app, app.tenant_id set locally (row-level security
 * applies), a statement timeout — and ONE named statement: the service's claim statement
 * (src/repositories/claims.ts: the same predicate, order, `for update skip locked` and columns
 * written) or a release that checks the lease in its WHERE. Each statement also appends the
 * history row the spec requires of every write (the triggers that stamp its feed position and
 * NOTIFY the streams fire as for the service's), so both sides write the same rows.
 *
 * Left out, and so part of what the ratio measures: the API key check, the lookup of the worker's
 * capabilities (passed in here), the sweep for expired leases before each claim, the task's
 * relations in the claim's answer, and the read of the task before its release.
 */
import type { DescMethodUnary } from '@bufbuild/protobuf';
import pg from 'pg';
import type { RpcClient } from '../lib/clients.js';
import type { ClaimData } from '../lib/data.js';
import { inTenant, TASK_COLUMNS } from './bare-sql.js';

const CLAIMABLE = `t.tenant_id = $1::bigint
           and (t.status = 'pending' or (t.status = 'in_progress' and t.lease_end = 'expired'))
           and ((t.status = 'pending' and (t.assignee_id is null or t.assignee_id = $2::bigint))
                or (t.status = 'in_progress' and t.lease_end = 'expired'))
           and (t.not_before is null or t.not_before <= now())
           and t.required_capabilities <@ $3::jsonb
           and t.project_id = $4::bigint`;
const change = (field: string, before: string, after: string) =>
  `'${field}', jsonb_build_object('before', ${before}, 'after', ${after})`;

/** $1 tenant, $2 worker, $3 the worker's capabilities, $4 project, $5 lease seconds. */
const CLAIM = {
  name: 'raw_claim',
  text: `with c as (
            select t.id, t.status, t.assignee_id, t.attempts, t.lease_token, t.lease_expires_at, t.version
              from tasks t
             where ${CLAIMABLE}
             order by t.priority_rank desc, t.due_date, t.id
             limit 1
             for update skip locked
         ),
         u as (
            update tasks t set
               status = 'in_progress', assignee_id = $2::bigint, attempts = t.attempts + 1,
               lease_token = t.lease_token + 1, lease_expires_at = now() + make_interval(secs => $5::int),
               lease_end = null, version = t.version + 1, updated_at = now()
              from c
             where t.tenant_id = $1::bigint and t.id = c.id
            returning ${TASK_COLUMNS}, t.lease_token, t.attempts, t.lease_expires_at as lease_expires,
                      c.status as b_status, c.assignee_id as b_assignee, c.attempts as b_attempts,
                      c.lease_token as b_token, c.lease_expires_at as b_expires, c.version as b_version
         ),
         e as (
            insert into task_events (tenant_id, task_id, project_id, kind, actor_id, task_version, data)
            select $1::bigint, u.id, u.project_id, 'claimed', $2::bigint, u.version,
                   jsonb_build_object('lease_token', u.lease_token::text, 'changes', jsonb_build_object(
                     ${change('status', 'u.b_status', 'u.status')},
                     ${change('assignee_id', 'u.b_assignee::text', 'u.assignee_id::text')},
                     ${change('attempts', 'u.b_attempts', 'u.attempts')},
                     ${change('lease_token', 'u.b_token::text', 'u.lease_token::text')},
                     ${change('lease_expires_at', 'u.b_expires', 'u.lease_expires')},
                     ${change('version', 'u.b_version::text', 'u.version::text')}))
              from u
         )
         select u.id, u.title, u.description, u.status, u.priority, u.tags, u.project_id, u.assignee_id,
                u.created_by_id, u.parent_task_id, u.created_at, u.updated_at, u.due_date, u.version,
                u.lease_expires_at, u.lease_token, u.attempts
           from u`,
};

/**
 * Gives the task back (pending, unassigned, claimable at once), only while the lease is current.
 * $1 tenant, $2 task, $3 lease token, $4 worker. (The service blocks a task given back after its
 * last attempt; the queue's tasks have unlimited attempts.)
 */
const RELEASE = {
  name: 'raw_release',
  text: `with b as (
            select t.id, t.status, t.assignee_id, t.last_error, t.lease_expires_at, t.version
              from tasks t
             where t.tenant_id = $1::bigint and t.id = $2::bigint and t.lease_token = $3::bigint
               and t.lease_end is null and t.lease_expires_at > now()
               for update
         ),
         u as (
            update tasks t set
               status = 'pending', assignee_id = null, last_error = 'given back', lease_end = 'released',
               lease_expires_at = null, version = t.version + 1, updated_at = now()
              from b
             where t.tenant_id = $1::bigint and t.id = b.id
            returning t.id, t.project_id, t.status, t.last_error, t.version, b.status as b_status,
                      b.assignee_id as b_assignee, b.last_error as b_error, b.lease_expires_at as b_expires,
                      b.version as b_version
         ),
         e as (
            insert into task_events (tenant_id, task_id, project_id, kind, actor_id, task_version, data)
            select $1::bigint, u.id, u.project_id, 'released', $4::bigint, u.version,
                   jsonb_build_object('lease_token', $3::bigint::text, 'requested_status', 'pending', 'changes', jsonb_build_object(
                     ${change('status', 'u.b_status', 'u.status')},
                     ${change('assignee_id', 'u.b_assignee::text', 'null::text')},
                     ${change('last_error', 'u.b_error', 'u.last_error')},
                     ${change('lease_expires_at', 'u.b_expires', 'null::timestamptz')},
                     ${change('version', 'u.b_version::text', 'u.version::text')}))
              from u
         )
         select u.id, u.version from u`,
};

/**
 * The raw claim loop behind the load generator's calling convention: ClaimTask and ReleaseTask
 * requests in, answers shaped like the messages' fields the scenario checks out.
 * @param env DATABASE_URL and DB_POOL_MAX, as the service gets them.
 */
export function openRawClaims(env: Record<string, string>, claim: ClaimData): RpcClient & { end(): Promise<void> } {
  const pool = new pg.Pool({
    connectionString: env.DATABASE_URL,
    max: Number(env.DB_POOL_MAX ?? 10),
    application_name: 'taskapi-bench-raw-claims',
  });
  pool.on('error', () => {});
  const capabilities = JSON.stringify(claim.capabilities);
  const tenantTx = <T>(tenantId: string, fn: (c: pg.PoolClient) => Promise<T>) =>
    inTenant(pool, { tenantId, timeoutMs: 30_000 }, fn);
  return {
    async call(method: DescMethodUnary, r, tenant) {
      const workerId = tenant!.workerIds[0]!;
      if (method.name === 'ClaimTask') {
        const { rows } = await tenantTx(tenant!.id, (c) =>
          c.query({
            ...CLAIM,
            values: [tenant!.id, workerId, capabilities, String(r.projectId), r.leaseSeconds],
          }),
        );
        const row = rows[0];
        if (!row) return {};
        return {
          task: { ...row, id: BigInt(row.id), assigneeId: BigInt(row.assignee_id) },
          leaseToken: BigInt(row.lease_token),
        };
      }
      if (method.name === 'ReleaseTask') {
        const { rows } = await tenantTx(tenant!.id, (c) =>
          c.query({ ...RELEASE, values: [tenant!.id, String(r.id), String(r.leaseToken), workerId] }),
        );
        if (!rows[0]) throw new Error('FAILED_PRECONDITION: the lease is not current');
        return { task: { id: BigInt(rows[0].id), version: BigInt(rows[0].version) } };
      }
      throw new Error(`the raw claim loop has no ${method.name}`);
    },
    close() {
      void pool.end();
    },
    end: () => pool.end(),
  };
}
