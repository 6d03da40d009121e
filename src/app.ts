/**
 * The service put together: database (migrated on start when configured), services, RPC
 * routes and interceptors, one listening port, and a graceful stop.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { Code, ConnectError } from '@connectrpc/connect';
import { type Config, MIN_ADMIN_TOKEN_LENGTH, redactDatabaseUrl } from './config/index.js';
import { type OpenDatabase, openDatabase, startChangeListener } from './db/index.js';
import type { Logger } from './logger.js';
import { observeCalls } from './rpc/call-log.js';
import { connectHandler } from './rpc/connect-adapter.js';
import { createDirectHandler } from './rpc/direct-handler.js';
import { authInterceptor, errorInterceptor } from './rpc/interceptors.js';
import { routes, serviceEntries } from './rpc/routes.js';
import { listen, type RpcServer } from './rpc/server.js';
import { IdempotencyJanitor } from './services/idempotency-janitor.js';
import { createServices, type Services } from './services/index.js';

/** Requests larger than this are refused with RESOURCE_EXHAUSTED. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** How long the stop waits for the pool to close once every call has ended. */
const DATABASE_CLOSE_MS = 500;
/** How often expired idempotency records are purged. */
const JANITOR_INTERVAL_MS = 60 * 60 * 1000;
/** How often leases that ran out are noticed in the tenants this process leased to, and in all. */
const LEASE_REAPER_INTERVAL_MS = 2_000;
const LEASE_REAPER_FULL_INTERVAL_MS = 10 * 60 * 1000;

export interface App {
  readonly port: number;
  readonly services: Services;
  readonly database: OpenDatabase;
  /** Stops accepting, drains in-flight calls within the grace period, closes the database. */
  stop(): Promise<void>;
}

/**
 * Without ADMIN_TOKEN the embedded (development) mode makes one up and keeps it in a file next
 * to the data, so that a first-time user can create a tenant right after `npm start`; the
 * token itself is never logged. With a PostgreSQL server there is no such fallback:
 * TenantService stays closed until ADMIN_TOKEN is set.
 */
function embeddedAdminToken(config: Config, logger: Logger): string | undefined {
  if (config.adminToken !== undefined || config.database.kind !== 'pglite') return config.adminToken;
  const dir = config.database.dataDir === null ? resolve('.data') : dirname(resolve(config.database.dataDir));
  const file = resolve(dir, 'admin-token');
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch {
    token = randomBytes(24).toString('base64url');
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
  }
  logger.info('embedded mode: the TenantService admin token is in a file (set ADMIN_TOKEN to choose one)', {
    file: relative(process.cwd(), file) || file,
  });
  return token;
}

/**
 * pool.end() waits for every checked-out connection to come back. After the cancellation above
 * they come back at once; one that does not (a network that swallowed the cancel request) must
 * not hold the exit: the process is ending, and the server drops the session when it goes.
 */
async function closeDatabase(database: OpenDatabase, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), DATABASE_CLOSE_MS);
  });
  try {
    const closed = database.close().then(
      () => 'closed' as const,
      (err: unknown) => {
        logger.warn('closing the database failed', { err });
        return 'closed' as const;
      },
    );
    if ((await Promise.race([closed, late])) === 'late') {
      logger.warn('database connections still busy after the shutdown; not waiting for them', {
        waitedMs: DATABASE_CLOSE_MS,
      });
    }
  } finally {
    clearTimeout(timer);
  }
}

