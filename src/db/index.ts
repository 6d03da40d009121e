/**
 * Opens the configured database: a PostgreSQL server, or embedded PGlite behind pglite-socket.
 * This folder is the only place that imports `pg`.
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../logger.js';
import { watchPool } from '../metrics.js';
import { Database } from './database.js';
import { startEmbedded } from './embedded.js';
import { Migrator, quoteIdent, tenantSchema } from './migrate.js';
import { createPool } from './pool.js';
import { StatementCanceller } from './statement-canceller.js';
import { TenantLimiter } from './tenant-limiter.js';

export { type ChangeHandler, type ChangeListener, startChangeListener } from './change-listener.js';
export {
  Database,
  type Prologue,
  type PrologueRows,
  TransactionCancelledError,
  type TransactionOptions,
  type Tx,
} from './database.js';
export { DbError, type DbErrorKind } from './errors.js';
export { Migrator, tenantSchema } from './migrate.js';
export { TenantLimiter, type TenantLimiterStats } from './tenant-limiter.js';

/** The role tenant transactions switch to; created and granted by the migrations. */
export const APP_ROLE = 'taskapi_app';

export interface OpenDatabase {
  readonly db: Database;
  readonly migrator: Migrator;
  readonly embedded: boolean;
  /**
   * Cancels, on the server, the statements the checked-out connections are running (shutdown,
   * after the grace period). Never throws. @returns how many cancel requests were delivered.
   */
  cancelRunningStatements(): Promise<number>;
  close(): Promise<void>;
}

/**
 * Connects (starting the embedded database first when configured). No query is sent yet.
 * @throws Error when the embedded database cannot start.
 */
export async function openDatabase(config: Config, logger: Logger): Promise<OpenDatabase> {
  const embedded = config.database.kind === 'pglite' ? await startEmbedded(config.database.dataDir) : null;
  const connectionString = config.database.kind === 'postgres' ? config.database.url : embedded!.url;
  const pool = createPool({ connectionString, ...config.pool }, logger);
  // pglite-socket ignores cancel requests (and each would take one of its few connection slots);
  // its one session never waits on another connection's lock anyway.
  const canceller = embedded === null ? new StatementCanceller(pool, logger) : null;
  // With one connection (embedded) a share of it is all of it: nothing to divide.
  const tenantLimiter =
    config.pool.tenantMax < config.pool.max
      ? new TenantLimiter(config.pool.tenantMax, config.pool.connectionTimeoutMs)
      : null;
  const unwatch = watchPool(pool, tenantLimiter);
  const db = new Database({
    pool,
    logger,
    appRole: APP_ROLE,
    statementTimeoutMs: config.pool.statementTimeoutMs,
    prepareStatements: config.pool.prepareStatements,
    tenantLimiter,
    cancelStatement: canceller ? (client) => canceller.cancel(client) : null,
    tenantSearchPath:
      config.tenancyMode === 'schema' ? (tenantId) => `${quoteIdent(tenantSchema(tenantId))}, public` : null,
  });
  const migrator = new Migrator(db, config.tenancyMode, logger);
  return {
    db,
    migrator,
    embedded: embedded !== null,
    cancelRunningStatements: async () => (canceller ? canceller.cancelAll() : 0),
    async close() {
      unwatch();
      await db.close();
      await embedded?.close();
    },
  };
}
