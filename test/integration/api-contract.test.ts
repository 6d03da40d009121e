/** Points an outside black-box check of the contract raised, each pinned down. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
let c: ApiClient;
let workerId: string;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp();
  [a, b] = [await t.tenant(), await t.tenant()];
  c = t.client('connect', a.headers);
  workerId = (await c.call('WorkerService', 'CreateWorker', { handle: '@one' })).worker.id;
  projectId = (await c.call('ProjectService', 'CreateProject', { name: 'contract' })).project.id;
});
afterAll(async () => {
  await t?.stop();
});

describe('contract details', () => {
  it('an UpdateProject that names no field is refused and writes nothing, like UpdateTask', async () => {
    const err = await c.call('ProjectService', 'UpdateProject', { project: { id: projectId } }).catch((e) => e);
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('update_mask');
    expect((await c.call('ProjectService', 'GetProject', { id: projectId })).project.version).toBe('1');
  });

  it('AssignTask to a missing worker names the request field worker_id', async () => {
    const { task } = await c.call('TaskService', 'CreateTask', { projectId, title: 'x', createdById: workerId });
    for (const client of [c, t.client('grpc', a.headers)]) {
      const err = await client.call('TaskService', 'AssignTask', { id: task.id, workerId: '999999' }).catch((e) => e);
      expect(err.code).toBe('FAILED_PRECONDITION');
      expect(err.message).toContain('worker_id');
    }
  });

  it('TASK_VIEW_FULL loads assignee and created_by of the parent and the subtasks too', async () => {
    const parent = (await c.call('TaskService', 'CreateTask', { projectId, title: 'parent', createdById: workerId, assigneeId: workerId })).task;
    const middle = (await c.call('TaskService', 'CreateTask', { projectId, title: 'middle', parentTaskId: parent.id, createdById: workerId })).task;
    await c.call('TaskService', 'CreateTask', { projectId, title: 'child', parentTaskId: middle.id, createdById: workerId, assigneeId: workerId });
    const { task } = await c.call('TaskService', 'GetTask', { id: middle.id, view: 'TASK_VIEW_FULL' });
    expect(task.parent.createdBy.handle).toBe('@one');
    expect(task.parent.assignee.handle).toBe('@one');
    expect(task.subtasks[0].createdBy.handle).toBe('@one');
    expect(task.subtasks[0].assignee.handle).toBe('@one');
  });

  it('metadata numbers must be finite (NaN would silently become null)', async () => {
    const err = await t
      .client('grpc', a.headers)
      .call('ProjectService', 'CreateProject', { name: 'nan', metadata: { a: Number.NaN } })
      .catch((e) => e);
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('metadata');
  });

  it("a page token of one tenant is refused for another tenant's list", async () => {
    await c.call('WorkerService', 'CreateWorker', { handle: '@two' });
    const { nextPageToken } = await c.call('WorkerService', 'ListWorkers', { pageSize: 1 });
    expect(nextPageToken).toBeTruthy();
    const err = await t.client('connect', b.headers).call('WorkerService', 'ListWorkers', { pageSize: 1, pageToken: nextPageToken }).catch((e) => e);
    expect(err.code).toBe('INVALID_ARGUMENT');
  });
});
