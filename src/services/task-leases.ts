/**
 * The lease rules of SPEC §6, used by TaskService inside its transactions: who may act on a
 * lease token, what a claim, a heartbeat and a release write, and the history each records.
 */
import type { Tx } from '../db/index.js';
import type { Task, TaskStatus } from '../domain.js';
import { failedPrecondition, notFound } from '../errors.js';
import * as claims from '../repositories/claims.js';
import { appendTaskEvents } from '../repositories/events.js';
import { taskEvent } from './task-events.js';

/** How many unnoticed expired leases one claim (or one reaper pass) handles at most. */
export const EXPIRE_BATCH = 100;

/**
 * Whether `token` is the task's current, running lease (as of the database's `now`).
 * @throws AppError failed_precondition saying why not: never issued, superseded by a newer claim,
 *   released, revoked, or expired.
 */
export function checkLease(now: Date, task: Task, token: bigint): void {
  const fail = (why: string) => failedPrecondition(why, 'lease_token');
  if (token <= 0n || token > task.leaseToken) throw fail(`is not a lease of this task`);
  if (token < task.leaseToken) {
    throw fail(
      `this lease is no longer current: it expired or ended and the task was re-claimed (by lease ${task.leaseToken})`,
    );
  }
  switch (task.leaseEnd) {
    case 'released':
      throw fail('the lease was released');
    case 'revoked':
      throw fail('the lease was revoked: the task was changed, reassigned or unassigned by someone else');
    case 'expired':
      throw fail(`the lease expired at ${task.leaseExpiresAt?.toISOString()}`);
  }
  if (task.leaseExpiresAt === null || task.leaseExpiresAt <= now) {
    throw fail(`the lease expired at ${task.leaseExpiresAt?.toISOString()}`);
  }
}

/**
 * Records the leases of the tenant that ran out (marked expired, or the task blocked when its
 * attempts are used up), each with its `lease_expired` event. Returns how many.
 */
export async function expireLeases(tx: Tx, limit = EXPIRE_BATCH): Promise<number> {
  const expired = await claims.expireLeases(tx, limit);
  await appendTaskEvents(
    tx,
    expired.map(({ before, after }) =>
      taskEvent.changed('lease_expired', after, before, after, null, { lease_token: after.leaseToken.toString() }),
    ),
  );
  return expired.length;
}

/** One claim attempt (no waiting): the claimed task, or undefined when nothing is claimable. */
export async function claimOnce(tx: Tx, filter: claims.ClaimFilter, actorId: bigint | null): Promise<Task | undefined> {
  // Expired leases are noticed first, so that their tasks are claimable in this very statement
  // order (and max_attempts dead letters are never handed out).
  await expireLeases(tx);
  const claimed = await claims.claimTask(tx, filter);
  if (!claimed) return undefined;
  const { before, after } = claimed;
  await appendTaskEvents(tx, [
    taskEvent.changed('claimed', after, before, after, actorId, { lease_token: after.leaseToken.toString() }),
  ]);
  return after;
}

/**
 * The task locked, with its lease checked.
 * @throws AppError not_found; failed_precondition (lease not current).
 */
async function lockLease(tx: Tx, id: bigint, token: bigint): Promise<Task> {
  const locked = await claims.lockTaskWithClock(tx, id);
  if (!locked) throw notFound('task');
  checkLease(locked.now, locked.task, token);
  return locked.task;
}

/** Extends the current lease. @throws as lockLease. */
export async function heartbeat(
  tx: Tx,
  id: bigint,
  token: bigint,
  leaseSeconds: number,
  actorId: bigint | null,
): Promise<Task> {
  const before = await lockLease(tx, id, token);
  const after = await claims.extendLease(tx, id, leaseSeconds);
  await appendTaskEvents(tx, [
    taskEvent.changed('heartbeat', after, before, after, actorId, { lease_token: token.toString() }),
  ]);
  return after;
}

export interface ReleaseInput {
  readonly id: bigint;
  readonly leaseToken: bigint;
  readonly status: Extract<TaskStatus, 'completed' | 'review' | 'blocked' | 'pending'>;
  /** '' : none. */
  readonly error: string;
  readonly retryAfterSeconds: number;
}

/**
 * Ends the current lease with a final status. Pending gives the task back: unassigned,
 * `last_error` = the error, claimable again after `retry_after_seconds` — unless it has used up
 * `max_attempts`, in which case it is blocked (a dead letter) instead.
 * @throws as lockLease.
 */
export async function release(tx: Tx, input: ReleaseInput, actorId: bigint | null): Promise<Task> {
  const before = await lockLease(tx, input.id, input.leaseToken);
  const givesBack = input.status === 'pending';
  const exhausted = givesBack && before.maxAttempts > 0 && before.attempts >= before.maxAttempts;
  const error = input.error !== '' ? input.error : givesBack ? 'given back' : null;
  const after = await claims.releaseTask(tx, input.id, {
    status: exhausted ? 'blocked' : input.status,
    unassign: givesBack && !exhausted,
    lastError: exhausted ? `${error}; all ${before.maxAttempts} attempts used` : error,
    retryAfterSeconds: givesBack && !exhausted && input.retryAfterSeconds > 0 ? input.retryAfterSeconds : null,
  });
  await appendTaskEvents(tx, [
    taskEvent.changed('released', after, before, after, actorId, {
      lease_token: input.leaseToken.toString(),
      requested_status: input.status,
    }),
  ]);
  return after;
}
