/**
 * Waiting for conditions instead of fixed sleeps: a sleep long enough for a busy 2-core machine
 * makes every run slow, and one short enough for an idle machine flakes under load.
 */

import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import pg from 'pg';

/**
 * Resolves once `check` returns true; rejects naming `what` after `timeoutMs`. The bound is
 * generous: it only decides how long a broken test takes to fail.
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Calls `probe` until `done` holds for its result, and returns that result; fails after
 * `timeoutMs` naming `what` and the last value. For conditions that come true with time (a
 * lease running out): the wait ends as soon as the condition holds.
 */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > until)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${show(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const show = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))?.slice(0, 2000);

/** Resolves once the clock has passed `time` (default: now), so that the next write gets a later timestamp. */
export function clockPast(time?: Timestamp): Promise<void> {
  const ms = time === undefined ? Date.now() : timestampMs(time);
  return waitFor(() => Date.now() > ms + 1, 'the clock to move past the last write');
}

/**
 * A transaction on its own connection that took a lock with `sql` (PostgreSQL only) and keeps
 * it until `release`: it makes the service's statements wait as long as a test wants.
 */
export interface LockHolder {
  /** Resolves once `count` statements of the service in this database wait for a lock. */
  waiters(count: number): Promise<void>;
  release(): Promise<void>;
}

/** @throws Error when the database cannot be reached or `sql` fails. */
export async function holdLock(databaseUrl: string, sql: string, values: unknown[] = []): Promise<LockHolder> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('begin');
  await client.query(sql, values);
  let released = false;
  return {
    waiters: (count) => waitForLockWaiters(databaseUrl, count),
    async release() {
      if (released) return;
      released = true;
      await client.query('rollback');
      await client.end();
    },
  };
}

/** Connections of the service (application_name task-api) in this database matching `condition`. */
async function serviceConnections(databaseUrl: string, condition: string): Promise<number> {
  const probe = new pg.Client({ connectionString: databaseUrl });
  await probe.connect();
  try {
    const { rows } = await probe.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name = 'task-api' and ${condition}`,
    );
    return rows[0]!.n;
  } finally {
    await probe.end();
  }
}

/** Statements of the service in this database that wait for a lock. */
export const lockWaiters = (databaseUrl: string) => serviceConnections(databaseUrl, "wait_event_type = 'Lock'");

/** Resolves once no connection of the service is in a statement or a transaction. */
export const waitForServiceIdle = (databaseUrl: string) =>
  waitFor(async () => (await serviceConnections(databaseUrl, "state <> 'idle'")) === 0, 'the service to be idle');

/** Resolves once exactly `count` statements of the service wait for a lock. */
export function waitForLockWaiters(databaseUrl: string, count: number): Promise<void> {
  return waitFor(async () => (await lockWaiters(databaseUrl)) === count, `${count} statement(s) waiting for a lock`);
}
