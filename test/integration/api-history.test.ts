/**
 * Every task write appends its task_events row in the same transaction (the outbox of SPEC §6),
 * and history outlives the task. Read back with the service's own Database, as the tenant.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { TaskStatus } from '../helpers/clients.js';
import { mask } from '../helpers/expect-rpc.js';

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let workerId: bigint;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  c = t.client('connect', tenant.headers);
  workerId = (await c.WorkerService.createWorker({ handle: '@historian' })).worker.id;
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

/** The events of these tasks, oldest first, with ids as bigint like the API's. */
const events = async (taskIds: bigint[]) =>
  (
    await t.app.database.db.withTenantTransaction(tenant.id, (tx) =>
      tx.many<EventRow>(
        'select task_id, kind, actor_id, data from task_events where task_id = any($1::bigint[]) order by id',
        [taskIds.map(String)],
      ),
    )
  ).map((r) => ({ ...r, task_id: BigInt(r.task_id), actor_id: r.actor_id === null ? null : BigInt(r.actor_id) }));
const sorted = (ids: bigint[]) => [...ids].sort((a, b) => Number(a - b));

describe('task history', () => {
  it('records create, update (before/after), assign, unassign and delete, and keeps it after the delete', async () => {
    const { project } = await c.ProjectService.createProject({ name: 'history' });
    const { task } = await c.TaskService.createTask({ projectId: project.id, title: 'first', createdById: workerId });
    await c.TaskService.updateTask({
      task: { id: task.id, title: 'second', status: TaskStatus.IN_PROGRESS },
      updateMask: mask('title,status'),
    });
    await c.TaskService.assignTask({ id: task.id, workerId });
    await c.TaskService.assignTask({ id: task.id });
    await c.TaskService.deleteTask({ id: task.id });

    const rows = await events([task.id]);
    expect(rows.map((r) => r.kind)).toEqual(['created', 'updated', 'assigned', 'unassigned', 'deleted']);
    expect(rows[0]!.actor_id).toBe(workerId);
    expect(rows[1]!.data.changes).toMatchObject({
      title: { before: 'first', after: 'second' },
      status: { before: 'pending', after: 'in_progress' },
      version: { before: '1', after: '2' },
    });
    expect(rows[1]!.data.changes).not.toHaveProperty('description');
    expect(rows[2]!.data.changes).toMatchObject({ assignee_id: { before: null, after: String(workerId) } });
  });

  it('records a deleted event for each subtask deleted with its parent', async () => {
    const { project } = await c.ProjectService.createProject({ name: 'tree' });
    const parent = (await c.TaskService.createTask({ projectId: project.id, title: 'parent', createdById: workerId }))
      .task;
    const child = (
      await c.TaskService.createTask({
        projectId: project.id,
        title: 'child',
        parentTaskId: parent.id,
        createdById: workerId,
      })
    ).task;
    await c.TaskService.deleteTask({ id: parent.id });
    const rows = await events([parent.id, child.id]);
    expect(sorted(rows.filter((r) => r.kind === 'deleted').map((r) => r.task_id))).toEqual(
      sorted([parent.id, child.id]),
    );
  });

  it('CompleteProjectTasks writes one completed event per task it changed', async () => {
    const { project, tasks } = await c.ProjectService.createProjectWithTasks({
      name: 'bulk',
      taskTitles: ['a', 'b', 'c'],
      createdById: workerId,
    });
    await c.TaskService.updateTask({
      task: { id: tasks[0]!.id, status: TaskStatus.COMPLETED },
      updateMask: mask('status'),
    });
    const { completedCount } = await c.ProjectService.completeProjectTasks({ projectId: project.id });
    expect(completedCount).toBe(2n);
    const completed = (await events(tasks.map((x) => x.id))).filter((r) => r.kind === 'completed');
    expect(sorted(completed.map((r) => r.task_id))).toEqual(sorted([tasks[1]!.id, tasks[2]!.id]));
    expect(completed[0]!.data.changes).toMatchObject({ status: { before: 'pending', after: 'completed' } });
  });

  it('deleting a worker records the unassignment of its tasks; a forced project delete records each task', async () => {
    const helper = (await c.WorkerService.createWorker({ handle: '@leaving' })).worker.id;
    const { project, tasks } = await c.ProjectService.createProjectWithTasks({
      name: 'gone',
      taskTitles: ['x', 'y'],
      createdById: workerId,
    });
    await c.TaskService.assignTask({ id: tasks[0]!.id, workerId: helper });
    await c.WorkerService.deleteWorker({ id: helper });
    const ids = tasks.map((x) => x.id);
    expect((await events(ids)).filter((r) => r.kind === 'unassigned').map((r) => r.task_id)).toEqual([tasks[0]!.id]);

    await c.ProjectService.deleteProject({ id: project.id, force: true });
    const deleted = (await events(ids)).filter((r) => r.kind === 'deleted');
    expect(sorted(deleted.map((r) => r.task_id))).toEqual(sorted(ids));
    expect(deleted[0]!.data.reason).toBe('project deleted');
  });
});
