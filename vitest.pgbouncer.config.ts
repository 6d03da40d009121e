import { defineConfig } from 'vitest/config';

/**
 * `npm run test:pgbouncer`: the API and isolation suites with the service reaching PostgreSQL
 * through a PgBouncer in transaction mode (Debian's 1.18: named prepared statements off),
 * row tenancy. Schema tenancy is not run here: creating a tenant migrates its schema over the
 * service's own connection, which behind a transaction pooler cannot hold the migration lock.
 */
export default defineConfig({
  test: {
    name: 'pgbouncer',
    include: ['test/integration/api-*.test.ts', 'test/integration/isolation*.test.ts', 'test/faults/*.check.ts'],
    pool: 'forks',
    maxWorkers: 2,
    env: { TEST_BACKEND: 'postgres', TEST_TENANCY: 'row', TEST_PREPARED_STATEMENTS: 'false' },
    globalSetup: ['test/helpers/postgres-setup.ts', 'test/faults/support/pgbouncer-run-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
