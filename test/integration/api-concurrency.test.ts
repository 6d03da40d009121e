/**
 * Concurrent writers through the real API: versions are never lost or skipped, a conditional
 * write wins exactly once, and a unique handle is taken exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, TaskPriority, TaskStatus } from '../helpers/clients.js';
import { Code, expectRpcError, mask } from '../helpers/expect-rpc.js';

let t: TestApp;
let tenant: TestTenant;
let grpc: ApiClient;
let connect: ApiClient;
let projectId: bigint;
let workerId: bigint;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  grpc = t.client('grpc', tenant.headers);
  connect = t.client('connect', tenant.headers);
  projectId = (await connect.ProjectService.createProject({ name: 'race' })).project.id;
  workerId = (await connect.WorkerService.createWorker({ handle: '@racer' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

const newTask = async () =>
  (await connect.TaskService.createTask({ projectId, title: 'contended', createdById: workerId })).task;

describe('concurrent writes', () => {
  it('ten updates with the same expected_version: exactly one wins, the rest are ABORTED', async () => {
    const task = await newTask();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? grpc : connect).TaskService.updateTask({
          task: { id: task.id, title: `writer ${i}` },
          updateMask: mask('title'),
          expectedVersion: task.version,
        }),
      ),
    );
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.task] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') await expectRpcError(Promise.reject(r.reason), Code.Aborted);
    const { task: after } = await connect.TaskService.getTask({ id: task.id });
    expect(after.version).toBe(2n);
    expect(after.title).toBe(won[0]!.title);
  });

  it('ten unconditional writes: none is lost, the version counts every one', async () => {
    const task = await newTask();
    const tags = Array.from({ length: 10 }, (_, i) => `t${i}`);
    await Promise.all(
      tags.map((tag, i) =>
        (i % 2 ? grpc : connect).TaskService.updateTask({
          task: { id: task.id, tags: [tag] },
          updateMask: mask('tags'),
        }),
      ),
    );
    const { task: after } = await connect.TaskService.getTask({ id: task.id });
    expect(after.version).toBe(11n);
    const versions = await t.app.database.db.withTenantTransaction(tenant.id, (tx) =>
      tx.many<{ v: string }>(
        `select data->'changes'->'version'->>'after' as v from task_events where task_id = $1::bigint and kind = 'updated' order by id`,
        [task.id],
      ),
    );
    expect(versions.map((r) => r.v)).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 2)));
  });

  it('the same handle created ten times at once exists once; the others are ALREADY_EXISTS', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? grpc : connect).WorkerService.createWorker({ handle: i % 3 ? '@same' : '@SAME' }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') await expectRpcError(Promise.reject(r.reason), Code.AlreadyExists);
  });

  it('CompleteProjectTasks racing task updates: every task ends completed or with a valid later state, counts add up', async () => {
    const { project, tasks } = await connect.ProjectService.createProjectWithTasks({
      name: 'bulk race',
      taskTitles: Array.from({ length: 30 }, (_, i) => `t${i}`),
      createdById: workerId,
    });
    const [complete] = await Promise.all([
      connect.ProjectService.completeProjectTasks({ projectId: project.id }),
      ...tasks.slice(0, 10).map((x) =>
        grpc.TaskService.updateTask({
          task: { id: x.id, priority: TaskPriority.HIGH },
          updateMask: mask('priority'),
        }),
      ),
    ]);
    expect(complete.completedCount).toBe(30n);
    const { tasks: after } = await connect.TaskService.listTasks({ projectId: project.id, pageSize: 100 });
    expect(after.every((x) => x.status === TaskStatus.COMPLETED)).toBe(true);
    // Each of the ten tasks was written twice, in one order or the other: version 3.
    const touched = after.filter((x) => x.priority === TaskPriority.HIGH);
    expect(touched).toHaveLength(10);
    expect(touched.every((x) => x.version === 3n)).toBe(true);
  });
});
