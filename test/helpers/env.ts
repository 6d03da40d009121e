/** Test settings, read from the environment in one place. */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../../src/db/migrate.js';

export const TEST_BACKEND = (process.env.TEST_BACKEND ?? 'postgres') as 'postgres' | 'pglite';
export const TEST_TENANCY = (process.env.TEST_TENANCY ?? 'row') as 'row' | 'schema';
/** The PostgreSQL server tests create their databases on (a maintenance database URL). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
/**
 * A PgBouncer in front of that server (`npm run test:pgbouncer` starts one): when set, the
 * service reaches each test database through it, while databases are created, cloned and
 * migrated over the direct URL.
 */
export const TEST_POOLER_URL = process.env.TEST_POOLER_URL;
/** Named prepared statements, as by default; the PgBouncer run turns them off. */
export const TEST_PREPARED_STATEMENTS = process.env.TEST_PREPARED_STATEMENTS ?? 'true';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * Named after the migrations it holds: checkouts with different migrations (parallel branches
 * on one server) each get their own template instead of rebuilding each other's mid-run.
 */
export function templateName(tenancy: 'row' | 'schema'): string {
  return `taskapi_test_template_${tenancy}_${MIGRATIONS_HASH}`;
}

const MIGRATIONS_HASH = (() => {
  const hash = createHash('sha256');
  for (const set of ['shared', 'tenant']) {
    const dir = join(MIGRATIONS_DIR, set);
    for (const file of readdirSync(dir).sort()) hash.update(`${set}/${file}\0`).update(readFileSync(join(dir, file)));
  }
  // How they are applied (roles, schemas per mode) shapes the template as much as the files.
  hash.update(readFileSync(join(MIGRATIONS_DIR, '../src/db/migrate.ts')));
  return hash.digest('hex').slice(0, 12);
})();

/** A URL of the test server for database `name`. */
export function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The URL the service under test uses for database `name`: through the pooler when there is one. */
export function serviceDatabaseUrl(name: string): string {
  if (!TEST_POOLER_URL) return databaseUrl(name);
  const url = new URL(TEST_POOLER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
