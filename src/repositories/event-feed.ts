/**
 * task_events read as an outbox, in feed order (migration 1764100000500): by (feed_xact, id),
 * and only up to the oldest transaction still running, below which no event can appear any
 * more. A position is a point in that order; every event delivered after a position is after
 * it in that order, so resuming from the last delivered position never skips anything.
 */
import type { Tx } from '../db/index.js';
import type { TaskEvent } from '../domain.js';
import { EVENT_COLUMNS, type EventRow, toTaskEvent } from './events.js';
import { tenantOf } from './tenant-scope.js';

export interface FeedPosition {
  /** A transaction id (xid8) as a bigint. */
  readonly xact: bigint;
  readonly id: bigint;
  /**
   * A stream that began "now" skips the events its first snapshot already saw (a pg_snapshot
   * as text): their transactions committed before the call, yet they may not have been settled.
   */
  readonly seen?: string;
}

/** A task event with its place in the feed. */
export interface FeedEvent extends TaskEvent {
  readonly position: FeedPosition;
}

interface FeedEventRow extends EventRow {
  feed_xact: string;
}

const COLUMNS = `${EVENT_COLUMNS}, feed_xact::text as feed_xact`;

const toFeedEvent = (r: FeedEventRow, seen: string | undefined): FeedEvent => ({
  ...toTaskEvent(r),
  position: { xact: BigInt(r.feed_xact), id: BigInt(r.id), ...(seen === undefined ? {} : { seen }) },
});

/** The position of one of the tenant's events, or undefined when it has no such event. */
export async function positionOfEvent(tx: Tx, eventId: bigint): Promise<FeedPosition | undefined> {
  const row = await tx.maybeOne<{ feed_xact: string }>(
    `select feed_xact::text as feed_xact from task_events where tenant_id = $1::bigint and id = $2::bigint`,
    [tenantOf(tx), eventId.toString()],
  );
  return row && { xact: BigInt(row.feed_xact), id: eventId };
}

/**
 * "Now": after this position come exactly the events that the current snapshot does not see,
 * i.e. those committed from here on.
 */
export async function currentPosition(tx: Tx): Promise<FeedPosition> {
  const row = await tx.one<{ xmin: string; snapshot: string }>(
    `select pg_snapshot_xmin(pg_current_snapshot())::text as xmin, pg_current_snapshot()::text as snapshot`,
  );
  return { xact: BigInt(row.xmin), id: 0n, seen: row.snapshot };
}

/**
 * The condition on events after `after` (bound from $2 on; `next` is the next free parameter).
 * The snapshot filter of a stream that began "now" is needed only until the stream passes the
 * newest transaction that snapshot could see (its xmax): every later one is new anyway.
 */
function afterCondition(after: FeedPosition, values: unknown[]): string {
  values.push(after.xact.toString(), after.id.toString());
  const base = `(feed_xact, id) > ($2::xid8, $3::bigint)`;
  if (after.seen === undefined || after.xact >= snapshotXmax(after.seen)) return base;
  values.push(after.seen);
  return `${base} and not pg_visible_in_snapshot(xact_id, $${values.length}::pg_snapshot)`;
}

const snapshotXmax = (snapshot: string): bigint => BigInt(snapshot.split(':')[1] ?? '0');

/**
 * Up to `limit` settled events after `after`, in feed order; with `projectId`, of that project
 * only. "Settled": written by a transaction older than every transaction running now.
 */
export async function readSettledEvents(
  tx: Tx,
  after: FeedPosition,
  projectId: bigint | null,
  limit: number,
): Promise<FeedEvent[]> {
  const values: unknown[] = [tenantOf(tx)];
  const afterIt = afterCondition(after, values);
  values.push(limit);
  const limitParam = `$${values.length}::int`;
  if (projectId !== null) values.push(projectId.toString());
  const rows = await tx.many<FeedEventRow>(
    `select ${COLUMNS} from task_events
      where tenant_id = $1::bigint${projectId === null ? '' : ` and project_id = $${values.length}::bigint`}
        and ${afterIt}
        and feed_xact < (select pg_snapshot_xmin(pg_current_snapshot()))
      order by feed_xact, id
      limit ${limitParam}`,
    values,
  );
  return rows.map((r) => toFeedEvent(r, after.seen));
}

/**
 * Whether events after `after` are committed but not settled yet (a transaction older than
 * theirs is still running): the reader should look again soon, since the end of that older
 * transaction may send no notification at all (it may write no events, or roll back).
 */
export async function hasUnsettledEvents(tx: Tx, after: FeedPosition, projectId: bigint | null): Promise<boolean> {
  const values: unknown[] = [tenantOf(tx)];
  const afterIt = afterCondition(after, values);
  if (projectId !== null) values.push(projectId.toString());
  const row = await tx.one<{ found: boolean }>(
    `select exists (
        select 1 from task_events
         where tenant_id = $1::bigint${projectId === null ? '' : ` and project_id = $${values.length}::bigint`}
           and ${afterIt}
           and feed_xact >= (select pg_snapshot_xmin(pg_current_snapshot()))
     ) as found`,
    values,
  );
  return row.found;
}
