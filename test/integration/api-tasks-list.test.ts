/**
 * ListTasks over gRPC and Connect: every filter, the three orders and keyset paging (also while
 * rows are inserted), and relations loaded in batch (the statement count of a page does not
 * grow with its size). Page-token checks shared by every list: api-paging.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { TaskOrderBy, TaskPriority, TaskStatus, TaskView } from '../helpers/clients.js';
import { listAll, mask, ts } from '../helpers/expect-rpc.js';
import { ids, type TaskFixture, taskFixture } from '../helpers/task-fixture.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

type Task = Awaited<ReturnType<TaskFixture['getTask']>>;

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let f: TaskFixture;
    let fp: Task['project'] & {};
    let t1: Task, t2: Task, t3: Task, t4: Task, t5: Task, t6: Task;

    beforeAll(async () => {
      f = await taskFixture(t, protocol);
      const { api, createTask, setStatus, w1, w2 } = f;
      fp = (await api.ProjectService.createProject({ name: 'Filters' })).project;
      const mk = (fields: Parameters<TaskFixture['createTask']>[0]) => createTask({ projectId: fp.id, ...fields });
      t1 = await mk({
        title: 't1',
        priority: TaskPriority.LOW,
        tags: ['x'],
        dueDate: ts('2030-01-01T00:00:00Z'),
        assigneeId: w1.id,
      });
      t2 = await mk({
        title: 't2',
        priority: TaskPriority.HIGH,
        tags: ['x', 'y'],
        dueDate: ts('2030-03-01T00:00:00Z'),
        assigneeId: w2.id,
      });
      t3 = await mk({ title: 't3', priority: TaskPriority.CRITICAL, tags: ['y'], createdById: w1.id });
      t4 = await mk({ title: 't4', dueDate: ts('2030-02-01T00:00:00Z'), parentTaskId: t1.id });
      t5 = await mk({
        title: 't5',
        priority: TaskPriority.HIGH,
        tags: ['x', 'y', 'z'],
        parentTaskId: t1.id,
        createdById: w1.id,
        assigneeId: w1.id,
      });
      t6 = await mk({ title: 't6', dueDate: ts('2030-01-15T00:00:00Z') });
      await setStatus(t2.id, TaskStatus.IN_PROGRESS);
      await setStatus(t4.id, TaskStatus.BLOCKED);
      await setStatus(t6.id, TaskStatus.COMPLETED);
    });

    it('lists the tasks of a project, oldest first, and only those', async () => {
      expect(await f.list({ projectId: fp.id })).toEqual(ids([t1, t2, t3, t4, t5, t6]));
      const res = await f.api.TaskService.listTasks({ projectId: fp.id });
      expect(res.tasks[0]).toMatchObject({ title: 't1', assignee: { handle: '@w1' }, createdBy: { handle: '@owner' } });
      expect(res.nextPageToken).toBe('');
      expect(await f.list({ projectId: f.otherProject.id })).not.toContain(t1.id);
    });

    it('filters by statuses', async () => {
      const { list } = f;
      expect(await list({ projectId: fp.id, statuses: [TaskStatus.PENDING] })).toEqual(ids([t1, t3, t5]));
      expect(await list({ projectId: fp.id, statuses: [TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED] })).toEqual(
        ids([t2, t4]),
      );
      expect(await list({ projectId: fp.id, statuses: [TaskStatus.REVIEW] })).toEqual([]);
    });

    it('filters by assignee_id, created_by_id and parent_task_id', async () => {
      const { list, w1, w2 } = f;
      expect(await list({ projectId: fp.id, assigneeId: w1.id })).toEqual(ids([t1, t5]));
      expect(await list({ projectId: fp.id, assigneeId: w2.id })).toEqual(ids([t2]));
      expect(await list({ projectId: fp.id, createdById: w1.id })).toEqual(ids([t3, t5]));
      // Without a project: the whole tenant (w1 created tasks only here).
      expect(await list({ createdById: w1.id })).toEqual(ids([t3, t5]));
      expect(await list({ projectId: fp.id, parentTaskId: t1.id })).toEqual(ids([t4, t5]));
      expect(await list({ parentTaskId: t1.id })).toEqual(ids([t4, t5]));
    });

    it('filters by tags_all: tasks carrying every tag', async () => {
      const { list } = f;
      expect(await list({ projectId: fp.id, tagsAll: ['x'] })).toEqual(ids([t1, t2, t5]));
      expect(await list({ projectId: fp.id, tagsAll: ['x', 'y'] })).toEqual(ids([t2, t5]));
      expect(await list({ projectId: fp.id, tagsAll: ['z', 'x', 'y'] })).toEqual(ids([t5]));
      expect(await list({ projectId: fp.id, tagsAll: ['nope'] })).toEqual([]);
      expect(await list({ projectId: fp.id, tagsAll: ['x', 'nope'] })).toEqual([]);
    });

    it('filters by priority', async () => {
      const { list } = f;
      expect(await list({ projectId: fp.id, priority: TaskPriority.HIGH })).toEqual(ids([t2, t5]));
      expect(await list({ projectId: fp.id, priority: TaskPriority.MEDIUM })).toEqual(ids([t4, t6]));
      expect(await list({ projectId: fp.id, priority: TaskPriority.CRITICAL })).toEqual(ids([t3]));
    });

    it('filters by due_before and due_after (exclusive; tasks without a due date never match)', async () => {
      const { list } = f;
      expect(await list({ projectId: fp.id, dueBefore: ts('2030-02-01T00:00:00Z') })).toEqual(ids([t1, t6]));
      expect(await list({ projectId: fp.id, dueAfter: ts('2030-01-15T00:00:00Z') })).toEqual(ids([t2, t4]));
      expect(
        await list({ projectId: fp.id, dueAfter: ts('2030-01-01T00:00:00Z'), dueBefore: ts('2030-03-01T00:00:00Z') }),
      ).toEqual(ids([t4, t6]));
    });

    it('combines filters', async () => {
      const { list, w1 } = f;
      expect(await list({ projectId: fp.id, statuses: [TaskStatus.PENDING], tagsAll: ['x'] })).toEqual(ids([t1, t5]));
      expect(
        await list({ projectId: fp.id, assigneeId: w1.id, priority: TaskPriority.HIGH, parentTaskId: t1.id }),
      ).toEqual(ids([t5]));
      expect(await list({ projectId: fp.id, createdById: w1.id, statuses: [TaskStatus.COMPLETED] })).toEqual([]);
    });

    const ORDERS: [TaskOrderBy, () => Task[]][] = [
      [TaskOrderBy.UNSPECIFIED, () => [t1, t2, t3, t4, t5, t6]],
      [TaskOrderBy.CREATED_AT, () => [t1, t2, t3, t4, t5, t6]],
      // Earliest due date first, tasks without one last (by id).
      [TaskOrderBy.DUE_DATE, () => [t1, t6, t4, t2, t3, t5]],
      // Critical first; equal priorities by id.
      [TaskOrderBy.PRIORITY, () => [t3, t2, t5, t4, t6, t1]],
    ];
    for (const [orderBy, expected] of ORDERS) {
      it(`orders by ${TaskOrderBy[orderBy]}, the same in one page and in pages of 1 and 2`, async () => {
        const want = ids(expected());
        expect(await f.list({ projectId: fp.id, orderBy })).toEqual(want);
        for (const pageSize of [1, 2]) {
          const { items, pages } = await listAll(
            (pageToken) => f.api.TaskService.listTasks({ projectId: fp.id, orderBy, pageSize, pageToken }),
            (r) => r.tasks,
          );
          expect(ids(items)).toEqual(want);
          expect(pages).toBe(Math.ceil(want.length / pageSize));
        }
      });
    }

    it('pages through many tasks with no repeats and no gaps', async () => {
      const { api, owner } = f;
      const titles = Array.from({ length: 25 }, (_, i) => `bulk ${i}`);
      const { project: bulk, tasks } = await api.ProjectService.createProjectWithTasks({
        name: 'Bulk',
        taskTitles: titles,
        createdById: owner.id,
      });
      const first = await api.TaskService.listTasks({ projectId: bulk.id, pageSize: 7 });
      expect(first.tasks).toHaveLength(7);
      expect(first.nextPageToken).not.toBe('');
      const pagesOf = (pageSize: number) =>
        listAll(
          (pageToken) => api.TaskService.listTasks({ projectId: bulk.id, pageSize, pageToken }),
          (r) => r.tasks,
        );
      const { items, pages } = await pagesOf(7);
      expect(pages).toBe(4);
      expect(ids(items)).toEqual(ids(tasks));
      expect(new Set(ids(items)).size).toBe(25);
      // A page size that divides the count: the last full page may or may not have a token after it.
      expect(ids((await pagesOf(5)).items)).toEqual(ids(tasks));
    });

    describe('paging while rows are inserted', () => {
      const PRIORITIES = [TaskPriority.LOW, TaskPriority.MEDIUM, TaskPriority.HIGH, TaskPriority.CRITICAL];
      const DUES = ['2030-01-05T00:00:00Z', undefined, '2030-01-02T00:00:00Z', '2030-01-09T00:00:00Z', undefined];

      /** Pages through a project of 12 tasks in pages of 3, inserting 3 tasks after each of the first 4 pages. */
      async function pageWhileInserting(orderBy: TaskOrderBy) {
        const { api, createTask } = f;
        const p = (await api.ProjectService.createProject({ name: `Moving ${orderBy}` })).project;
        const original: bigint[] = [];
        for (let i = 0; i < 12; i++) {
          const due = DUES[i % 5];
          const task = await createTask({
            projectId: p.id,
            title: `orig ${i}`,
            priority: PRIORITIES[i % 4],
            dueDate: due === undefined ? undefined : ts(due),
          });
          original.push(task.id);
        }
        const seen: bigint[] = [];
        let pageToken = '';
        let round = 0;
        do {
          const res = await api.TaskService.listTasks({ projectId: p.id, orderBy, pageSize: 3, pageToken });
          seen.push(...ids(res.tasks));
          pageToken = res.nextPageToken;
          round++;
          if (round > 4) continue;
          // New rows that sort before, among and after what was read so far.
          await createTask({
            projectId: p.id,
            title: `new ${round} a`,
            priority: TaskPriority.CRITICAL,
            dueDate: ts('2029-12-31T00:00:00Z'),
          });
          await createTask({
            projectId: p.id,
            title: `new ${round} b`,
            priority: TaskPriority.MEDIUM,
            dueDate: ts('2030-01-05T00:00:00Z'),
          });
          await createTask({ projectId: p.id, title: `new ${round} c`, priority: TaskPriority.LOW });
        } while (pageToken && round < 20);
        expect(round).toBeLessThan(20);
        expect(new Set(seen).size, 'a row came twice').toBe(seen.length);
        for (const id of original) expect(seen, `row ${id} that existed at the start was skipped`).toContain(id);
        return { seen, original };
      }

      it('by creation: every original row once, new rows after them', async () => {
        const { seen, original } = await pageWhileInserting(TaskOrderBy.CREATED_AT);
        expect(seen.slice(0, 12)).toEqual(original);
        expect([...seen].sort((a, b) => Number(a - b))).toEqual(seen);
      });

      it('by due date: every original row once', async () => {
        await pageWhileInserting(TaskOrderBy.DUE_DATE);
      });

      it('by priority: every original row once', async () => {
        await pageWhileInserting(TaskOrderBy.PRIORITY);
      });
    });

    it('shows nothing of another tenant', async () => {
      expect((await f.other.TaskService.listTasks({ projectId: fp.id })).tasks).toEqual([]);
      expect((await f.other.TaskService.listTasks({ createdById: f.w1.id })).tasks).toEqual([]);
    });
  });
}

