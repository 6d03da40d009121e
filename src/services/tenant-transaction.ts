/**
 * The transaction every tenant call runs in: bound to the caller's tenant (row-level security),
 * bounded by the caller's deadline, the caller's API key checked by its first statement, and
 * violated constraints turned into the client's errors.
 */
import type { Database, TransactionOptions, Tx } from '../db/index.js';
import { AppError } from '../errors.js';
import { apiKeyFromPrologue, apiKeyPrologue } from '../repositories/api-keys.js';
import type { Actor, Caller } from './caller.js';
import { explainDbError } from './constraint-errors.js';
import { observed } from './statement-listeners.js';

/**
 * The caller's deadline and cancellation, and its API key checked by the transaction's first
 * statement (the prologue), with `extra`.
 */
function txOptions(caller: Caller, extra: TransactionOptions = {}): TransactionOptions {
  return {
    signal: caller.signal,
    timeoutMs: caller.timeoutMs,
    ...extra,
    prologue: caller.apiKeyHash ? apiKeyPrologue(caller.tenantId, caller.apiKeyHash) : undefined,
  };
}

/** The transaction's outcome, with constraint violations and key refusals as the client's errors. */
const explained = <T>(transaction: Promise<T>): Promise<T> =>
  transaction.catch((err: unknown) => {
    throw explainDbError(err);
  });

/**
 * Runs `fn` in a transaction of the caller's tenant, bounded by the caller's deadline, with
 * constraint violations explained. The caller's API key is verified first, in the same
 * transaction.
 * @throws AppError unauthenticated when the key is unknown or revoked.
 */
export function inTenant<T>(
  db: Database,
  caller: Caller,
  fn: (tx: Tx, actor: Actor) => Promise<T>,
  extra?: TransactionOptions,
): Promise<T> {
  return explained(
    db.withTenantTransaction(
      caller.tenantId,
      async (tx, prologue) => {
        let actor: Actor = { workerId: caller.actorWorkerId ?? null };
        if (caller.apiKeyHash) {
          // (A missing or revoked key has already failed the prologue: api_key_check refuses.)
          const key = apiKeyFromPrologue(prologue);
          if (!key) throw new AppError('unauthenticated', 'invalid API key');
          actor = { workerId: key.workerId };
        }
        return fn(observed(db, tx), actor);
      },
      txOptions(caller, extra),
    ),
  );
}

/**
 * Runs `fn`, which runs exactly ONE statement, a read, in a transaction of the caller's tenant
 * like `inTenant`, in a single round trip: BEGIN, the settings, the API-key check, the statement
 * and COMMIT are written together (TransactionOptions.oneStatement). The key check refuses in
 * SQL, so the statement never runs for a key that does not hold; the actor is not known to `fn`.
 * @throws AppError unauthenticated when the key is unknown or revoked.
 */
export function readInTenant<T>(db: Database, caller: Caller, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return explained(
    db.withTenantTransaction(caller.tenantId, (tx) => fn(observed(db, tx)), txOptions(caller, { oneStatement: true })),
  );
}
