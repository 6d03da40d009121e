/**
 * TaskService writes over gRPC and Connect: UpdateTask with update_mask, status transitions and
 * expected_version, parent rules, DeleteTask with subtasks, AssignTask.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { TaskPriority, TaskStatus, TaskView } from '../helpers/clients.js';
import { Code, expectRpcError, iso, mask, ms, ts } from '../helpers/expect-rpc.js';
import { type TaskFixture, taskFixture } from '../helpers/task-fixture.js';
import { clockPast } from '../helpers/wait.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const { PENDING, IN_PROGRESS, REVIEW, COMPLETED, BLOCKED } = TaskStatus;
/** How to reach each status from pending with allowed steps. */
const PATH_TO = new Map<TaskStatus, TaskStatus[]>([
  [PENDING, []],
  [IN_PROGRESS, [IN_PROGRESS]],
  [REVIEW, [IN_PROGRESS, REVIEW]],
  [COMPLETED, [COMPLETED]],
  [BLOCKED, [BLOCKED]],
]);
/** The transitions of the contract (docs/spec.md §3). */
const ALLOWED = new Map<TaskStatus, TaskStatus[]>([
  [PENDING, [IN_PROGRESS, BLOCKED, COMPLETED]],
  [IN_PROGRESS, [REVIEW, COMPLETED, BLOCKED, PENDING]],
  [REVIEW, [IN_PROGRESS, COMPLETED]],
  [BLOCKED, [PENDING, IN_PROGRESS]],
  [COMPLETED, [REVIEW]],
]);
const STATUSES = [...PATH_TO.keys()];

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let f: TaskFixture;
    beforeAll(async () => {
      f = await taskFixture(t, protocol);
    });

    describe('UpdateTask', () => {
      it('writes only the fields of update_mask, bumps version and updated_at', async () => {
        const { createTask, update, getTask } = f;
        const task = await createTask({
          title: 'old title',
          description: 'keep',
          priority: TaskPriority.LOW,
          tags: ['a'],
        });
        await clockPast(task.updatedAt);
        const updated = await update(
          { id: task.id, title: 'new title', description: 'not in mask', priority: TaskPriority.HIGH },
          'title',
        );
        expect(updated).toMatchObject({
          title: 'new title',
          description: 'keep',
          priority: TaskPriority.LOW,
          tags: ['a'],
          version: 2n,
        });
        expect(ms(updated.updatedAt)).toBeGreaterThan(ms(task.updatedAt));
        expect(iso(updated.createdAt)).toBe(iso(task.createdAt));
        expect(updated.createdBy?.handle).toBe('@owner');
        const both = await update(
          { id: task.id, priority: TaskPriority.CRITICAL, description: '' },
          'priority,description',
        );
        expect(both).toMatchObject({
          title: 'new title',
          priority: TaskPriority.CRITICAL,
          version: 3n,
          description: '',
        });
        expect(await getTask(task.id)).toMatchObject({
          title: 'new title',
          priority: TaskPriority.CRITICAL,
          version: 3n,
        });
      });

      it('takes mask paths as field names (snake_case on the wire in binary, lowerCamelCase in JSON)', async () => {
        const { createTask, update } = f;
        const task = await createTask({ title: 'snake', dueDate: ts('2030-06-01T00:00:00Z') });
        const updated = await update(
          { id: task.id, dueDate: ts('2030-07-01T00:00:00Z'), title: 'ignored' },
          'due_date',
        );
        expect(iso(updated.dueDate)).toBe('2030-07-01T00:00:00.000Z');
        expect(updated.title).toBe('snake');
      });

      it('replaces and clears tags', async () => {
        const { createTask, update, list, project } = f;
        const task = await createTask({ title: 'tagged', tags: ['a', 'b'] });
        expect((await update({ id: task.id, tags: ['c', 'd', 'c'] }, 'tags')).tags).toEqual(['c', 'd']);
        const cleared = await update({ id: task.id }, 'tags');
        expect(cleared.tags).toEqual([]);
        expect(cleared.version).toBe(3n);
        expect(await list({ projectId: project.id, tagsAll: ['c'] })).not.toContain(task.id);
      });

      it('sets and clears the due date', async () => {
        const { createTask, update, getTask } = f;
        const task = await createTask({ title: 'due' });
        const due = await update({ id: task.id, dueDate: ts('2032-02-02T02:02:02Z') }, 'dueDate');
        expect(iso(due.dueDate)).toBe('2032-02-02T02:02:02.000Z');
        const cleared = await update({ id: task.id }, 'dueDate');
        expect(cleared.dueDate).toBeUndefined();
        expect((await getTask(task.id)).dueDate).toBeUndefined();
      });

      it('sets and clears assignee_id and parent_task_id through the mask', async () => {
        const { createTask, update, w2 } = f;
        const parent = await createTask({ title: 'a parent' });
        const task = await createTask({ title: 'movable' });
        const moved = await update(
          { id: task.id, assigneeId: w2.id, parentTaskId: parent.id },
          'assigneeId,parentTaskId',
        );
        expect(moved).toMatchObject({ assigneeId: w2.id, parentTaskId: parent.id, assignee: { handle: '@w2' } });
        const back = await update({ id: task.id }, 'assigneeId,parentTaskId');
        expect(back.assigneeId).toBeUndefined();
        expect(back.parentTaskId).toBeUndefined();
        expect(back.assignee).toBeUndefined();
      });

      for (const from of STATUSES) {
        it(`status from ${TaskStatus[from]}: allowed transitions succeed, others are FAILED_PRECONDITION`, async () => {
          const { createTask, setStatus, getTask } = f;
          for (const to of STATUSES.filter((s) => s !== from)) {
            const task = await createTask({ title: `${TaskStatus[from]} → ${TaskStatus[to]}` });
            for (const step of PATH_TO.get(from)!) await setStatus(task.id, step);
            const before = await getTask(task.id);
            expect(before.status).toBe(from);
            if (ALLOWED.get(from)!.includes(to)) {
              const after = await setStatus(task.id, to);
              expect(after.status).toBe(to);
              expect(after.version).toBe(before.version + 1n);
            } else {
              await expectRpcError(setStatus(task.id, to), Code.FailedPrecondition, 'status');
              const after = await getTask(task.id);
              expect(after.status).toBe(from);
              expect(after.version).toBe(before.version);
            }
          }
        });
      }

      it('setting the status a task already has is not a transition', async () => {
        const task = await f.createTask({ title: 'same status' });
        expect((await f.setStatus(task.id, PENDING)).status).toBe(PENDING);
      });

      it('with a wrong expected_version: ABORTED, nothing written, version unchanged', async () => {
        const { createTask, update, getTask, api } = f;
        const task = await createTask({ title: 'versioned' });
        await expectRpcError(
          api.TaskService.updateTask({
            task: { id: task.id, title: 'lost' },
            updateMask: mask('title'),
            expectedVersion: 5n,
          }),
          Code.Aborted,
          'version',
        );
        const read = await getTask(task.id);
        expect(read).toMatchObject({ title: 'versioned', version: 1n });
        expect(iso(read.updatedAt)).toBe(iso(task.updatedAt));
        const ok = await update({ id: task.id, title: 'won' }, 'title', 1n);
        expect(ok).toMatchObject({ title: 'won', version: 2n });
        await expectRpcError(update({ id: task.id, title: 'stale' }, 'title', 1n), Code.Aborted);
        expect(await getTask(task.id)).toMatchObject({ title: 'won', version: 2n });
      });

      it('validates the written fields and the mask', async () => {
        const { createTask, update, getTask, otherProject, project } = f;
        const task = await createTask({ title: 'valid' });
        await expectRpcError(update({ id: task.id, title: '' }, 'title'), Code.InvalidArgument, 'title');
        await expectRpcError(update({ id: task.id, title: 'y'.repeat(501) }, 'title'), Code.InvalidArgument, 'title');
        await expectRpcError(
          update({ id: task.id, tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }, 'tags'),
          Code.InvalidArgument,
          'tags',
        );
        await expectRpcError(update({ id: task.id, version: 7n }, 'version'), Code.InvalidArgument, 'update_mask');
        await expectRpcError(
          update({ id: task.id, projectId: otherProject.id }, 'projectId'),
          Code.InvalidArgument,
          'update_mask',
        );
        await expectRpcError(update({ id: task.id }, 'status'), Code.InvalidArgument, 'status');
        expect(await getTask(task.id)).toMatchObject({ title: 'valid', version: 1n, projectId: project.id });
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        const { createTask, update, getTask, other } = f;
        const task = await createTask({ title: 'not yours' });
        await expectRpcError(update({ id: 987654321n, title: 'x' }, 'title'), Code.NotFound);
        await expectRpcError(
          other.TaskService.updateTask({ task: { id: task.id, title: 'x' }, updateMask: mask('title') }),
          Code.NotFound,
        );
        expect((await getTask(task.id)).title).toBe('not yours');
      });
    });

    describe('parents', () => {
      it('refuses a parent in another project (FAILED_PRECONDITION)', async () => {
        const { createTask, update, getTask, otherProject } = f;
        const task = await createTask({ title: 'here' });
        const foreign = await createTask({ title: 'there', projectId: otherProject.id });
        await expectRpcError(
          update({ id: task.id, parentTaskId: foreign.id }, 'parentTaskId'),
          Code.FailedPrecondition,
          'parent_task_id',
        );
        expect((await getTask(task.id)).parentTaskId).toBeUndefined();
      });

      it('refuses to make a task its own parent or the child of one of its descendants', async () => {
        const { createTask, update, getTask } = f;
        const a = await createTask({ title: 'a' });
        const b = await createTask({ title: 'b', parentTaskId: a.id });
        const c = await createTask({ title: 'c', parentTaskId: b.id });
        for (const parent of [a, b, c]) {
          await expectRpcError(
            update({ id: a.id, parentTaskId: parent.id }, 'parentTaskId'),
            Code.FailedPrecondition,
            'parent_task_id',
          );
        }
        const after = await getTask(a.id);
        expect(after.parentTaskId).toBeUndefined();
        expect(after.version).toBe(1n);
        // Moving down the tree the other way is fine.
        expect((await update({ id: c.id, parentTaskId: a.id }, 'parentTaskId')).parentTaskId).toBe(a.id);
      });
    });

    describe('DeleteTask', () => {
      it('deletes the task and all its subtasks, and nothing else', async () => {
        const { createTask, getTask, countTasks, api, project } = f;
        const root = await createTask({ title: 'doomed root' });
        const child = await createTask({ title: 'doomed child', parentTaskId: root.id });
        const grandchild = await createTask({ title: 'doomed grandchild', parentTaskId: child.id });
        const sibling = await createTask({ title: 'survivor' });
        const before = await countTasks(project.id);
        await api.TaskService.deleteTask({ id: root.id });
        for (const gone of [root, child, grandchild]) {
          await expectRpcError(api.TaskService.getTask({ id: gone.id }), Code.NotFound);
        }
        expect((await getTask(sibling.id)).title).toBe('survivor');
        expect(await countTasks(project.id)).toBe(before - 3);
      });

      it('deleting a subtask leaves its parent', async () => {
        const parent = await f.createTask({ title: 'stays' });
        const child = await f.createTask({ title: 'goes', parentTaskId: parent.id });
        await f.api.TaskService.deleteTask({ id: child.id });
        expect((await f.getTask(parent.id, TaskView.FULL)).subtasks).toEqual([]);
      });

      it('with a wrong expected_version: ABORTED and the task stays', async () => {
        const { createTask, getTask, api } = f;
        const task = await createTask({ title: 'guarded' });
        await expectRpcError(api.TaskService.deleteTask({ id: task.id, expectedVersion: 2n }), Code.Aborted);
        expect((await getTask(task.id)).title).toBe('guarded');
        await api.TaskService.deleteTask({ id: task.id, expectedVersion: 1n });
        await expectRpcError(api.TaskService.getTask({ id: task.id }), Code.NotFound);
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        const { createTask, getTask, api, other } = f;
        const task = await createTask({ title: 'mine' });
        await expectRpcError(api.TaskService.deleteTask({ id: 987654321n }), Code.NotFound);
        await expectRpcError(other.TaskService.deleteTask({ id: task.id }), Code.NotFound);
        expect((await getTask(task.id)).title).toBe('mine');
      });
    });

    describe('AssignTask', () => {
      it('sets the assignee, and without worker_id clears it', async () => {
        const { createTask, getTask, list, api, project, w1, w2 } = f;
        const task = await createTask({ title: 'to assign' });
        const assigned = (await api.TaskService.assignTask({ id: task.id, workerId: w2.id })).task;
        expect(assigned).toMatchObject({ assigneeId: w2.id, assignee: { id: w2.id, handle: '@w2' }, version: 2n });
        expect((await getTask(task.id)).assigneeId).toBe(w2.id);
        expect(await list({ projectId: project.id, assigneeId: w2.id })).toContain(task.id);

        const reassigned = (await api.TaskService.assignTask({ id: task.id, workerId: w1.id, expectedVersion: 2n }))
          .task;
        expect(reassigned).toMatchObject({ assigneeId: w1.id, assignee: { handle: '@w1' }, version: 3n });

        const cleared = (await api.TaskService.assignTask({ id: task.id })).task;
        expect(cleared.assigneeId).toBeUndefined();
        expect(cleared.assignee).toBeUndefined();
        expect(cleared.version).toBe(4n);
        expect((await getTask(task.id)).assigneeId).toBeUndefined();
      });

      it('refuses a worker of another tenant or a missing worker (FAILED_PRECONDITION) and writes nothing', async () => {
        const { createTask, getTask, api, w1, otherWorkerId } = f;
        const task = await createTask({ title: 'picky', assigneeId: w1.id });
        await expectRpcError(
          api.TaskService.assignTask({ id: task.id, workerId: otherWorkerId }),
          Code.FailedPrecondition,
          'worker_id',
        );
        await expectRpcError(
          api.TaskService.assignTask({ id: task.id, workerId: 987654321n }),
          Code.FailedPrecondition,
          'worker_id',
        );
        expect(await getTask(task.id)).toMatchObject({ assigneeId: w1.id, version: 1n });
      });

      it('answers ABORTED for a wrong expected_version and NOT_FOUND for a missing task', async () => {
        const { createTask, getTask, api, w1 } = f;
        const task = await createTask({ title: 'assign versioned' });
        await expectRpcError(
          api.TaskService.assignTask({ id: task.id, workerId: w1.id, expectedVersion: 3n }),
          Code.Aborted,
        );
        expect((await getTask(task.id)).assigneeId).toBeUndefined();
        await expectRpcError(api.TaskService.assignTask({ id: 987654321n, workerId: w1.id }), Code.NotFound);
      });
    });
  });
}
