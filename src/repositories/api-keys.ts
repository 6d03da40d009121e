import type { Prologue, PrologueRows, Tx } from '../db/index.js';
import { tenantOf } from './tenant-scope.js';

export interface ApiKeyRecord {
  readonly id: bigint;
  readonly workerId: bigint | null;
  readonly revoked: boolean;
}

export async function insertApiKey(
  tx: Tx,
  input: { name: string; workerId: bigint | null; secretHash: Buffer },
): Promise<bigint> {
  const row = await tx.one<{ id: string }>(
    `insert into api_keys (tenant_id, name, worker_id, secret_hash) values ($1::bigint, $2, $3::bigint, $4) returning id`,
    [tenantOf(tx), input.name, input.workerId === null ? null : input.workerId.toString(), input.secretHash],
  );
  return BigInt(row.id);
}

const FIND_BY_HASH = `select id, worker_id, revoked_at is not null as revoked
       from api_keys where tenant_id = $1::bigint and secret_hash = $2`;

interface ApiKeyRow {
  id: string;
  worker_id: string | null;
  revoked: boolean;
}

const toApiKey = (row: ApiKeyRow): ApiKeyRecord => ({
  id: BigInt(row.id),
  workerId: row.worker_id === null ? null : BigInt(row.worker_id),
  revoked: row.revoked,
});

/** The key whose secret hashes to `secretHash` (only hashes are stored, never secrets). */
export async function findApiKeyByHash(tx: Tx, secretHash: Buffer): Promise<ApiKeyRecord | undefined> {
  const row = await tx.maybeOne<ApiKeyRow>(FIND_BY_HASH, [tenantOf(tx), secretHash]);
  return row && toApiKey(row);
}

/**
 * The caller's key checked as a transaction prologue: it travels with BEGIN, so checking the
 * key costs no round trip of its own. It REFUSES (api_key_check raises 28000, a DbError of kind
 * 'refused' with the reason as its message) when no key of the tenant has the hash or the key
 * was revoked, and PostgreSQL then runs nothing after it: a one-statement read can travel in the
 * same round trip (TransactionOptions.oneStatement). Read its answer with `apiKeyFromPrologue`.
 */
export function apiKeyPrologue(tenantId: bigint, secretHash: Buffer): Prologue {
  return { text: 'select api_key_check($1::bigint, $2) as worker_id', values: [tenantId.toString(), secretHash] };
}

/** The worker the accepted key is bound to (null: none); undefined without the prologue's row. */
export function apiKeyFromPrologue(rows: PrologueRows): { workerId: bigint | null } | undefined {
  const row = rows.length === 1 ? (rows[0] as { worker_id: string | null }) : undefined;
  return row && { workerId: row.worker_id === null ? null : BigInt(row.worker_id) };
}

/** Revokes the key; true when it exists (revoking twice is not an error). */
export async function revokeApiKey(tx: Tx, id: bigint): Promise<boolean> {
  const n = await tx.exec(
    `update api_keys set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1::bigint and id = $2::bigint`,
    [tenantOf(tx), id.toString()],
  );
  return n > 0;
}
