/**
 * A fresh database for one test file: on PostgreSQL a clone of the migrated template, on
 * PGlite a new in-memory instance, migrated. Both are opened through the service's own
 * openDatabase, so tests run the same code path as the service.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { type Config, loadConfig } from '../../src/config/index.js';
import { type OpenDatabase, openDatabase } from '../../src/db/index.js';
import { silentLogger } from '../../src/logger.js';
import {
  ADMIN_TOKEN,
  databaseUrl,
  serviceDatabaseUrl,
  TEST_BACKEND,
  TEST_DATABASE_URL,
  TEST_PREPARED_STATEMENTS,
  TEST_TENANCY,
  templateName,
} from './env.js';

export interface TestDatabase {
  /** Direct URL of this database (for the test's own connections: locks, checks). */
  readonly url: string;
  readonly backend: 'postgres' | 'pglite';
  readonly tenancy: 'row' | 'schema';
  /** Configuration for a service on this database (extra env merged in). */
  config(extra?: Record<string, string>): Config;
  /** Opens the database as the service would. */
  open(extra?: Record<string, string>): Promise<OpenDatabase>;
  drop(): Promise<void>;
}

async function adminQuery(sql: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql, values);
  } finally {
    await client.end();
  }
}

/**
 * @param options.migrated false: an empty database (PostgreSQL only clones the template when true).
 */
export async function createTestDatabase(
  options: { migrated?: boolean; tenancy?: 'row' | 'schema' } = {},
): Promise<TestDatabase> {
  const tenancy = options.tenancy ?? TEST_TENANCY;
  const migrated = options.migrated ?? true;
  const baseEnv = {
    TENANCY_MODE: tenancy,
    LOG_LEVEL: 'silent',
    ADMIN_TOKEN,
    PORT: '0',
    HOST: '127.0.0.1',
    DB_PREPARED_STATEMENTS: TEST_PREPARED_STATEMENTS,
  };
  if (TEST_BACKEND === 'pglite') {
    const url = 'memory://';
    const env = { ...baseEnv, DATABASE_URL: url, MIGRATE_ON_START: String(migrated) };
    return {
      url,
      backend: 'pglite',
      tenancy,
      config: (extra = {}) => loadConfig({ ...env, ...extra }),
      open: async (extra = {}) => {
        const db = await openDatabase(loadConfig({ ...env, ...extra }), silentLogger);
        if (migrated) await db.migrator.run({ direction: 'up' });
        return db;
      },
      drop: async () => {},
    };
  }
  const name = `taskapi_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(
    migrated
      ? `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(templateName(tenancy))}`
      : `create database ${pg.escapeIdentifier(name)}`,
  );
  const url = databaseUrl(name);
  const env: Record<string, string> = { ...baseEnv, DATABASE_URL: serviceDatabaseUrl(name), MIGRATE_ON_START: 'false' };
  // Behind a transaction-mode pooler LISTEN hears nothing: the listener takes the direct URL,
  // as the README's PgBouncer section says to configure (else streams fall back to re-checks).
  if (env.DATABASE_URL !== url) env.DATABASE_LISTEN_URL = url;
  return {
    url,
    backend: 'postgres',
    tenancy,
    config: (extra = {}) => loadConfig({ ...env, ...extra }),
    open: (extra = {}) => openDatabase(loadConfig({ ...env, ...extra }), silentLogger),
    drop: () => adminQuery(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`),
  };
}

export interface TenantDatabase {
  readonly tdb: TestDatabase;
  readonly open: OpenDatabase;
  readonly tenantId: bigint;
  countWorkers(): Promise<number>;
  close(): Promise<void>;
}

/** A migrated row-mode database opened as the service would, with one tenant in it. */
export async function openTenantDatabase(): Promise<TenantDatabase> {
  const tdb = await createTestDatabase({ tenancy: 'row' });
  const open = await tdb.open({ TENANCY_MODE: 'row' });
  const row = await open.db.withTransaction((tx) =>
    tx.one<{ id: string }>(`insert into tenants (name, subdomain) values ('Db test', 'dbtest') returning id`),
  );
  const tenantId = BigInt(row.id);
  return {
    tdb,
    open,
    tenantId,
    countWorkers: () =>
      open.db.withTenantTransaction(tenantId, async (tx) =>
        Number((await tx.one<{ n: string }>('select count(*) as n from workers')).n),
      ),
    async close() {
      await open.close();
      await tdb.drop();
    },
  };
}

/**
 * The test file's tenant database (`openTenantDatabase`), opened before its tests and dropped
 * after them. Read its fields inside hooks and tests; a file's own `beforeAll` registered after
 * this call runs once the database is open.
 */
export function useTenantDatabase(): TenantDatabase {
  let t: TenantDatabase | undefined;
  beforeAll(async () => {
    t = await openTenantDatabase();
  });
  afterAll(async () => {
    await t?.close();
  });
  const opened = () => {
    if (!t) throw new Error('the tenant database opens in beforeAll');
    return t;
  };
  return {
    get tdb() {
      return opened().tdb;
    },
    get open() {
      return opened().open;
    },
    get tenantId() {
      return opened().tenantId;
    },
    countWorkers: () => opened().countWorkers(),
    close: () => opened().close(),
  };
}
