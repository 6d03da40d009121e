/**
 * Every task write appends its task_events row in the same transaction (the outbox of SPEC §6),
 * and history outlives the task. Read back with the service's own Database, as the tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let workerId: string;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  c = t.client('connect', tenant.headers);
  workerId = (await c.call('WorkerService', 'CreateWorker', { handle: '@historian' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

interface EventRow {
  task_id: string;
  kind: string;
  actor_id: string | null;
  data: { changes?: Record<string, { before: unknown; after: unknown }>; reason?: string };
}

const events = (taskIds: string[]) =>
  t.app.database.db.withTenantTransaction(BigInt(tenant.id), (tx) =>
    tx.many<EventRow>(`select task_id, kind, actor_id, data from task_events where task_id = any($1::bigint[]) order by id`, [taskIds]),
  );

describe('task history', () => {
  it('records create, update (before/after), assign, unassign and delete, and keeps it after the delete', async () => {
    const { project } = await c.call('ProjectService', 'CreateProject', { name: 'history' });
    const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'first', createdById: workerId });
    await c.call('TaskService', 'UpdateTask', { task: { id: task.id, title: 'second', status: 'TASK_STATUS_IN_PROGRESS' }, updateMask: 'title,status' });
    await c.call('TaskService', 'AssignTask', { id: task.id, workerId });
    await c.call('TaskService', 'AssignTask', { id: task.id });
    await c.call('TaskService', 'DeleteTask', { id: task.id });

    const rows = await events([task.id]);
    expect(rows.map((r) => r.kind)).toEqual(['created', 'updated', 'assigned', 'unassigned', 'deleted']);
    expect(rows[0]!.actor_id).toBe(workerId);
    expect(rows[1]!.data.changes).toMatchObject({
      title: { before: 'first', after: 'second' },
      status: { before: 'pending', after: 'in_progress' },
      version: { before: '1', after: '2' },
    });
    expect(rows[1]!.data.changes).not.toHaveProperty('description');
    expect(rows[2]!.data.changes).toMatchObject({ assignee_id: { before: null, after: workerId } });
  });

  it('records a deleted event for each subtask deleted with its parent', async () => {
    const { project } = await c.call('ProjectService', 'CreateProject', { name: 'tree' });
    const parent = (await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'parent', createdById: workerId })).task;
    const child = (await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'child', parentTaskId: parent.id, createdById: workerId })).task;
    await c.call('TaskService', 'DeleteTask', { id: parent.id });
    const rows = await events([parent.id, child.id]);
    expect(rows.filter((r) => r.kind === 'deleted').map((r) => r.task_id).sort()).toEqual([parent.id, child.id].sort());
  });

  it('CompleteProjectTasks writes one completed event per task it changed', async () => {
    const { project, tasks } = await c.call('ProjectService', 'CreateProjectWithTasks', { name: 'bulk', taskTitles: ['a', 'b', 'c'], createdById: workerId });
    await c.call('TaskService', 'UpdateTask', { task: { id: tasks[0].id, status: 'TASK_STATUS_COMPLETED' }, updateMask: 'status' });
    const { completedCount } = await c.call('ProjectService', 'CompleteProjectTasks', { projectId: project.id });
    expect(completedCount).toBe('2');
    const completed = (await events(tasks.map((x: { id: string }) => x.id))).filter((r) => r.kind === 'completed');
    expect(completed.map((r) => r.task_id).sort()).toEqual([tasks[1].id, tasks[2].id].sort());
    expect(completed[0]!.data.changes).toMatchObject({ status: { before: 'pending', after: 'completed' } });
  });

  it('deleting a worker records the unassignment of its tasks; a forced project delete records each task', async () => {
    const helper = (await c.call('WorkerService', 'CreateWorker', { handle: '@leaving' })).worker.id;
    const { project, tasks } = await c.call('ProjectService', 'CreateProjectWithTasks', { name: 'gone', taskTitles: ['x', 'y'], createdById: workerId });
    await c.call('TaskService', 'AssignTask', { id: tasks[0].id, workerId: helper });
    await c.call('WorkerService', 'DeleteWorker', { id: helper });
    const ids = tasks.map((x: { id: string }) => x.id);
    expect((await events(ids)).filter((r) => r.kind === 'unassigned').map((r) => r.task_id)).toEqual([tasks[0].id]);

    await c.call('ProjectService', 'DeleteProject', { id: project.id, force: true });
    const deleted = (await events(ids)).filter((r) => r.kind === 'deleted');
    expect(deleted.map((r) => r.task_id).sort()).toEqual([...ids].sort());
    expect(deleted[0]!.data.reason).toBe('project deleted');
  });
});
