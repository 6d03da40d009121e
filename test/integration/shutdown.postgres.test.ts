/**
 * Graceful stop: a call that is running when the stop begins finishes normally; new
 * connections are refused; a call still running after the grace period ends with UNAVAILABLE,
 * also when its statement completes afterwards. A table lock held from another connection
 * keeps the call running as long as the test wants.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type TestApp, startTestApp } from '../helpers/app.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { healthStatus } from '../helpers/health.js';
import { holdLock, waitFor } from '../helpers/wait.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const t of apps) await t.stop().catch(() => {});
});

async function appWithProject(grace: string) {
  const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: grace } });
  apps.push(t);
  const client = t.client('grpc', (await t.tenant()).headers);
  const { project } = await client.ProjectService.createProject({ name: 'p' });
  return { t, client, project };
}

const portOpen = (port: number) =>
  healthStatus('connect', port).then(
    () => true,
    () => false,
  );

describe('graceful stop', () => {
  it('lets an in-flight call finish within the grace period, and refuses new connections', async () => {
    const { t, client, project } = await appWithProject('30000');
    const lock = await holdLock(t.db.url, 'lock table tasks in access exclusive mode');
    try {
      const call = client.TaskService.listTasks({ projectId: project.id });
      await lock.waiters(1);
      const stopped = t.app.stop();
      await waitFor(async () => !(await portOpen(t.port)), 'the port to close');
      await lock.release();
      const { tasks } = await call;
      expect(tasks).toEqual([]);
      await stopped;
    } finally {
      await lock.release();
    }
  });

  it('ends a call that outlives the grace period with UNAVAILABLE, before its statement completes', async () => {
    const { t, client, project } = await appWithProject('300');
    const lock = await holdLock(t.db.url, 'lock table tasks in access exclusive mode');
    try {
      const call = client.TaskService.listTasks({ projectId: project.id });
      await lock.waiters(1);
      const stopping = t.app.stop();
      // Still locked: the answer cannot come from the statement.
      await expectRpcError(call, Code.Unavailable);
      // The statement now completes; the call's abort was seen first, so nothing else is sent.
      await lock.release();
      await stopping;
    } finally {
      await lock.release();
    }
  });
});
