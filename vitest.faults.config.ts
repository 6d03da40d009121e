import { defineConfig } from 'vitest/config';

/**
 * `npm run test:faults`: the service as a real process against a throwaway PostgreSQL server
 * (and PgBouncer) of the suite's own, while the server is restarted, stopped, frozen and its
 * backends killed. Not part of `npm test`: it starts servers, needs initdb and pgbouncer, and
 * its timing wants the machine to itself, so files run one at a time.
 */
export default defineConfig({
  test: {
    name: 'faults',
    include: ['test/faults/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/faults/support/global-setup.ts'],
    testTimeout: 90_000,
    hookTimeout: 90_000,
  },
});
