/**
 * Who is calling, as the services see it: the tenant (always), the worker the API key is bound
 * to (if any), and the call's deadline and cancellation. Built by the RPC layer's
 * authentication interceptor; services never see headers. And who acts in a write: the
 * caller's worker, or the one the request names (`resolveActor`).
 */
import { AppError, invalidArgument } from '../errors.js';

export interface Caller {
  readonly tenantId: bigint;
  /**
   * SHA-256 of the caller's API key. It is checked (exists, not revoked) by the first statement
   * of every transaction the call runs, before any tenant data is read: that costs no extra
   * round trip, and a revoked key fails its very next call. Absent for trusted in-process callers.
   */
  readonly apiKeyHash?: Buffer;
  /** The acting worker of a trusted in-process caller (with a key, the key decides). */
  readonly actorWorkerId?: bigint | null;
  readonly signal?: AbortSignal;
  /** Time left before the caller's deadline. */
  readonly timeoutMs?: number;
}

/** Who acts in a transaction: the worker the API key is bound to, if any. */
export interface Actor {
  readonly workerId: bigint | null;
}

/** The creator of a write: the key's worker, or the explicit id, which must then agree. */
export function resolveActor(actor: Actor, explicit: bigint | null, field = 'created_by_id'): bigint {
  if (actor.workerId !== null) {
    if (explicit !== null && explicit !== actor.workerId) {
      throw new AppError('permission_denied', `${field}: must be the worker of the API key`, field);
    }
    return actor.workerId;
  }
  if (explicit === null) throw invalidArgument(field, 'is required');
  return explicit;
}
