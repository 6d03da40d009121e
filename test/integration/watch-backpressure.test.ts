/**
 * A slow WatchTasks consumer cannot make the server read ahead: the stream is a pull-based
 * generator that reads the next batch from the database only once every event of the last one
 * has been taken (the transport takes the next message only after the previous one drained).
 * Counted with the statements the service's Database sends; nothing else runs on this app.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';

let t: TestApp;
let tenant: TestTenant;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant({ withWorker: true });
});
afterAll(async () => {
  await t?.stop();
});

it('reads the next batch only when the consumer has taken the last one', async () => {
  const c = t.client('connect', tenant.headers);
  const { project } = await c.ProjectService.createProject({ name: 'before' });
  await c.TaskService.createTask({ projectId: project.id, title: 'start here' });
  const [start] = (await c.TaskService.listTaskEvents({ projectId: project.id })).events;
  const titles = Array.from({ length: 150 }, (_, i) => `bulk ${i}`);
  const { tasks } = await c.ProjectService.createProjectWithTasks({ name: 'bulk', taskTitles: titles });

  const db = t.app.database.db;
  const stream = t.app.services.watch.watch({ tenantId: tenant.id }, { projectId: null, afterEventId: start!.id });
  const first = await stream.next();
  expect(first.value?.kind).toBe('created');
  const afterFirstRead = db.statements;
  for (let i = 1; i < 100; i++) expect((await stream.next()).done).toBe(false);
  // A whole batch was handed out without another statement...
  expect(db.statements).toBe(afterFirstRead);
  // ...and the next event needed one.
  expect((await stream.next()).value?.taskId).toBe(tasks[100]!.id);
  expect(db.statements).toBeGreaterThan(afterFirstRead);
  await stream.return(undefined as never);
  expect(t.app.services.feed.size).toBe(0);
});
