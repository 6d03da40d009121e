/**
 * Global setup of the PostgreSQL projects: one migrated template database per tenancy mode,
 * built once per run. Each test file then clones its own database from the template (fast:
 * a file copy) and drops it at the end. A bare server is enough: the maintenance database of
 * TEST_DATABASE_URL is created when missing. An unreachable server fails the run with what was
 * tried and how to start one; nothing is skipped.
 */
import pg from 'pg';
import { loadConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/db/index.js';
import { silentLogger } from '../../src/logger.js';
import { databaseUrl, TEST_DATABASE_URL, templateName } from './env.js';

const INVALID_CATALOG_NAME = '3D000';

function describeServer(url: URL): string {
  return `host ${url.hostname}, port ${url.port || '5432'}, user ${decodeURIComponent(url.username) || '(default)'}`;
}

function unreachable(url: URL, err: Error): Error {
  return new Error(
    `Cannot connect to PostgreSQL (${describeServer(url)}) from TEST_DATABASE_URL: ${err.message}.\n` +
      'Start a server (on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; ' +
      'the tests connect without a password, so 127.0.0.1 needs `trust` in pg_hba.conf), ' +
      'or point TEST_DATABASE_URL at one (postgresql://user@host:port/database).',
  );
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

/** The maintenance connection; its database is created first when the server lacks it. */
async function connectAdmin(): Promise<pg.Client> {
  const url = new URL(TEST_DATABASE_URL);
  try {
    return await connect(TEST_DATABASE_URL);
  } catch (err) {
    if ((err as { code?: string }).code !== INVALID_CATALOG_NAME) throw unreachable(url, err as Error);
  }
  const name = decodeURIComponent(url.pathname.slice(1));
  const bootstrap = await connect(databaseUrl('postgres')).catch((err: Error) => {
    throw unreachable(url, err);
  });
  try {
    await bootstrap.query(`create database ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    // Another run created it meanwhile.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await bootstrap.end();
  }
  return connect(TEST_DATABASE_URL);
}

export async function setup(): Promise<void> {
  const admin = await connectAdmin();
  try {
    // Serialize concurrent test runs on the same server while the templates are built.
    await admin.query('select pg_advisory_lock(7241865325823999)');
    for (const tenancy of ['row', 'schema'] as const) {
      const name = templateName(tenancy);
      // The name carries a hash of the migrations, and a template is marked as one only once it
      // is fully migrated: a marked one is reused, never rebuilt under a run (another checkout
      // on the same server, say) that is cloning it.
      const { rows } = await admin.query('select datistemplate from pg_database where datname = $1', [name]);
      if (rows[0]?.datistemplate === true) continue;
      await admin.query('update pg_database set datistemplate = false where datname = $1', [name]);
      await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      await admin.query(`create database ${pg.escapeIdentifier(name)}`);
      const config = loadConfig({ DATABASE_URL: databaseUrl(name), TENANCY_MODE: tenancy, LOG_LEVEL: 'silent' });
      const db = await openDatabase(config, silentLogger);
      try {
        await db.migrator.run({ direction: 'up' });
      } finally {
        await db.close();
      }
      await admin.query('update pg_database set datistemplate = true where datname = $1', [name]);
    }
  } finally {
    await admin.query('select pg_advisory_unlock(7241865325823999)').catch(() => {});
    await admin.end();
  }
}
