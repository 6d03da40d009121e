/**
 * Part of `npm run test:pgbouncer` only. Named prepared statements are on by default, and a
 * transaction-mode PgBouncer older than 1.21 (Debian 12 ships 1.18) cannot route them: each
 * transaction may land on another server connection. A service started with the default must
 * still answer every call: the first "prepared statement does not exist / already exists" turns
 * named statements off for the process, with one warning, and the failed transaction runs again.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let app: TestApp | undefined;
afterAll(async () => {
  await app?.stop();
});

describe('named prepared statements behind PgBouncer 1.18 (transaction mode)', () => {
  it('fall back to unnamed statements after the first failure, and no call fails', async () => {
    expect(process.env.TEST_POOLER_ADMIN_URL, 'run through npm run test:pgbouncer').toBeDefined();
    const lines: string[] = [];
    app = await startTestApp({
      env: { DB_PREPARED_STATEMENTS: 'true', DB_POOL_MAX: '6', DB_POOL_TENANT_MAX: '6' },
      logger: createLogger('warn', { write: (line) => lines.push(line) }),
    });
    expect(app.db.config({ DB_PREPARED_STATEMENTS: 'true' }).pool.prepareStatements).toBe(true);
    const tenant = await app.tenant({ withWorker: true });
    const api = app.client('grpc', tenant.headers);
    const { project } = await api.ProjectService.createProject({ name: 'bouncer' });
    const { task } = await api.TaskService.createTask({ projectId: project.id, title: 'routed' });
    // Many transactions over a few pooled connections, several at once: on 1.18 the same named
    // statement meets server connections that lack it and ones that have it.
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 12 }, () => api.TaskService.getTask({ id: task.id })));
      for (const { task: got } of answers) expect(got.title).toBe('routed');
    }
    const warnings = lines.filter((l) => l.includes('named prepared statements'));
    expect(warnings).toHaveLength(1);
  });
});
