/**
 * Part of `npm run test:pgbouncer` only. A call that gives up on a statement (its deadline
 * passed) has the statement cancelled on the server: through PgBouncer, that is a cancel request
 * PgBouncer forwards on a connection of its own. PgBouncer 1.18 exits with "FATAL ...
 * disconnect_client(): bad client state: 0" when the requesting client hangs up before that is
 * done (pgbouncer#801); the service waits for PgBouncer to close first, as libpq does. Many
 * cancels at once, then PgBouncer must still be there.
 */
import { Code } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { expectRpcError, mask } from '../helpers/expect-rpc.js';
import { holdLock } from '../helpers/wait.js';

let app: TestApp | undefined;
afterAll(async () => {
  await app?.stop();
});

describe('cancel requests through PgBouncer', () => {
  it('statements cut by deadlines are cancelled through PgBouncer, which stays up', async () => {
    const adminUrl = process.env.TEST_POOLER_ADMIN_URL;
    expect(adminUrl, 'run through npm run test:pgbouncer').toBeDefined();
    app = await startTestApp({ env: { DB_POOL_MAX: '8', DB_POOL_TENANT_MAX: '8' } });
    const tenant = await app.tenant({ withWorker: true });
    const api = app.client('grpc', tenant.headers);
    const { project } = await api.ProjectService.createProject({ name: 'cancels' });
    const { task } = await api.TaskService.createTask({ projectId: project.id, title: 'locked' });
    const lock = await holdLock(app.db.url, 'select 1 from tasks where id = $1::bigint for update', [task.id]);
    try {
      for (let round = 0; round < 6; round++) {
        // Each update blocks on the row lock until its deadline; the service then cancels it.
        await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            expectRpcError(
              api.TaskService.updateTask(
                { task: { id: task.id, title: `try ${round}.${i}` }, updateMask: mask('title') },
                { timeoutMs: 250 },
              ),
              Code.DeadlineExceeded,
            ),
          ),
        );
      }
    } finally {
      await lock.release();
    }
    const { task: after } = await api.TaskService.getTask({ id: task.id });
    expect(after.title).toBe('locked');
    const console = new pg.Client({ connectionString: adminUrl });
    await console.connect();
    try {
      const { rows } = await console.query('show version');
      expect(rows).toHaveLength(1);
    } finally {
      await console.end();
    }
  });
});
