import type { Tx } from '../db/index.js';
import type { JsonValue } from '../domain.js';
import { tenantOf } from './tenant-scope.js';

/**
 * Claims `requestId` for this request. True when this transaction inserted the record (the
 * request runs); false when the id was already taken. A concurrent claim of the same id waits
 * on the unique index until the first transaction ends, then sees its outcome.
 */
export async function claimRequestId(tx: Tx, requestId: string, requestHash: Buffer): Promise<boolean> {
  const row = await tx.maybeOne<{ request_id: string }>(
    `insert into idempotency_records (tenant_id, request_id, request_hash) values ($1::bigint, $2, $3)
     on conflict (tenant_id, request_id) do nothing returning request_id`,
    [tenantOf(tx), requestId, requestHash],
  );
  return row !== undefined;
}

export async function saveResponse(tx: Tx, requestId: string, response: JsonValue): Promise<void> {
  await tx.exec(
    `update idempotency_records set response = $3::jsonb where tenant_id = $1::bigint and request_id = $2`,
    [tenantOf(tx), requestId, JSON.stringify(response)],
  );
}

export async function findRecord(
  tx: Tx,
  requestId: string,
): Promise<{ requestHash: Buffer; response: JsonValue | null } | undefined> {
  const row = await tx.maybeOne<{ request_hash: Buffer; response: JsonValue | null }>(
    `select request_hash, response from idempotency_records where tenant_id = $1::bigint and request_id = $2`,
    [tenantOf(tx), requestId],
  );
  return row && { requestHash: row.request_hash, response: row.response };
}

/** Deletes the tenant's records older than `maxAgeSeconds`; returns how many. */
export async function deleteExpiredRecords(tx: Tx, maxAgeSeconds: number): Promise<number> {
  return tx.exec(
    `delete from idempotency_records
      where tenant_id = $1::bigint and created_at < now() - make_interval(secs => $2::double precision)`,
    [tenantOf(tx), maxAgeSeconds],
  );
}