/** @throws Error when the database cannot be opened or migrated, or the port is taken. */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  logger.info('opening database', { database: redactDatabaseUrl(config.database), tenancy: config.tenancyMode });
  if (config.adminTokenWeak) {
    logger.warn(
      `ADMIN_TOKEN is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters: use a long random token in production`,
    );
  }
  const database = await openDatabase(config, logger);
  let server: RpcServer | undefined;
  let stopListener = async () => {};
  try {
    if (config.migrateOnStart) {
      const applied = await database.migrator.run({ direction: 'up' });
      logger.info('migrations applied', { count: applied.length, applied });
    }
    const services = createServices(
      database.db,
      database.migrator,
      { ...config, adminToken: embeddedAdminToken(config, logger) },
      logger,
    );
    // One listener per process, whatever the number of streams (after the migrations: the
    // notifying trigger must exist before anything waits for it).
    const listener = await startChangeListener(config.changeFeed, database.db, logger, (tenantId, claimable) =>
      services.feed.notify(tenantId, claimable),
    );
    stopListener = () => listener.close();
    if (config.pageTokenSecret === undefined) {
      logger.info(
        'PAGE_TOKEN_SECRET is not set: page tokens are signed with a key of this process only (set one shared by all replicas)',
      );
    }
    const shutdown = new AbortController();
    // connect-es links every call's signal to this one (createLinkedAbortController): one
    // 'abort' listener per call in flight, removed when the call ends. Past 10 concurrent calls
    // Node 20 took that for a leak and printed a MaxListenersExceededWarning as plain text into
    // the JSON log. The count is bounded by the calls in flight, so no limit applies here.
    // (Node >= 23 no longer limits AbortSignal listeners by default, nodejs/node#55816; this
    // keeps the service clean on any runtime that still does.)
    setMaxListeners(0, shutdown.signal);
    let stopping = false;
    const entries = serviceEntries(services, { probe: () => database.db.ping(), stopping: () => stopping });
    // One log line and the metrics of every call; GET /metrics on the same port.
    const handler = observeCalls(
      connectHandler(routes(entries), {
        logger,
        interceptors: [errorInterceptor(logger), authInterceptor(services.auth)],
        readMaxBytes: MAX_MESSAGE_BYTES,
        writeMaxBytes: 64 * MAX_MESSAGE_BYTES,
        shutdownSignal: shutdown.signal,
        jsonOptions: { ignoreUnknownFields: false },
      }),
      logger,
    );
    // Unary gRPC and Connect calls take the direct path; connect-node serves everything else.
    const direct = createDirectHandler({
      services: entries,
      auth: services.auth,
      logger,
      maxRequestBytes: MAX_MESSAGE_BYTES,
      shutdownSignal: shutdown.signal,
    });
    server = await listen({
      port: config.port,
      host: config.host,
      handler,
      direct,
      logger,
      limits: config.server,
      tls: config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : undefined,
    });
    const stopJanitor =
      config.idempotencyTtlSeconds > 0
        ? new IdempotencyJanitor(database.db, config.idempotencyTtlSeconds, logger).start(JANITOR_INTERVAL_MS)
        : () => {};
    const stopReaper = services.leases.start(LEASE_REAPER_INTERVAL_MS, LEASE_REAPER_FULL_INTERVAL_MS);
    const rpc = server;
    logger.info('listening', {
      port: rpc.port,
      protocols: 'gRPC, gRPC-Web, Connect (HTTP/1.1 and HTTP/2)',
      tls: config.tls !== null,
    });
    let stopped: Promise<void> | undefined;
    return {
      port: rpc.port,
      services,
      database,
      stop() {
        stopped ??= (async () => {
          stopping = true;
          stopJanitor();
          stopReaper();
          const draining = rpc.shutdown(config.shutdownGraceMs, async () => {
            shutdown.abort(new ConnectError('the server is shutting down', Code.Unavailable));
            // An aborted signal stops a transaction only between statements: one blocked on a
            // lock would sit there until statement_timeout. Cancelled on the server, it fails
            // at once, rolls back, and its call answers UNAVAILABLE (the signal's reason).
            const cancelled = await database.cancelRunningStatements();
            if (cancelled > 0) logger.info('cancelled running statements', { cancelled });
          });
          // Streams never finish by themselves: end them (UNAVAILABLE) and the waits of long-poll
          // claims (empty answers) right away, once shutdown() has stopped accepting and sent
          // GOAWAY (its synchronous part), instead of holding them for the grace period.
          services.feed.close();
          await draining;
          await stopListener();
          await closeDatabase(database, logger);
          logger.info('stopped');
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopListener().catch(() => {});
    await database.close().catch(() => {});
    throw err;
  }
}
