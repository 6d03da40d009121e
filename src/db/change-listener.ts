/**
 * Wake-ups for the change feed: the one place that hears the `taskapi_task_events`
 * notifications a trigger sends when a transaction appends task events (migration
 * 1764100000500). A notification only says "tenant N may have new events"; the table stays
 * the truth, so a lost notification costs latency, never an event: a timer wakes everybody
 * too.
 *
 * - `listen` (PostgreSQL): ONE dedicated connection per process, outside the pool, LISTENing on
 *   DATABASE_LISTEN_URL (or DATABASE_URL). A transaction-mode pooler (PgBouncer) cannot carry
 *   LISTEN: point DATABASE_LISTEN_URL past it at the server. The connection reconnects with
 *   backoff; while it is down the timer runs at the poll interval, and after each (re)connect
 *   everybody is woken once, for whatever was missed meanwhile.
 * - `embedded` (PGlite behind pglite-socket): every socket shares one session, and a NOTIFY is
 *   delivered back on the connection that sent it, never to another listening connection
 *   (docs/stack-notes.md). So the pool's own connection (the only one: max 1) issues LISTEN once, for the
 *   session, and every pooled client reports the notifications it receives: the in-process
 *   signal, at no extra connection against pglite-socket's maxConnections.
 * - `poll`: no notifications; the timer at the poll interval.
 */
import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Database } from './database.js';

export const TASK_EVENTS_CHANNEL = 'taskapi_task_events';

/** With notifications flowing, the timer still re-checks every this many poll intervals. */
const SAFETY_FACTOR = 10;
const MAX_RECONNECT_DELAY_MS = 10_000;

export type ChangeFeedMode =
  | { readonly mode: 'listen'; readonly url: string; readonly pollIntervalMs: number }
  | { readonly mode: 'embedded' | 'poll'; readonly pollIntervalMs: number };

/**
 * `tenantId` null: anything may have changed (timer, reconnect). `claimable`: one of the events
 * may have made a task claimable (always true when unknown).
 */
export type ChangeHandler = (tenantId: bigint | null, claimable: boolean) => void;

export interface ChangeListener {
  /** Whether notifications are expected to arrive now (false while reconnecting, or polling). */
  readonly listening: boolean;
  close(): Promise<void>;
}

/** The trigger's payload: "<tenant id>" or "<tenant id>:claimable". */
function parsePayload(payload: string | undefined): [bigint | null, boolean] {
  const match = /^(\d{1,19})(:claimable)?$/.exec(payload ?? '');
  return match ? [BigInt(match[1]!), match[2] !== undefined] : [null, true];
}

/**
 * Starts listening as configured. Never throws for an unreachable database: the listener
 * keeps retrying and the timer covers the gap.
 */
export async function startChangeListener(
  config: ChangeFeedMode,
  db: Database,
  logger: Logger,
  onChange: ChangeHandler,
): Promise<ChangeListener> {
  let closed = false;
  let listening = false;
  let timer: NodeJS.Timeout | undefined;
  const safeOnChange: ChangeHandler = (tenantId, claimable) => {
    try {
      onChange(tenantId, claimable);
    } catch (err) {
      logger.error('change handler failed', { err });
    }
  };
  const arm = () => {
    clearTimeout(timer);
    if (closed) return;
    const interval = listening ? config.pollIntervalMs * SAFETY_FACTOR : config.pollIntervalMs;
    timer = setTimeout(() => {
      safeOnChange(null, true);
      arm();
    }, interval);
    timer.unref();
  };

  let stopListening: () => Promise<void> = async () => {};
  if (config.mode === 'embedded') {
    const seen = new WeakSet<pg.ClientBase>();
    const hook = (client: pg.ClientBase) => {
      if (seen.has(client)) return;
      seen.add(client);
      client.on('notification', (n) => {
        if (n.channel === TASK_EVENTS_CHANNEL) safeOnChange(...parsePayload(n.payload));
      });
    };
    db.pool.on('connect', hook);
    try {
      // LISTEN is session state, and pglite-socket has one session for all its connections: it
      // outlives this client (checked: a replaced pooled client still gets the notifications).
      await db.withClient(async (client) => {
        hook(client);
        await client.query(`listen ${TASK_EVENTS_CHANNEL}`);
      });
      listening = true;
    } catch (err) {
      logger.warn('could not LISTEN on the embedded database; streams poll instead', { err });
    }
    stopListening = async () => {
      db.pool.off('connect', hook);
    };
  } else if (config.mode === 'listen') {
    let client: pg.Client | undefined;
    let attempt = 0;
    let retry: NodeJS.Timeout | undefined;
    const connect = async () => {
      if (closed) return;
      const c = new pg.Client({
        connectionString: config.url,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        connectionTimeoutMillis: 10_000,
        application_name: 'task-api-listen',
      });
      client = c;
      let failed = false;
      const fail = (err?: unknown) => {
        if (failed) return;
        failed = true;
        if (listening) logger.warn('change listener connection lost; reconnecting (streams poll meanwhile)', { err });
        listening = false;
        arm();
        c.removeAllListeners('notification');
        c.end().catch(() => {});
        if (closed) return;
        const delay = Math.min(MAX_RECONNECT_DELAY_MS, 100 * 2 ** Math.min(attempt++, 10)) * (0.5 + Math.random() / 2);
        retry = setTimeout(() => void connect(), delay);
        retry.unref();
      };
      c.on('error', fail);
      c.on('end', () => fail());
      c.on('notification', (n) => {
        if (n.channel === TASK_EVENTS_CHANNEL) safeOnChange(...parsePayload(n.payload));
      });
      try {
        await c.connect();
        await c.query(`listen ${TASK_EVENTS_CHANNEL}`);
      } catch (err) {
        if (attempt === 0) logger.warn('change listener cannot connect yet; streams poll meanwhile', { err });
        fail(err);
        return;
      }
      if (closed) {
        await c.end().catch(() => {});
        return;
      }
      attempt = 0;
      listening = true;
      arm();
      // Whatever was written while nobody listened.
      safeOnChange(null, true);
    };
    await connect();
    stopListening = async () => {
      clearTimeout(retry);
      const c = client;
      client = undefined;
      if (c) {
        c.removeAllListeners('end');
        c.removeAllListeners('error');
        c.on('error', () => {});
        await c.end().catch(() => {});
      }
    };
  }
  arm();
  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      listening = false;
      clearTimeout(timer);
      await stopListening();
    },
  };
}
