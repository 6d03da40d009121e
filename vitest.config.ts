import { defineConfig } from 'vitest/config';

/**
 * One `npm test` runs:
 * - unit: no database;
 * - postgres / pglite: every integration test against a real PostgreSQL server and against
 *   embedded PGlite (each test file gets its own database); *.postgres.test.ts only on the server;
 * - postgres-schema / pglite-schema: the API and isolation suites again in schema-per-tenant mode.
 * On PostgreSQL, statements are named prepared ones, as by default; `npm run test:pgbouncer` runs
 * the API suites with unnamed statements (and embedded mode never prepares).
 */
const integration = (name: string, backend: 'postgres' | 'pglite', tenancy: 'row' | 'schema', include: string[]) => ({
  extends: true as const,
  test: {
    name,
    include,
    // *.postgres.test.ts: what only a PostgreSQL server can show (killed connections, locks,
    // statement_timeout, concurrent migrations).
    exclude: backend === 'pglite' ? ['**/*.postgres.test.ts', '**/node_modules/**'] : ['**/node_modules/**'],
    env: { TEST_BACKEND: backend, TEST_TENANCY: tenancy, TEST_PREPARED_STATEMENTS: 'true' },
    globalSetup: backend === 'postgres' ? ['test/helpers/postgres-setup.ts'] : [],
    // Bounds, not expectations: they only decide how long a hung test takes to fail. On a shared
    // 2-core machine under load, PGlite (single-threaded WebAssembly) migrates a fresh database
    // in ~60 s instead of ~2 s, so a tight bound fails healthy tests.
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});

const ALL = ['test/integration/**/*.test.ts'];
const PER_MODE = ['test/integration/api-*.test.ts', 'test/integration/isolation*.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      integration('postgres', 'postgres', 'row', ALL),
      integration('pglite', 'pglite', 'row', ALL),
      integration('postgres-schema', 'postgres', 'schema', PER_MODE),
      integration('pglite-schema', 'pglite', 'schema', PER_MODE),
    ],
  },
});
