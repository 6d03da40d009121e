/**
 * Part of `npm run test:pgbouncer` only (not a *.test.ts: the fault suite must not pick it up):
 * the service under test really talks to PgBouncer, so the API suites in that run prove
 * something about the pooler.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let app: TestApp | undefined;
afterAll(async () => {
  await app?.stop();
});

describe('the PgBouncer run', () => {
  it('sends the service’s transactions through PgBouncer, without named prepared statements', async () => {
    const adminUrl = process.env.TEST_POOLER_ADMIN_URL;
    expect(adminUrl, 'run through npm run test:pgbouncer').toBeDefined();
    app = await startTestApp();
    const tenant = await app.tenant();
    await app.client('grpc', tenant.headers).WorkerService.listWorkers({});
    expect(app.db.config().pool.prepareStatements).toBe(false);

    const console = new pg.Client({ connectionString: adminUrl });
    await console.connect();
    try {
      const { rows } = await console.query('show clients');
      const database = new URL(app.db.url).pathname.slice(1);
      const ours = rows.filter((r) => r.database === database && r.application_name === 'task-api');
      expect(ours.length).toBeGreaterThan(0);
    } finally {
      await console.end();
    }
  });
});
