/**
 * Transactions, lent only through callbacks. `withTransaction(fn)` and
 * `withTenantTransaction(tenantId, fn)` open a transaction, hand `fn` a Tx, COMMIT when it
 * resolves and ROLLBACK when it throws; a client whose connection failed (or whose ROLLBACK
 * failed) is discarded instead of going back to the pool. Serialization failures and deadlocks
 * run the whole callback again (bounded, with jittered backoff); a connection found dead before
 * the transaction did any work is replaced and the transaction retried, which is what
 * SQLAlchemy's `pool_pre_ping` buys.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import { countStatement } from '../metrics.js';
import { classifyDbError, DbError } from './errors.js';
import { type PipelineStatement, runPipeline } from './pipeline.js';
import type { Release, TenantLimiter } from './tenant-limiter.js';

export interface Tx {
  /** Rows of a statement. */
  many<R>(text: string, values?: readonly unknown[]): Promise<R[]>;
  /** The single row of a statement. @throws Error when it returns no row or several. */
  one<R>(text: string, values?: readonly unknown[]): Promise<R>;
  /** The row of a statement that returns at most one. @throws Error when it returns several. */
  maybeOne<R>(text: string, values?: readonly unknown[]): Promise<R | undefined>;
  /** Runs a statement and returns how many rows it touched. */
  exec(text: string, values?: readonly unknown[]): Promise<number>;
  /** The tenant this transaction is bound to (null for system transactions). */
  readonly tenantId: bigint | null;
}

/**
 * A read-only statement sent in the same round trip as BEGIN and the transaction's settings
 * (src/db/pipeline.ts). Its rows are handed to the transaction's callback. Used for the API-key
 * check every call starts with.
 */
export interface Prologue {
  /** One statement with `$1`, `$2`… placeholders, written by the service (never by a client). */
  readonly text: string;
  /** Strings, or Buffers (bytea). */
  readonly values: readonly (string | Buffer)[];
}

export type PrologueRows = readonly Record<string, unknown>[];

export interface TransactionOptions {
  /** Cancels the transaction: it rolls back instead of committing. */
  readonly signal?: AbortSignal;
  /** Bounds every statement of the transaction (statement_timeout, set locally). */
  readonly timeoutMs?: number;
  readonly isolation?: 'read committed' | 'repeatable read' | 'serializable';
  readonly readOnly?: boolean;
  /** Run as the database owner instead of the app role: migrations and schema changes only. */
  readonly asOwner?: boolean;
  /** Sent with BEGIN (no extra round trip); its rows are the callback's second argument. */
  readonly prologue?: Prologue;
  /**
   * The callback runs ONE statement (a read): it is written together with BEGIN, the settings,
   * the prologue and COMMIT, and the whole transaction is one round trip. The prologue's rows
   * cannot be read before that statement runs (the callback's second argument is empty), so a
   * prologue that guards the transaction must refuse by raising an error: PostgreSQL then skips
   * the statement and COMMIT. A second statement throws; a callback that runs none, or throws
   * before its statement, still has its prologue checked (a refusal is then the error). Read
   * only; a connection lost in it is retried once.
   */
  readonly oneStatement?: boolean;
}

export interface DatabaseOptions {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  /** Role switched to in every transaction (not owner, not BYPASSRLS); null keeps the login role. */
  readonly appRole: string | null;
  readonly statementTimeoutMs: number;
  /** Search path for a tenant's transactions (schema-per-tenant mode); null keeps the default. */
  readonly tenantSearchPath?: ((tenantId: bigint) => string) | null;
  readonly maxAttempts?: number;
  /**
   * Use named prepared statements (parsed and planned once per connection). Should a server
   * answer that a named statement does not exist, or already exists (a transaction-mode
   * PgBouncer older than 1.21 in between, which cannot route them), the Database stops naming
   * statements for good, logs it once, and runs that transaction again.
   */
  readonly prepareStatements?: boolean;
  /** Caps the connections one tenant's transactions hold at once; null: no cap. */
  readonly tenantLimiter?: TenantLimiter | null;
  /**
   * Cancels the statement a connection is running, on the server. Called when a transaction's
   * signal fires while a statement is in flight, so that a statement blocked on a lock does not
   * hold its connection until statement_timeout after its call gave up.
   */
  readonly cancelStatement?: ((client: pg.PoolClient) => void) | null;
}

