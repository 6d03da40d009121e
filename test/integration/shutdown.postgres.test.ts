/**
 * Graceful stop: a call that is running when the stop begins finishes normally; new
 * connections are refused; a call still running after the grace period ends with UNAVAILABLE.
 * A table lock held from another connection keeps the call running as long as the test wants.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type TestApp, startTestApp } from '../helpers/app.js';
import { RpcError } from '../helpers/clients.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const t of apps) await t.stop().catch(() => {});
});

async function lockTasks(url: string): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query('lock table tasks in access exclusive mode');
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

describe('graceful stop', () => {
  it('lets an in-flight call finish within the grace period', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '5000' } });
    apps.push(t);
    const tenant = await t.tenant();
    const client = t.client('grpc', tenant.headers);
    const { project } = await client.call('ProjectService', 'CreateProject', { name: 'p' });
    const unlock = await lockTasks(t.db.url);
    const call = client.call('TaskService', 'ListTasks', { projectId: project.id });
    await new Promise((r) => setTimeout(r, 300)); // the call is now waiting on the lock
    const stopped = t.app.stop();
    await new Promise((r) => setTimeout(r, 300));
    await unlock();
    await expect(call).resolves.toBeDefined();
    await stopped;
    // The port is closed now.
    await expect(fetch(`http://127.0.0.1:${t.port}/grpc.health.v1.Health/Check`, { method: 'POST', body: '{}' })).rejects.toThrow();
  });

  it('ends a call that outlives the grace period with UNAVAILABLE', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '300' } });
    apps.push(t);
    const tenant = await t.tenant();
    const client = t.client('grpc', tenant.headers);
    const { project } = await client.call('ProjectService', 'CreateProject', { name: 'p' });
    const unlock = await lockTasks(t.db.url);
    try {
      const call = client.call('TaskService', 'ListTasks', { projectId: project.id }).catch((e) => e);
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const stopping = t.app.stop();
      const err = await call;
      expect(err).toBeInstanceOf(RpcError);
      expect(err.code).toBe('UNAVAILABLE');
      await unlock();
      await stopping;
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await unlock().catch(() => {});
    }
  });
});
