/**
 * ClaimTask's long poll (`wait_seconds`, SPEC §6): when nothing is claimable, wait until
 * something may have become claimable, then try again, until a task is claimed or the time is
 * up. Woken by the change feed's notifications (a create, a release back to pending, an
 * unassignment, a lease noticed expired... any event that may free a task) and by a timer for
 * the earliest retry time or lease end that falls within the wait. Never busy polling, and no
 * database connection is held while waiting. The wait ends at once when the client cancels,
 * answers empty when the server begins to stop, and never runs past the call's deadline.
 */
import type { Database } from '../db/index.js';
import { TransactionCancelledError } from '../db/index.js';
import { msUntilClaimable } from '../repositories/claim-wait.js';
import { type Caller, resolveActor } from './caller.js';
import type { ChangeFeed } from './change-feed.js';
import type { Claim, ClaimInput, TaskService } from './tasks.js';
import { inTenant } from './tenant-transaction.js';

/** Time kept back from the caller's deadline for the last attempt and the answer to travel. */
const DEADLINE_MARGIN_MS = 250;
/** A timer set for a moment that already passed waits this long (the moment's writer is busy). */
const MIN_TIMER_MS = 50;
/** Timers fire this much after the moment, so the database's now() has surely passed it. */
const TIMER_SLACK_MS = 5;

export class ClaimWaitService {
  constructor(
    private readonly db: Database,
    private readonly feed: ChangeFeed,
    private readonly tasks: TaskService,
  ) {}

  /**
   * A claim that waits up to `waitSeconds` for a claimable task.
   * @throws as TaskService.claim; the signal's reason when the call is cancelled while waiting.
   */
  async claim(caller: Caller, input: ClaimInput, waitSeconds: number): Promise<Claim> {
    const started = Date.now();
    const budget = Math.min(waitSeconds * 1000, (caller.timeoutMs ?? Infinity) - DEADLINE_MARGIN_MS);
    if (!(budget > 0)) return this.tasks.claim(caller, input);
    const until = started + budget;
    // Subscribed before the first attempt: a task created while it runs wakes the wait.
    const sub = this.feed.subscribe(caller.tenantId, { claimsOnly: true });
    try {
      for (;;) {
        sub.reset();
        const claim = await this.tasks.claim(caller, input);
        if (claim.task || Date.now() >= until || this.feed.closed) return claim;
        const ms = await this.msUntilClaimable(caller, input);
        const wakeAt = ms === null ? until : Math.min(until, Date.now() + Math.max(MIN_TIMER_MS, ms + TIMER_SLACK_MS));
        const outcome = await sub.wait({ signal: caller.signal, until: wakeAt });
        if (outcome === 'closed') return claim;
        if (outcome === 'aborted') throw new TransactionCancelledError(caller.signal?.reason);
        if (outcome === 'timeout' && wakeAt >= until) return claim;
      }
    } finally {
      sub.close();
    }
  }

  private msUntilClaimable(caller: Caller, input: ClaimInput): Promise<number | null> {
    return inTenant(
      this.db,
      caller,
      (tx, actor) =>
        msUntilClaimable(tx, {
          workerId: resolveActor(actor, input.workerId, 'worker_id'),
          projectId: input.projectId,
          tagsAll: input.tagsAll,
        }),
      { readOnly: true },
    );
  }
}
