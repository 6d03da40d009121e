/**
 * Concurrent writers through the real API: versions are never lost or skipped, a conditional
 * write wins exactly once, and a unique handle is taken exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';

let t: TestApp;
let tenant: TestTenant;
let grpc: ApiClient;
let connect: ApiClient;
let projectId: string;
let workerId: string;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  grpc = t.client('grpc', tenant.headers);
  connect = t.client('connect', tenant.headers);
  projectId = (await connect.call('ProjectService', 'CreateProject', { name: 'race' })).project.id;
  workerId = (await connect.call('WorkerService', 'CreateWorker', { handle: '@racer' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

const newTask = async () =>
  (await connect.call('TaskService', 'CreateTask', { projectId, title: 'contended', createdById: workerId })).task;

describe('concurrent writes', () => {
  it('ten updates with the same expected_version: exactly one wins, the rest are ABORTED', async () => {
    const task = await newTask();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? grpc : connect).call('TaskService', 'UpdateTask', {
          task: { id: task.id, title: `writer ${i}` },
          updateMask: 'title',
          expectedVersion: task.version,
        }),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.map((r) => r.reason.code)).toEqual(Array(9).fill('ABORTED'));
    const { task: after } = await connect.call('TaskService', 'GetTask', { id: task.id });
    expect(after.version).toBe('2');
    expect(after.title).toBe((won[0] as PromiseFulfilledResult<{ task: { title: string } }>).value.task.title);
  });

  it('ten unconditional writes: none is lost, the version counts every one', async () => {
    const task = await newTask();
    const tags = Array.from({ length: 10 }, (_, i) => `t${i}`);
    await Promise.all(
      tags.map((tag, i) =>
        (i % 2 ? grpc : connect).call('TaskService', 'UpdateTask', { task: { id: task.id, tags: [tag] }, updateMask: 'tags' }),
      ),
    );
    const { task: after } = await connect.call('TaskService', 'GetTask', { id: task.id });
    expect(after.version).toBe('11');
    const versions = await t.app.database.db.withTenantTransaction(BigInt(tenant.id), (tx) =>
      tx.many<{ v: string }>(
        `select data->'changes'->'version'->>'after' as v from task_events where task_id = $1::bigint and kind = 'updated' order by id`,
        [task.id],
      ),
    );
    expect(versions.map((r) => r.v)).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 2)));
  });

  it('the same handle created ten times at once exists once; the others are ALREADY_EXISTS', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? grpc : connect).call('WorkerService', 'CreateWorker', { handle: i % 3 ? '@same' : '@SAME' })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const codes = results.flatMap((r) => (r.status === 'rejected' ? [r.reason.code] : []));
    expect(codes).toEqual(Array(9).fill('ALREADY_EXISTS'));
  });

  it('CompleteProjectTasks racing task updates: every task ends completed or with a valid later state, counts add up', async () => {
    const { project, tasks } = await connect.call('ProjectService', 'CreateProjectWithTasks', {
      name: 'bulk race',
      taskTitles: Array.from({ length: 30 }, (_, i) => `t${i}`),
      createdById: workerId,
    });
    const [complete] = await Promise.all([
      connect.call('ProjectService', 'CompleteProjectTasks', { projectId: project.id }),
      ...tasks.slice(0, 10).map((x: { id: string }) =>
        grpc.call('TaskService', 'UpdateTask', { task: { id: x.id, priority: 'TASK_PRIORITY_HIGH' }, updateMask: 'priority' }),
      ),
    ]);
    expect(Number(complete.completedCount)).toBe(30);
    const { tasks: after } = await connect.call('TaskService', 'ListTasks', { projectId: project.id, pageSize: 100 });
    expect(after.every((x: { status: string }) => x.status === 'TASK_STATUS_COMPLETED')).toBe(true);
    // Each of the ten tasks was written twice, in one order or the other: version 3.
    const touched = after.filter((x: { priority: string }) => x.priority === 'TASK_PRIORITY_HIGH');
    expect(touched).toHaveLength(10);
    expect(touched.every((x: { version: string }) => x.version === '3')).toBe(true);
  });
});
