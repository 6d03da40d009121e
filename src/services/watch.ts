/**
 * WatchTasks (SPEC §6): the tenant's task events after a position, then new ones as they
 * settle, for as long as the caller keeps the stream open.
 *
 * - Nothing is skipped: events are read in feed order and only once settled (see
 *   src/repositories/event-feed.ts), so the position of the last event delivered is a safe
 *   place to resume, in this stream and in the client's next one (after_event_id).
 * - Each task's events come in the order they were written (feed order keeps it).
 * - Delivery is at least once: a client that reconnects with an older id gets events again.
 * - Memory stays bounded for a slow consumer: this is a pull-based generator, and the next
 *   batch is read only once the transport has taken every event of the last one (connect-node
 *   waits for 'drain' before it asks for the next message).
 * - No database connection is held between reads: each read is its own short tenant
 *   transaction (row-level security applies; the API key is re-checked, so revoking it ends the
 *   stream at its next read).
 */
import type { Database, Tx } from '../db/index.js';
import { TransactionCancelledError } from '../db/index.js';
import { AppError } from '../errors.js';
import {
  currentPosition,
  type FeedEvent,
  type FeedPosition,
  hasUnsettledEvents,
  positionOfEvent,
  readSettledEvents,
} from '../repositories/event-feed.js';
import type { Caller } from './caller.js';
import type { ChangeFeed } from './change-feed.js';
import { inTenant } from './tenant-transaction.js';

export interface WatchInput {
  readonly projectId: bigint | null;
  /** null: only events from now on. */
  readonly afterEventId: bigint | null;
}

export interface WatchOptions {
  /** Events read per transaction. */
  readonly batchSize: number;
  /**
   * Longest pause between looks while events are committed but not yet settled (an older
   * transaction is still running, and its end may notify nobody).
   */
  readonly maxSettleDelayMs: number;
}

const FIRST_SETTLE_DELAY_MS = 10;

/** The stream ended because the server is stopping; the client should reconnect elsewhere. */
export const shuttingDown = () =>
  new AppError(
    'unavailable',
    'the server is shutting down; reconnect with after_event_id set to the last event received',
  );

export class WatchService {
  constructor(
    private readonly db: Database,
    private readonly feed: ChangeFeed,
    private readonly options: WatchOptions = { batchSize: 100, maxSettleDelayMs: 1_000 },
  ) {}

  /**
   * The events, as an async generator that ends only with an error: UNAVAILABLE when the server
   * shuts down, the signal's reason when the call is cancelled or its deadline passes.
   * @throws AppError not_found (after_event_id names no event of the tenant), unavailable.
   */
  async *watch(caller: Caller, input: WatchInput): AsyncGenerator<FeedEvent, never, undefined> {
    // Subscribed before the first read, so a change committed while it runs is not slept through.
    const sub = this.feed.subscribe(caller.tenantId);
    try {
      let position = await inTenant(this.db, caller, (tx) => this.start(tx, input), { readOnly: true });
      let settleDelay = FIRST_SETTLE_DELAY_MS;
      for (;;) {
        if (this.feed.closed) throw shuttingDown();
        sub.reset();
        const from = position;
        const { events, unsettled } = await inTenant(
          this.db,
          caller,
          async (tx) => {
            const events = await readSettledEvents(tx, from, input.projectId, this.options.batchSize);
            const last = events.at(-1)?.position ?? from;
            const full = events.length === this.options.batchSize;
            return { events, unsettled: !full && (await hasUnsettledEvents(tx, last, input.projectId)) };
          },
          { readOnly: true },
        );
        for (const event of events) {
          yield event;
          position = event.position;
        }
        if (events.length === this.options.batchSize) continue;
        const outcome = await sub.wait({
          signal: caller.signal,
          until: unsettled ? Date.now() + settleDelay : undefined,
        });
        if (outcome === 'closed') throw shuttingDown();
        if (outcome === 'aborted') throw new TransactionCancelledError(caller.signal?.reason);
        // Waiting on a running transaction: look again soon, then less and less often.
        settleDelay =
          outcome === 'timeout' ? Math.min(settleDelay * 2, this.options.maxSettleDelayMs) : FIRST_SETTLE_DELAY_MS;
      }
    } finally {
      sub.close();
    }
  }

  private async start(tx: Tx, input: WatchInput): Promise<FeedPosition> {
    if (input.afterEventId === null) return currentPosition(tx);
    const position = await positionOfEvent(tx, input.afterEventId);
    if (!position) throw new AppError('not_found', 'after_event_id: event not found', 'after_event_id');
    return position;
  }
}