/** Raised when the caller's signal fired: the transaction was rolled back. */
export class TransactionCancelledError extends AppError {
  /** @param reason The signal's reason (a shutdown or deadline error, as the RPC layer set it). */
  constructor(reason?: unknown) {
    super('cancelled', 'the call was cancelled; nothing was written');
    this.cause = reason;
  }
}

const noSlot: Release = () => {};

/**
 * Where a one-statement transaction is (`oneStatement`): nothing written yet; its pipeline
 * (BEGIN … COMMIT) in flight; failed; or committed. A rollback is needed when in flight or failed.
 */
interface OneShot {
  state: 'idle' | 'inflight' | 'failed' | 'committed';
}

/**
 * The settings of every transaction: tenant, statement timeout, role, search path, and generic
 * plans. Every statement of the service is prepared once per connection (see `send`) and is
 * written around indexes that lead with tenant_id, so its generic plan is the plan; left to
 * itself (`plan_cache_mode = auto`), PostgreSQL compares the generic plan's estimated cost with
 * custom plans' and, once a few projects hold many tasks, re-plans the ListTasks page for every
 * call: ~0.4 ms of planning per page, more than the page itself (docs/performance.md).
 */
const SETTINGS = `select set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true),
                        set_config('role', $3, true), set_config('search_path', $4, true),
                        set_config('plan_cache_mode', 'force_generic_plan', true)`;

/**
 * Named statements live, with their plans, on every pooled connection until it closes. Most
 * texts are fixed (GetTask, claims, inserts), but lists and updates are built from optional
 * fragments (ListTasks alone has thousands of shapes), so a text is named only from its second
 * use, and at most this many per process: at most this many plans per server connection.
 */
const MAX_NAMED_STATEMENTS = 256;
/** Texts seen once, waiting for a second use; forgotten all at once when this many. */
const MAX_SEEN_ONCE = 10_000;

/**
 * 26000 (invalid_sql_statement_name: Bind to a name this server connection never parsed) and
 * 42P05 (duplicate_prepared_statement: Parse of a name it already has): what named statements
 * meet when a transaction pooler hands each transaction another server connection.
 */
function isUnroutedStatement(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '26000' || code === '42P05';
}

/** Internal: the transaction failed only because named statements cannot be used; run it again. */
class PreparedStatementsUnroutable extends Error {}

export class Database {
  readonly pool: pg.Pool;
  /** Statements sent, for tests and the benchmark (a page must cost the same for 1 row or 200). */
  statements = 0;
  private readonly logger: Logger;
  private readonly appRole: string | null;
  private readonly statementTimeoutMs: number;
  private readonly tenantSearchPath: ((tenantId: bigint) => string) | null;
  private readonly maxAttempts: number;
  private prepare: boolean;
  private readonly statementNames = new Map<string, string>();
  private readonly seenOnce = new Set<string>();
  readonly tenantLimiter: TenantLimiter | null;
  private readonly cancelStatement: ((client: pg.PoolClient) => void) | null;

  constructor(options: DatabaseOptions) {
    this.pool = options.pool;
    this.logger = options.logger;
    this.appRole = options.appRole;
    this.statementTimeoutMs = options.statementTimeoutMs;
    this.tenantSearchPath = options.tenantSearchPath ?? null;
    this.maxAttempts = options.maxAttempts ?? 4;
    this.prepare = options.prepareStatements ?? false;
    this.tenantLimiter = options.tenantLimiter ?? null;
    this.cancelStatement = options.cancelStatement ?? null;
  }

