/**
 * What a waiting ClaimTask needs besides notifications: when time alone (no write, hence no
 * notification) may make a task claimable for this worker, i.e. the earliest `not_before` of a
 * pending task it could take, or the earliest end of a running lease (an expired lease is
 * claimable once noticed, which the next claim does). The same filters as the claim.
 */
import type { Tx } from '../db/index.js';
import { Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

export interface ClaimWaitFilter {
  readonly workerId: bigint;
  readonly projectId: bigint | null;
  readonly tagsAll: readonly string[];
}

/**
 * Milliseconds (by the database's clock) until the earliest such moment, 0 when it has already
 * passed, or null when there is none.
 */
export async function msUntilClaimable(tx: Tx, f: ClaimWaitFilter): Promise<number | null> {
  const q = new Params();
  const tenant = q.bind(tenantOf(tx), 'bigint');
  const worker = q.id(f.workerId);
  const filters = [
    `t.required_capabilities <@ coalesce((select w.capabilities from workers w where w.tenant_id = ${tenant} and w.id = ${worker}), '[]'::jsonb)`,
  ];
  if (f.projectId !== null) filters.push(`t.project_id = ${q.id(f.projectId)}`);
  if (f.tagsAll.length > 0) filters.push(`t.tags @> ${q.bind(JSON.stringify(f.tagsAll), 'jsonb')}`);
  const and = filters.map((x) => `and ${x}`).join(' ');
  const row = await tx.one<{ ms: string | null }>(
    `select greatest(0, ceil(extract(epoch from (least(
        (select min(t.not_before) from tasks t
          where t.tenant_id = ${tenant} and t.status = 'pending' and t.not_before is not null
            and (t.assignee_id is null or t.assignee_id = ${worker}) ${and}),
        (select min(t.lease_expires_at) from tasks t
          where t.tenant_id = ${tenant} and t.lease_end is null and t.lease_expires_at is not null ${and})
     ) - now())) * 1000))::text as ms`,
    q.values,
  );
  return row.ms === null ? null : Number(row.ms);
}