describe('relations are loaded in batch (connect)', () => {
  it('ListTasks sends as many statements for a page of 1 task as for a page of 200, in both views', async () => {
    const tenant = await t.tenant({ withWorker: true });
    const api = t.client('connect', tenant.headers);
    const workers: bigint[] = [];
    for (const handle of ['@a1', '@a2', '@a3'])
      workers.push((await api.WorkerService.createWorker({ handle })).worker.id);
    const worker = (i: number) => workers[i % 3]!;
    const setParent = (id: bigint, parentTaskId: bigint) =>
      api.TaskService.updateTask({ task: { id, parentTaskId }, updateMask: mask('parentTaskId') });

    // A project whose first task has a parent, an assignee and a subtask...
    const small = await api.ProjectService.createProjectWithTasks({ name: 'Small', taskTitles: ['s0', 's1', 's2'] });
    const [s0, s1, s2] = small.tasks as [Task, Task, Task];
    await setParent(s0.id, s1.id);
    await setParent(s2.id, s0.id);
    await api.TaskService.assignTask({ id: s0.id, workerId: worker(0) });

    // ...and one of 201 tasks with a few assignees, parents and subtasks.
    const titles = Array.from({ length: 201 }, (_, i) => `task ${String(i).padStart(3, '0')}`);
    const big = await api.ProjectService.createProjectWithTasks({ name: 'Big', taskTitles: titles });
    expect(big.tasks).toHaveLength(201);
    const bt = (i: number) => big.tasks[i]!;
    for (let i = 0; i < 6; i++) await api.TaskService.assignTask({ id: bt(10 + i).id, workerId: worker(i) });
    for (const i of [1, 2, 150]) await setParent(bt(i).id, bt(0).id);

    const db = t.app.database.db;
    const measure = async (req: Parameters<typeof api.TaskService.listTasks>[0]) => {
      const before = db.statements;
      const res = await api.TaskService.listTasks(req);
      return { statements: db.statements - before, tasks: res.tasks };
    };

    const counts = new Map<TaskView, number>();
    for (const view of [TaskView.BASIC, TaskView.FULL]) {
      // Warm up (tenant lookup cache), then measure.
      await api.TaskService.listTasks({ projectId: small.project.id, pageSize: 1, view });
      const one = await measure({ projectId: small.project.id, pageSize: 1, view });
      const many = await measure({ projectId: big.project.id, pageSize: 200, view });
      expect(one.tasks).toHaveLength(1);
      expect(many.tasks).toHaveLength(200);
      expect(one.tasks[0]).toMatchObject({
        id: s0.id,
        assignee: { id: worker(0) },
        createdBy: { id: tenant.workerId },
      });
      expect(many.tasks.every((task) => task.createdBy?.id === tenant.workerId)).toBe(true);
      expect(many.tasks.flatMap((task) => (task.assignee ? [task.assignee.id] : []))).toEqual(
        [0, 1, 2, 3, 4, 5].map(worker),
      );
      if (view === TaskView.FULL) {
        expect(one.tasks[0]).toMatchObject({ project: { name: 'Small' }, parent: { id: s1.id } });
        expect(ids(one.tasks[0]!.subtasks)).toEqual([s2.id]);
        expect(many.tasks.every((task) => task.project?.id === big.project.id)).toBe(true);
        expect(ids(many.tasks[0]!.subtasks)).toEqual([bt(1).id, bt(2).id, bt(150).id]);
        expect(many.tasks[150]?.parent?.id).toBe(bt(0).id);
        expect(many.tasks.filter((task) => task.parent).length).toBe(3);
      } else {
        expect(one.tasks[0]!.project).toBeUndefined();
        expect(many.tasks[0]!.subtasks).toEqual([]);
      }
      expect(many.statements, `${TaskView[view]}: statements for 200 tasks vs 1`).toBe(one.statements);
      counts.set(view, one.statements);
    }
    // BASIC is one round trip: BEGIN, the settings, the API-key check, the page with its workers
    // and COMMIT, written together. FULL is BEGIN with the settings and the key check, the page,
    // then project, parent and subtasks and the workers of all of them (one statement each), and
    // COMMIT.
    expect(counts.get(TaskView.BASIC)).toBe(1);
    expect(counts.get(TaskView.FULL)).toBe(7);

    // GetTask's relations are batched the same way: a bounded, fixed number of statements, and
    // BASIC reads the task with its workers in one.
    let before = db.statements;
    await api.TaskService.getTask({ id: bt(0).id, view: TaskView.FULL });
    expect(db.statements - before).toBeLessThanOrEqual(counts.get(TaskView.FULL)!);
    before = db.statements;
    const { task } = await api.TaskService.getTask({ id: bt(0).id });
    expect(db.statements - before).toBe(1);
    expect(task.createdBy?.id).toBe(bt(0).createdById);
    expect(task.assignee?.id).toBe(bt(0).assigneeId);
  });
});