  /**
   * A transaction that belongs to no tenant: tenant-owned tables return nothing in it.
   * @throws DbError (classified), TransactionCancelledError, or whatever `fn` throws.
   */
  withTransaction<T>(fn: (tx: Tx, prologue: PrologueRows) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.run(null, fn, options);
  }

  /**
   * A transaction bound to one tenant: `app.tenant_id` is set locally, so row-level security
   * shows only that tenant's rows, and the setting ends with the transaction.
   * @throws DbError (classified), TransactionCancelledError, or whatever `fn` throws.
   */
  withTenantTransaction<T>(
    tenantId: bigint,
    fn: (tx: Tx, prologue: PrologueRows) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<T> {
    return this.run(tenantId, fn, options);
  }

  /** Lends a raw client for work that cannot run in a transaction (migrations). */
  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    let discard: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      const classified = classifyDbError(err);
      if (classified instanceof DbError) discard = err as Error;
      throw classified;
    } finally {
      client.release(discard);
    }
  }

  /** True when the database answers a trivial query within `timeoutMs`. */
  async ping(timeoutMs = 2_000): Promise<boolean> {
    try {
      await this.withTransaction((tx) => tx.one('select 1 as ok'), { timeoutMs, readOnly: true });
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * A client from the pool. Waiting for one (pool exhausted) is bounded by the call too: its
   * cancellation, and its deadline (as a timeout). A client that arrives after the caller gave
   * up goes straight back to the pool.
   */
  private async connect(options: Pick<TransactionOptions, 'signal' | 'timeoutMs'> = {}): Promise<pg.PoolClient> {
    const pending = this.pool.connect().catch((err: unknown) => {
      const classified = classifyDbError(err);
      // Whatever the server says while a connection is being opened (the database refusing
      // connections, 55000; does not exist, 3D000; a failed login, 28P01) means that there is
      // no database to work with: UNAVAILABLE, not an INTERNAL error of the call.
      if (classified instanceof DbError && classified.kind !== 'connection' && classified.kind !== 'pool_busy') {
        throw new DbError('connection', classified.code, undefined, 'the database is unavailable', { cause: err });
      }
      throw classified;
    });
    const { signal, timeoutMs } = options;
    if (!signal && timeoutMs === undefined) return pending;
    let giveUp: (err: Error) => void = () => {};
    const gaveUp = new Promise<never>((_, reject) => {
      giveUp = reject;
    });
    const onAbort = () => giveUp(new TransactionCancelledError(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => giveUp(new DbError('timeout', undefined, undefined, 'no database connection before the deadline')),
            timeoutMs,
          );
    try {
      return await Promise.race([pending, gaveUp]);
    } catch (err) {
      pending.then(
        (client) => client.release(),
        () => {},
      );
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(timer);
    }
  }

  private async run<T>(
    tenantId: bigint | null,
    fn: (tx: Tx, prologue: PrologueRows) => Promise<T>,
    options: TransactionOptions,
  ): Promise<T> {
    let unroutedRetried = false;
    for (let attempt = 1; ; attempt++) {
      // Which step failed decides whether running again can help: a connection that dies at
      // BEGIN was a stale pooled one (retry on a fresh one); a failed connect() was already
      // fresh, and a connection lost mid-transaction may have done work we cannot see.
      let stage = 'connect' as 'connect' | 'begin' | 'work';
      try {
        return await this.attempt(tenantId, fn, options, (s) => {
          stage = s;
        });
      } catch (err) {
        // Not counted against maxAttempts: it happens once per transaction at most (statements
        // are unnamed from then on), and must not surface as an error of its own.
        if (err instanceof PreparedStatementsUnroutable) {
          if (unroutedRetried) throw classifyDbError(err.cause);
          unroutedRetried = true;
          attempt--;
          continue;
        }
        // A one-statement read sends its statement with BEGIN, so a connection lost there may be
        // a stale pooled one or the read itself cut short (pg_terminate_backend, a backend that
        // crashed on it): it is run again once, not up to maxAttempts.
        const beginLost = stage === 'begin' && !(options.oneStatement && attempt > 1);
        const retry =
          err instanceof DbError &&
          attempt < this.maxAttempts &&
          !options.signal?.aborted &&
          (err.retryable || (err.kind === 'connection' && beginLost));
        if (!retry) throw err;
        this.logger.debug('retrying transaction', { kind: err.kind, attempt });
        // Full jitter on an exponential base: concurrent losers do not collide again in step.
        if (err.kind !== 'connection') await sleep(Math.random() * 10 * 2 ** attempt);
      }
    }
  }

  private async attempt<T>(
    tenantId: bigint | null,
    fn: (tx: Tx, prologue: PrologueRows) => Promise<T>,
    options: TransactionOptions,
    reached: (stage: 'begin' | 'work') => void,
  ): Promise<T> {
    if (options.signal?.aborted) throw new TransactionCancelledError(options.signal.reason);
    const { client, slot } = await this.connectFor(tenantId, options);
    reached('begin');
    let discard: Error | undefined;
    // A cancel request names the server process, not the statement: one that arrives after its
    // statement ended cancels whatever that connection runs next — another call's statement,
    // maybe another tenant's. A connection a cancel was sent on is therefore never reused.
    const cancel = { sent: false };
    // A one-statement transaction: nothing written yet, written (BEGIN … COMMIT), or committed.
    const oneShot: OneShot | null = options.oneStatement ? { state: 'idle' } : null;
    try {
      if (oneShot) {
        let outcome: { value: T } | { err: unknown };
        try {
          outcome = { value: await fn(this.oneShotTx(client, tenantId, options, cancel, oneShot), []) };
        } catch (err) {
          outcome = { err };
        }
        if (oneShot.state === 'inflight') {
          // (The rollback below waits for the pipeline: pg queues it behind.)
          throw new Error('a oneStatement callback ended before its statement did');
        }
        if (oneShot.state === 'idle') {
          // No statement ran: the prologue still decides whether the call stands, and its
          // refusal goes to the caller before any error of the callback's own.
          oneShot.state = 'inflight';
          await this.begin(client, tenantId, options);
          await this.send(client, 'commit');
          oneShot.state = 'committed';
        }
        if ('err' in outcome) throw outcome.err;
        if (options.signal?.aborted) throw new TransactionCancelledError(options.signal.reason);
        return outcome.value;
      }
      const prologue = await this.begin(client, tenantId, options);
      reached('work');
      const result = await fn(this.txFor(client, tenantId, options.signal, cancel), prologue);
      if (options.signal?.aborted) throw new TransactionCancelledError(options.signal.reason);
      await this.send(client, 'commit');
      return result;
    } catch (err) {
      // Transactions in flight when statements stop being named may meet it too: all run again.
      if (isUnroutedStatement(err)) {
        this.stopPreparing(err);
        discard = err as Error;
        throw new PreparedStatementsUnroutable('named statements cannot be routed here', { cause: err });
      }
      const classified = classifyDbError(err);
      if (classified instanceof DbError && classified.kind === 'connection') {
        discard = classified;
      } else if (!cancel.sent && (oneShot === null || oneShot.state === 'inflight' || oneShot.state === 'failed')) {
        // (A connection a cancel was sent on is closed below, which rolls back: a ROLLBACK sent
        // on it could meet the late cancel.)
        try {
          await client.query('rollback');
        } catch (rollbackErr) {
          this.logger.warn('rollback failed; discarding the connection', { err: rollbackErr });
          discard = rollbackErr as Error;
        }
      }
      // A statement that failed because the call gave up (cancelled on the server at shutdown,
      // or cut by the deadline) reports the cancellation and why, not a query_canceled error.
      throw options.signal?.aborted ? new TransactionCancelledError(options.signal.reason) : classified;
    } finally {
      client.release(discard ?? (cancel.sent ? new Error('a cancel request was sent on this connection') : undefined));
      slot();
    }
  }

  /**
   * A pooled client for a tenant's transaction, within the tenant's share of the pool (taken
   * first, so a tenant over its share waits in its own queue, not in the pool's).
   */
  private async connectFor(
    tenantId: bigint | null,
    options: TransactionOptions,
  ): Promise<{ client: pg.PoolClient; slot: Release }> {
    if (tenantId === null || !this.tenantLimiter) return { client: await this.connect(options), slot: noSlot };
    const started = performance.now();
    const slot = await this.tenantLimiter.acquire(tenantId.toString(), options.signal, options.timeoutMs);
    try {
      // What is left of the deadline bounds the wait for the pool.
      const timeoutMs =
        options.timeoutMs === undefined ? undefined : Math.max(1, options.timeoutMs - (performance.now() - started));
      return { client: await this.connect({ signal: options.signal, timeoutMs }), slot };
    } catch (err) {
      slot();
      throw err;
    }
  }

  /**
   * BEGIN, the transaction's settings and the prologue, in ONE round trip (src/db/pipeline.ts):
   * named prepared statements with bound values, like every other statement.
   */
  private async begin(
    client: pg.PoolClient,
    tenantId: bigint | null,
    options: TransactionOptions,
  ): Promise<PrologueRows> {
    const statements = this.beginStatements(tenantId, options);
    this.statements++;
    countStatement();
    const results = await runPipeline(client, statements);
    return options.prologue ? (results[2]?.rows ?? []) : [];
  }

  /** BEGIN, the settings and the prologue, as statements of a pipeline. */
  private beginStatements(tenantId: bigint | null, options: TransactionOptions): PipelineStatement[] {
    const modes = [
      options.isolation ? `isolation level ${options.isolation}` : '',
      // A one-statement transaction may be run again after a lost connection: reads only.
      options.readOnly || options.oneStatement ? 'read only' : '',
    ].filter(Boolean);
    const timeout = Math.max(
      1,
      Math.ceil(Math.min(options.timeoutMs ?? Infinity, this.statementTimeoutMs || Infinity)),
    );
    // Everything here is transaction-local (is_local = true), so nothing survives into the next
    // transaction on this pooled connection, and the service stays PgBouncer-transaction-safe.
    const statements: PipelineStatement[] = [
      this.statement(modes.length ? `begin ${modes.join(' ')}` : 'begin', []),
      this.statement(SETTINGS, [
        tenantId === null ? '' : tenantId.toString(),
        Number.isFinite(timeout) ? String(timeout) : '0',
        options.asOwner || this.appRole === null ? 'none' : this.appRole,
        tenantId !== null && this.tenantSearchPath ? this.tenantSearchPath(tenantId) : '"$user", public',
      ]),
    ];
    if (options.prologue) statements.push(this.statement(options.prologue.text, options.prologue.values));
    return statements;
  }

  /** A statement of a pipeline, named as `send` would name it. */
  private statement(text: string, values: readonly unknown[]): PipelineStatement {
    const name = this.nameFor(text);
    return name === undefined ? { text, values } : { text, values, name };
  }

  private async send(client: pg.PoolClient, text: string, values?: readonly unknown[]): Promise<pg.QueryResult> {
    this.statements++;
    countStatement();
    if (!this.prepare || values === undefined) return client.query(text, values as unknown[] | undefined);
    // A named statement is parsed and planned once per connection and then reused: for a
    // GetTask that is most of PostgreSQL's work (bench/README.md).
    const name = this.nameFor(text);
    return name === undefined
      ? client.query(text, values as unknown[])
      : client.query({ name, text, values: values as unknown[] });
  }

  /**
   * The statement's name, or undefined to send it unnamed. The name is a digest of the text, so
   * the same name always means the same statement on any server connection. Named from the
   * second use, up to the cap (see MAX_NAMED_STATEMENTS).
   */
  private nameFor(text: string): string | undefined {
    if (!this.prepare) return undefined;
    let name = this.statementNames.get(text);
    if (name === undefined) {
      if (this.statementNames.size >= MAX_NAMED_STATEMENTS || !this.seenOnce.has(text)) {
        if (this.seenOnce.size >= MAX_SEEN_ONCE) this.seenOnce.clear();
        this.seenOnce.add(text);
        return undefined;
      }
      this.seenOnce.delete(text);
      name = `taskapi_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
      this.statementNames.set(text, name);
    }
    return name;
  }

  private stopPreparing(err: unknown): void {
    if (!this.prepare) return;
    this.prepare = false;
    this.logger.warn(
      'named prepared statements do not survive between transactions here (a transaction-mode pooler such as ' +
        'PgBouncer < 1.21?): using unnamed statements from now on; set DB_PREPARED_STATEMENTS=false to skip this',
      { code: (err as { code?: string }).code },
    );
  }

  private txFor(
    client: pg.PoolClient,
    tenantId: bigint | null,
    signal: AbortSignal | undefined,
    cancelState: { sent: boolean },
  ): Tx {
    return this.txOver(tenantId, (text, values) =>
      this.cancellable(client, signal, cancelState, () => this.send(client, text, values)),
    );
  }

  /**
   * The Tx of a one-statement transaction (`oneStatement`): its statement goes out with BEGIN,
   * the settings, the prologue and COMMIT, in one pipeline.
   */
  private oneShotTx(
    client: pg.PoolClient,
    tenantId: bigint | null,
    options: TransactionOptions,
    cancelState: { sent: boolean },
    oneShot: OneShot,
  ): Tx {
    return this.txOver(tenantId, async (text, values) => {
      if (oneShot.state !== 'idle') throw new Error('a oneStatement transaction ran a second statement');
      return this.cancellable(client, options.signal, cancelState, async () => {
        const statements = [
          ...this.beginStatements(tenantId, options),
          this.statement(text, values ?? []),
          this.statement('commit', []),
        ];
        this.statements++;
        countStatement();
        oneShot.state = 'inflight';
        try {
          const results = await runPipeline(client, statements);
          oneShot.state = 'committed';
          return results[statements.length - 2]!;
        } catch (err) {
          oneShot.state = 'failed';
          throw err;
        }
      });
    });
  }

  /**
   * Runs one round trip; should the transaction's signal fire meanwhile, the statement is
   * cancelled on the server (see `cancelStatement`).
   */
  private async cancellable(
    client: pg.PoolClient,
    signal: AbortSignal | undefined,
    cancelState: { sent: boolean },
    run: () => Promise<pg.QueryResult>,
  ): Promise<pg.QueryResult> {
    if (signal?.aborted) throw new TransactionCancelledError(signal.reason);
    const cancel = this.cancelStatement;
    if (!signal || !cancel) return run();
    const onAbort = () => {
      cancelState.sent = true;
      cancel(client);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await run();
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private txOver(
    tenantId: bigint | null,
    query: (text: string, values?: readonly unknown[]) => Promise<pg.QueryResult>,
  ): Tx {
    return {
      tenantId,
      many: async <R>(text: string, values?: readonly unknown[]) => (await query(text, values)).rows as R[],
      one: async <R>(text: string, values?: readonly unknown[]) => {
        const { rows } = await query(text, values);
        if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
        return rows[0] as R;
      },
      maybeOne: async <R>(text: string, values?: readonly unknown[]) => {
        const { rows } = await query(text, values);
        if (rows.length > 1) throw new Error(`expected at most one row, got ${rows.length}`);
        return rows[0] as R | undefined;
      },
      exec: async (text: string, values?: readonly unknown[]) => (await query(text, values)).rowCount ?? 0,
    };
  }
}
