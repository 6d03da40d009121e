/**
 * Global setup of the PostgreSQL projects: one migrated template database per tenancy mode,
 * built once per run. Each test file then clones its own database from the template (fast:
 * a file copy) and drops it at the end. An unreachable server fails the run; nothing is skipped.
 */
import pg from 'pg';
import { loadConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/db/index.js';
import { silentLogger } from '../../src/logger.js';
import { TEST_DATABASE_URL, databaseUrl, templateName } from './env.js';

export async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${new URL(TEST_DATABASE_URL).host} (TEST_DATABASE_URL): ${(err as Error).message}. ` +
        'Start it (see README) or point TEST_DATABASE_URL at a server.',
    );
  }
  try {
    // Serialize concurrent test runs on the same server while the templates are rebuilt.
    await admin.query('select pg_advisory_lock(7241865325823999)');
    for (const tenancy of ['row', 'schema'] as const) {
      const name = templateName(tenancy);
      await admin.query(`update pg_database set datistemplate = false where datname = $1`, [name]);
      await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      await admin.query(`create database ${pg.escapeIdentifier(name)}`);
      const config = loadConfig({ DATABASE_URL: databaseUrl(name), TENANCY_MODE: tenancy, LOG_LEVEL: 'silent' });
      const db = await openDatabase(config, silentLogger);
      try {
        await db.migrator.run({ direction: 'up' });
      } finally {
        await db.close();
      }
      await admin.query(`update pg_database set datistemplate = true where datname = $1`, [name]);
    }
  } finally {
    await admin.query('select pg_advisory_unlock(7241865325823999)').catch(() => {});
    await admin.end();
  }
}
