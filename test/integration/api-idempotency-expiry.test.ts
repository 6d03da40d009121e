/** Idempotency records expire: the janitor deletes old ones, tenant by tenant, and only those. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { IdempotencyJanitor } from '../../src/services/idempotency-janitor.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

it('purges records older than the TTL in every tenant and keeps the recent ones', async () => {
  const setups = await Promise.all([t.tenant(), t.tenant()]);
  const created = [];
  for (const tenant of setups) {
    const c = t.client('connect', tenant.headers);
    const { worker } = await c.WorkerService.createWorker({ handle: '@w' });
    const { project } = await c.ProjectService.createProject({ name: 'p' });
    const request = { projectId: project.id, title: 'once', createdById: worker.id, requestId: 'retry-me' };
    const { task } = await c.TaskService.createTask(request);
    created.push({ tenant, c, request, task });
  }
  const [old, recent] = created as [(typeof created)[number], (typeof created)[number]];
  // The first tenant's record is two days old.
  await t.app.database.db.withTenantTransaction(BigInt(old.tenant.id), (tx) =>
    tx.exec(`update idempotency_records set created_at = now() - interval '2 days' where request_id = 'retry-me'`),
  );

  const deleted = await new IdempotencyJanitor(t.app.database.db, 24 * 3600, silentLogger).purge();
  expect(deleted).toBe(1);

  // Expired: the same request_id is a new request now. Recent: still the first response.
  const again = await old.c.TaskService.createTask(old.request);
  expect(again.task.id).not.toBe(old.task.id);
  const replay = await recent.c.TaskService.createTask(recent.request);
  expect(replay.task).toEqual(recent.task);
});
