/**
 * TaskService over gRPC and Connect, creating and reading: CreateTask (every field, defaults,
 * the key's worker as creator, references, validation) and GetTask with its views. Lists:
 * api-tasks-list.test.ts; writes: api-tasks-write.test.ts; idempotency: api-idempotency.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { ProjectStatus, TaskPriority, TaskStatus, TaskView, WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError, iso, ts } from '../helpers/expect-rpc.js';
import { ids, type TaskFixture, taskFixture } from '../helpers/task-fixture.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let f: TaskFixture;
    beforeAll(async () => {
      f = await taskFixture(t, protocol);
    });

    describe('CreateTask', () => {
      it('creates a task with every field, with assignee and created_by loaded', async () => {
        const { createTask, getTask, w1, owner, project } = f;
        const parent = await createTask({ title: 'parent' });
        const due = '2031-05-06T07:08:09.123Z';
        const task = await createTask({
          title: 'Write the report',
          description: 'all of it',
          priority: TaskPriority.HIGH,
          tags: ['docs', 'q3', 'docs'],
          assigneeId: w1.id,
          parentTaskId: parent.id,
          dueDate: ts(due),
        });
        expect(task).toMatchObject({
          title: 'Write the report',
          description: 'all of it',
          status: TaskStatus.PENDING,
          priority: TaskPriority.HIGH,
          tags: ['docs', 'q3'],
          projectId: project.id,
          assigneeId: w1.id,
          createdById: owner.id,
          parentTaskId: parent.id,
          version: 1n,
          assignee: { id: w1.id, handle: '@w1', type: WorkerType.HUMAN, email: 'w1@example.com' },
          createdBy: { id: owner.id, handle: '@owner' },
        });
        expect(iso(task.dueDate)).toBe(due);
        expect(iso(task.updatedAt)).toBe(iso(task.createdAt));
        expect(task.project).toBeUndefined();
        expect(task.parent).toBeUndefined();
        expect(task.leaseExpiresAt).toBeUndefined();
        const read = await getTask(task.id);
        expect(read).toMatchObject({
          title: 'Write the report',
          tags: ['docs', 'q3'],
          assigneeId: w1.id,
          parentTaskId: parent.id,
          priority: TaskPriority.HIGH,
        });
        expect(iso(read.dueDate)).toBe(due);
      });

      it('applies the defaults: pending, medium, no tags, unassigned, top level', async () => {
        const task = await f.createTask({ title: 'Bare' });
        expect(task).toMatchObject({
          status: TaskStatus.PENDING,
          priority: TaskPriority.MEDIUM,
          version: 1n,
          createdById: f.owner.id,
          description: '',
          tags: [],
          subtasks: [],
        });
        expect(task.assigneeId).toBeUndefined();
        expect(task.assignee).toBeUndefined();
        expect(task.parentTaskId).toBeUndefined();
        expect(task.dueDate).toBeUndefined();
        expect(task.createdBy?.handle).toBe('@owner');
      });

      it('records the worker of the API key as creator', async () => {
        const { keyedApi, keyed } = f;
        const p = (await keyedApi.ProjectService.createProject({ name: 'Keyed' })).project;
        const task = (await keyedApi.TaskService.createTask({ projectId: p.id, title: 'mine' })).task;
        expect(task).toMatchObject({
          createdById: keyed.workerId,
          createdBy: { id: keyed.workerId, handle: '@owner' },
        });
        const explicit = (
          await keyedApi.TaskService.createTask({ projectId: p.id, title: 'mine too', createdById: keyed.workerId })
        ).task;
        expect(explicit.createdById).toBe(keyed.workerId);
        await expectRpcError(
          keyedApi.TaskService.createTask({ projectId: p.id, title: 'not mine', createdById: keyed.workerId + 1000n }),
          Code.PermissionDenied,
          'created_by_id',
        );
      });

      it('needs created_by_id when the key has no worker', async () => {
        await expectRpcError(
          f.api.TaskService.createTask({ projectId: f.project.id, title: 'anonymous' }),
          Code.InvalidArgument,
          'created_by_id',
        );
      });

      it('refuses references that do not exist with FAILED_PRECONDITION', async () => {
        const { createTask, countTasks, project } = f;
        const before = await countTasks(project.id);
        const missing = 987654321n;
        await expectRpcError(createTask({ title: 'x', projectId: missing }), Code.FailedPrecondition, 'project_id');
        await expectRpcError(
          createTask({ title: 'x', createdById: missing }),
          Code.FailedPrecondition,
          'created_by_id',
        );
        await expectRpcError(createTask({ title: 'x', assigneeId: missing }), Code.FailedPrecondition, 'assignee_id');
        await expectRpcError(
          createTask({ title: 'x', assigneeId: f.otherWorkerId }),
          Code.FailedPrecondition,
          'assignee_id',
        );
        await expectRpcError(
          createTask({ title: 'x', parentTaskId: missing }),
          Code.FailedPrecondition,
          'parent_task_id',
        );
        expect(await countTasks(project.id)).toBe(before);
      });

      it('refuses a parent in another project with FAILED_PRECONDITION', async () => {
        const foreignParent = await f.createTask({ title: 'elsewhere', projectId: f.otherProject.id });
        await expectRpcError(
          f.createTask({ title: 'child', parentTaskId: foreignParent.id }),
          Code.FailedPrecondition,
          'parent_task_id',
        );
      });

      describe('validation', () => {
        it('title: empty, blank or over 500 characters is INVALID_ARGUMENT naming title', async () => {
          const { createTask } = f;
          await expectRpcError(createTask({ title: '' }), Code.InvalidArgument, 'title');
          await expectRpcError(createTask({ title: '  ' }), Code.InvalidArgument, 'title');
          await expectRpcError(createTask({ title: 'x'.repeat(501) }), Code.InvalidArgument, 'title');
          expect((await createTask({ title: 'x'.repeat(500) })).title).toHaveLength(500);
          // Characters, not bytes or UTF-16 units.
          expect([...(await createTask({ title: '😀'.repeat(500) })).title]).toHaveLength(500);
          await expectRpcError(createTask({ title: '😀'.repeat(501) }), Code.InvalidArgument, 'title');
        });

        it('tags: 51 tags, or a tag of 65 characters, is INVALID_ARGUMENT naming tags', async () => {
          const { createTask } = f;
          const fifty = Array.from({ length: 50 }, (_, i) => `tag${i}`);
          expect((await createTask({ title: 'fifty tags', tags: fifty })).tags).toEqual(fifty);
          await expectRpcError(createTask({ title: 't', tags: [...fifty, 'tag50'] }), Code.InvalidArgument, 'tags');
          expect((await createTask({ title: 'long tag', tags: ['t'.repeat(64)] })).tags).toEqual(['t'.repeat(64)]);
          await expectRpcError(createTask({ title: 't', tags: ['t'.repeat(65)] }), Code.InvalidArgument, 'tags');
          await expectRpcError(createTask({ title: 't', tags: [''] }), Code.InvalidArgument, 'tags');
        });

        it('description: over 64 KiB (in bytes) is INVALID_ARGUMENT naming description', async () => {
          const { createTask } = f;
          expect((await createTask({ title: 'big', description: 'd'.repeat(64 * 1024) })).description).toHaveLength(
            64 * 1024,
          );
          await expectRpcError(
            createTask({ title: 't', description: 'd'.repeat(64 * 1024 + 1) }),
            Code.InvalidArgument,
            'description',
          );
          // 32 769 two-byte characters: under the limit in characters, over it in bytes.
          await expectRpcError(
            createTask({ title: 't', description: 'é'.repeat(32 * 1024 + 1) }),
            Code.InvalidArgument,
            'description',
          );
        });

        it('a request over 4 MiB is RESOURCE_EXHAUSTED', async () => {
          const { createTask, countTasks, project } = f;
          const before = await countTasks(project.id);
          await expectRpcError(
            createTask({ title: 'huge', description: 'x'.repeat(5 * 1024 * 1024) }),
            Code.ResourceExhausted,
          );
          expect(await countTasks(project.id)).toBe(before);
          // The server is fine afterwards.
          expect((await createTask({ title: 'after the big one' })).title).toBe('after the big one');
        });

        it('refuses a missing project_id with INVALID_ARGUMENT', async () => {
          await expectRpcError(
            f.api.TaskService.createTask({ title: 'nowhere', createdById: f.owner.id }),
            Code.InvalidArgument,
            'project_id',
          );
        });
      });
    });

    describe('GetTask', () => {
      type Task = Awaited<ReturnType<TaskFixture['getTask']>>;
      let root: Task;
      let child1: Task;
      let child2: Task;
      let grandchild: Task;

      beforeAll(async () => {
        const { createTask, w1, w2 } = f;
        root = await createTask({ title: 'root', assigneeId: w2.id });
        child1 = await createTask({ title: 'child 1', parentTaskId: root.id });
        child2 = await createTask({ title: 'child 2', parentTaskId: root.id, assigneeId: w1.id });
        grandchild = await createTask({ title: 'grandchild', parentTaskId: child1.id });
      });

      it('the basic view has assignee and created_by, and no project, parent or subtasks', async () => {
        for (const view of [undefined, TaskView.BASIC]) {
          const task = await f.getTask(child2.id, view);
          expect(task).toMatchObject({
            id: child2.id,
            assignee: { handle: '@w1' },
            createdBy: { handle: '@owner' },
            parentTaskId: root.id,
          });
          expect(task.project).toBeUndefined();
          expect(task.parent).toBeUndefined();
          expect(task.subtasks).toEqual([]);
        }
      });

      it('the full view adds project, parent and one level of subtasks', async () => {
        const { getTask, project, w2 } = f;
        const task = await getTask(child1.id, TaskView.FULL);
        expect(task.project).toMatchObject({ id: project.id, name: 'Main', status: ProjectStatus.ACTIVE });
        expect(task.parent).toMatchObject({ id: root.id, title: 'root', assigneeId: w2.id });
        expect(ids(task.subtasks)).toEqual([grandchild.id]);
        expect(task.createdBy?.handle).toBe('@owner');

        const top = await getTask(root.id, TaskView.FULL);
        expect(top.parent).toBeUndefined();
        expect(top.assignee).toMatchObject({ id: w2.id, type: WorkerType.AGENT, capabilities: ['code'] });
        expect(ids(top.subtasks)).toEqual([child1.id, child2.id]);
        expect(top.subtasks[0]?.title).toBe('child 1');
        // One level only.
        expect(top.subtasks[0]?.subtasks).toEqual([]);

        const leaf = await getTask(grandchild.id, TaskView.FULL);
        expect(leaf.subtasks).toEqual([]);
        expect(leaf.parent?.id).toBe(child1.id);
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        await expectRpcError(f.api.TaskService.getTask({ id: 987654321n }), Code.NotFound, 'task');
        await expectRpcError(f.other.TaskService.getTask({ id: root.id }), Code.NotFound);
      });
    });
  });
}
