/** Test settings, read from the environment in one place. */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

export const TEST_BACKEND = (process.env.TEST_BACKEND ?? 'postgres') as 'postgres' | 'pglite';
export const TEST_TENANCY = (process.env.TEST_TENANCY ?? 'row') as 'row' | 'schema';
/** The PostgreSQL server tests create their databases on (a maintenance database URL). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
/** The schema-mode projects also run with named prepared statements, so both paths are tested. */
export const TEST_PREPARED_STATEMENTS = process.env.TEST_PREPARED_STATEMENTS ?? 'false';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * The migrated template database of a tenancy mode, one per checkout: several checkouts (git
 * worktrees) testing against one server would otherwise drop and rebuild each other's template
 * mid-run, with their own migrations, and every test cloned meanwhile would fail.
 */
export function templateName(tenancy: 'row' | 'schema'): string {
  const checkout = createHash('sha256').update(resolve(import.meta.dirname, '../..')).digest('hex').slice(0, 10);
  return `taskapi_test_template_${tenancy}_${checkout}`;
}

/** A URL of the test server for database `name`. */
export function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
