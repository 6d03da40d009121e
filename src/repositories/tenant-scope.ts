import type { Tx } from '../db/index.js';

/**
 * The tenant of a tenant transaction, bound as $1 of every tenant-owned query: the first wall
 * of isolation (row-level security is the second).
 * @throws Error when called in a transaction that belongs to no tenant (a programming error).
 */
export function tenantOf(tx: Tx): string {
  if (tx.tenantId === null) throw new Error('tenant-owned data needs a tenant transaction');
  return tx.tenantId.toString();
}
