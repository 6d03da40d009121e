/** Points an outside black-box check of the contract raised, each pinned down. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, TaskView } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';

let t: TestApp;
let a: TestTenant;
let c: ApiClient;
let workerId: bigint;
let projectId: bigint;

beforeAll(async () => {
  t = await startTestApp();
  a = await t.tenant();
  c = t.client('connect', a.headers);
  workerId = (await c.WorkerService.createWorker({ handle: '@one' })).worker.id;
  projectId = (await c.ProjectService.createProject({ name: 'contract' })).project.id;
});
afterAll(async () => {
  await t?.stop();
});

describe('contract details', () => {
  it('an UpdateProject that names no field is refused and writes nothing, like UpdateTask', async () => {
    await expectRpcError(
      c.ProjectService.updateProject({ project: { id: projectId } }),
      Code.InvalidArgument,
      'update_mask',
    );
    expect((await c.ProjectService.getProject({ id: projectId })).project.version).toBe(1n);
  });

  it('AssignTask to a missing worker names the request field worker_id', async () => {
    const { task } = await c.TaskService.createTask({ projectId, title: 'x', createdById: workerId });
    for (const client of [c, t.client('grpc', a.headers)]) {
      await expectRpcError(
        client.TaskService.assignTask({ id: task.id, workerId: 999999n }),
        Code.FailedPrecondition,
        'worker_id',
      );
    }
  });

  it('TASK_VIEW_FULL loads assignee and created_by of the parent and the subtasks too', async () => {
    const parent = (
      await c.TaskService.createTask({ projectId, title: 'parent', createdById: workerId, assigneeId: workerId })
    ).task;
    const middle = (
      await c.TaskService.createTask({ projectId, title: 'middle', parentTaskId: parent.id, createdById: workerId })
    ).task;
    await c.TaskService.createTask({
      projectId,
      title: 'child',
      parentTaskId: middle.id,
      createdById: workerId,
      assigneeId: workerId,
    });
    const { task } = await c.TaskService.getTask({ id: middle.id, view: TaskView.FULL });
    expect(task.parent).toMatchObject({ createdBy: { handle: '@one' }, assignee: { handle: '@one' } });
    expect(task.subtasks[0]).toMatchObject({ createdBy: { handle: '@one' }, assignee: { handle: '@one' } });
  });

  it('metadata numbers must be finite (NaN would silently become null)', async () => {
    await expectRpcError(
      t.client('grpc', a.headers).ProjectService.createProject({ name: 'nan', metadata: { a: Number.NaN } }),
      Code.InvalidArgument,
      'metadata',
    );
  });
});
