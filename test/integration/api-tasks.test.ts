/**
 * TaskService over gRPC and Connect: create (defaults, every field, validation), get with
 * views, list with every filter, the three orders and keyset paging (also while rows are
 * inserted), update with update_mask, status transitions and expected_version, delete with
 * subtasks, assign, parent rules, idempotent create, and relations loaded in batch (the
 * statement count of a page does not grow with its size).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import type { ApiClient, Json } from '../helpers/clients.js';
import { expectRpcError, foreignWorkerId, iso, listAll } from '../helpers/expect-rpc.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const ids = (tasks: Json[] | undefined): string[] => (tasks ?? []).map((task) => task.id);
const byId = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

/** How to reach each status from pending with allowed steps. */
const PATH_TO: Record<string, string[]> = {
  PENDING: [],
  IN_PROGRESS: ['IN_PROGRESS'],
  REVIEW: ['IN_PROGRESS', 'REVIEW'],
  COMPLETED: ['COMPLETED'],
  BLOCKED: ['BLOCKED'],
};
const ALLOWED: Record<string, string[]> = {
  PENDING: ['IN_PROGRESS', 'BLOCKED', 'COMPLETED'],
  IN_PROGRESS: ['REVIEW', 'COMPLETED', 'BLOCKED', 'PENDING'],
  REVIEW: ['IN_PROGRESS', 'COMPLETED'],
  BLOCKED: ['PENDING', 'IN_PROGRESS'],
  COMPLETED: ['REVIEW'],
};
const STATUSES = Object.keys(PATH_TO);

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    /** The main tenant: its key has no worker, so created_by_id is explicit. */
    let api: ApiClient;
    /** A tenant whose key is bound to a worker. */
    let keyed: TestTenant;
    let keyedApi: ApiClient;
    let other: ApiClient;
    let otherWorkerId: string;
    let owner: Json;
    let w1: Json;
    let w2: Json;
    let project: Json;
    let otherProject: Json;

    const createTask = async (fields: Json, client = api): Promise<Json> =>
      (await client.call('TaskService', 'CreateTask', { projectId: project.id, createdById: owner.id, ...fields })).task;
    const getTask = async (id: string, view?: string): Promise<Json> => (await api.call('TaskService', 'GetTask', { id, view })).task;
    const update = async (task: Json, updateMask: string, expectedVersion?: string): Promise<Json> =>
      (await api.call('TaskService', 'UpdateTask', { task, updateMask, expectedVersion })).task;
    const setStatus = (id: string, status: string) => update({ id, status: `TASK_STATUS_${status}` }, 'status');
    const list = async (req: Json): Promise<string[]> => ids((await api.call('TaskService', 'ListTasks', { pageSize: 500, ...req })).tasks);
    const countTasks = async (projectId: string) => (await listAll(api, 'TaskService', 'ListTasks', 'tasks', { projectId, pageSize: 500 })).items.length;

    beforeAll(async () => {
      api = t.client(protocol, (await t.tenant()).headers);
      keyed = await t.tenant({ withWorker: true });
      keyedApi = t.client(protocol, keyed.headers);
      other = t.client(protocol, (await t.tenant()).headers);
      owner = (await api.call('WorkerService', 'CreateWorker', { handle: '@owner' })).worker;
      w1 = (await api.call('WorkerService', 'CreateWorker', { handle: '@w1', email: 'w1@example.com' })).worker;
      w2 = (await api.call('WorkerService', 'CreateWorker', { handle: '@w2', type: 'WORKER_TYPE_AGENT', capabilities: ['code'] })).worker;
      otherWorkerId = await foreignWorkerId(api, other);
      project = (await api.call('ProjectService', 'CreateProject', { name: 'Main' })).project;
      otherProject = (await api.call('ProjectService', 'CreateProject', { name: 'Other' })).project;
    });

    describe('CreateTask', () => {
      it('creates a task with every field, with assignee and created_by loaded', async () => {
        const parent = await createTask({ title: 'parent' });
        const due = '2031-05-06T07:08:09.123Z';
        const task = await createTask({
          title: 'Write the report',
          description: 'all of it',
          priority: 'TASK_PRIORITY_HIGH',
          tags: ['docs', 'q3', 'docs'],
          assigneeId: w1.id,
          parentTaskId: parent.id,
          dueDate: due,
        });
        expect(task).toMatchObject({
          title: 'Write the report',
          description: 'all of it',
          status: 'TASK_STATUS_PENDING',
          priority: 'TASK_PRIORITY_HIGH',
          tags: ['docs', 'q3'],
          projectId: project.id,
          assigneeId: w1.id,
          createdById: owner.id,
          parentTaskId: parent.id,
          version: '1',
          assignee: { id: w1.id, handle: '@w1', type: 'WORKER_TYPE_HUMAN', email: 'w1@example.com' },
          createdBy: { id: owner.id, handle: '@owner' },
        });
        expect(iso(task.dueDate)).toBe(due);
        expect(iso(task.updatedAt)).toBe(iso(task.createdAt));
        expect(task.project).toBeUndefined();
        expect(task.parent).toBeUndefined();
        expect(task.leaseExpiresAt).toBeUndefined();
        const read = await getTask(task.id);
        expect(read).toMatchObject({ title: 'Write the report', tags: ['docs', 'q3'], assigneeId: w1.id, parentTaskId: parent.id, priority: 'TASK_PRIORITY_HIGH' });
        expect(iso(read.dueDate)).toBe(due);
      });

      it('applies the defaults: pending, medium, no tags, unassigned, top level', async () => {
        const task = await createTask({ title: 'Bare' });
        expect(task).toMatchObject({ status: 'TASK_STATUS_PENDING', priority: 'TASK_PRIORITY_MEDIUM', version: '1', createdById: owner.id });
        for (const absent of ['description', 'tags', 'assigneeId', 'assignee', 'parentTaskId', 'dueDate', 'subtasks']) {
          expect(task[absent], absent).toBeUndefined();
        }
        expect(task.createdBy.handle).toBe('@owner');
      });

      it('records the worker of the API key as creator', async () => {
        const p = (await keyedApi.call('ProjectService', 'CreateProject', { name: 'Keyed' })).project;
        const task = (await keyedApi.call('TaskService', 'CreateTask', { projectId: p.id, title: 'mine' })).task;
        expect(task).toMatchObject({ createdById: keyed.workerId, createdBy: { id: keyed.workerId, handle: '@owner' } });
        const explicit = (await keyedApi.call('TaskService', 'CreateTask', { projectId: p.id, title: 'mine too', createdById: keyed.workerId })).task;
        expect(explicit.createdById).toBe(keyed.workerId);
        await expectRpcError(
          keyedApi.call('TaskService', 'CreateTask', { projectId: p.id, title: 'not mine', createdById: String(BigInt(keyed.workerId!) + 1000n) }),
          'PERMISSION_DENIED',
          'created_by_id',
        );
      });

      it('needs created_by_id when the key has no worker', async () => {
        await expectRpcError(api.call('TaskService', 'CreateTask', { projectId: project.id, title: 'anonymous' }), 'INVALID_ARGUMENT', 'created_by_id');
      });

      it('refuses references that do not exist with FAILED_PRECONDITION', async () => {
        const before = await countTasks(project.id);
        await expectRpcError(createTask({ title: 'x', projectId: '987654321' }), 'FAILED_PRECONDITION', 'project_id');
        await expectRpcError(createTask({ title: 'x', createdById: '987654321' }), 'FAILED_PRECONDITION', 'created_by_id');
        await expectRpcError(createTask({ title: 'x', assigneeId: '987654321' }), 'FAILED_PRECONDITION', 'assignee_id');
        await expectRpcError(createTask({ title: 'x', assigneeId: otherWorkerId }), 'FAILED_PRECONDITION', 'assignee_id');
        await expectRpcError(createTask({ title: 'x', parentTaskId: '987654321' }), 'FAILED_PRECONDITION', 'parent_task_id');
        expect(await countTasks(project.id)).toBe(before);
      });

      it('refuses a parent in another project with FAILED_PRECONDITION', async () => {
        const foreignParent = await createTask({ title: 'elsewhere', projectId: otherProject.id });
        await expectRpcError(createTask({ title: 'child', parentTaskId: foreignParent.id }), 'FAILED_PRECONDITION', 'parent_task_id');
      });

      describe('validation', () => {
        it('title: empty, blank or over 500 characters is INVALID_ARGUMENT naming title', async () => {
          await expectRpcError(createTask({ title: '' }), 'INVALID_ARGUMENT', 'title');
          await expectRpcError(createTask({ title: '  ' }), 'INVALID_ARGUMENT', 'title');
          await expectRpcError(createTask({ title: 'x'.repeat(501) }), 'INVALID_ARGUMENT', 'title');
          expect((await createTask({ title: 'x'.repeat(500) })).title).toHaveLength(500);
          // Characters, not bytes or UTF-16 units.
          expect([...(await createTask({ title: '😀'.repeat(500) })).title]).toHaveLength(500);
          await expectRpcError(createTask({ title: '😀'.repeat(501) }), 'INVALID_ARGUMENT', 'title');
        });

        it('tags: 51 tags, or a tag of 65 characters, is INVALID_ARGUMENT naming tags', async () => {
          const fifty = Array.from({ length: 50 }, (_, i) => `tag${i}`);
          expect((await createTask({ title: 'fifty tags', tags: fifty })).tags).toEqual(fifty);
          await expectRpcError(createTask({ title: 't', tags: [...fifty, 'tag50'] }), 'INVALID_ARGUMENT', 'tags');
          expect((await createTask({ title: 'long tag', tags: ['t'.repeat(64)] })).tags).toEqual(['t'.repeat(64)]);
          await expectRpcError(createTask({ title: 't', tags: ['t'.repeat(65)] }), 'INVALID_ARGUMENT', 'tags');
          await expectRpcError(createTask({ title: 't', tags: [''] }), 'INVALID_ARGUMENT', 'tags');
        });

        it('description: over 64 KiB (in bytes) is INVALID_ARGUMENT naming description', async () => {
          expect((await createTask({ title: 'big', description: 'd'.repeat(64 * 1024) })).description).toHaveLength(64 * 1024);
          await expectRpcError(createTask({ title: 't', description: 'd'.repeat(64 * 1024 + 1) }), 'INVALID_ARGUMENT', 'description');
          // 32 769 two-byte characters: under the limit in characters, over it in bytes.
          await expectRpcError(createTask({ title: 't', description: 'é'.repeat(32 * 1024 + 1) }), 'INVALID_ARGUMENT', 'description');
        });

        it('a request over 4 MiB is RESOURCE_EXHAUSTED', async () => {
          const before = await countTasks(project.id);
          await expectRpcError(createTask({ title: 'huge', description: 'x'.repeat(5 * 1024 * 1024) }), 'RESOURCE_EXHAUSTED');
          expect(await countTasks(project.id)).toBe(before);
          // The server is fine afterwards.
          expect((await createTask({ title: 'after the big one' })).title).toBe('after the big one');
        });

        it('refuses a missing project_id with INVALID_ARGUMENT', async () => {
          await expectRpcError(api.call('TaskService', 'CreateTask', { title: 'nowhere', createdById: owner.id }), 'INVALID_ARGUMENT', 'project_id');
        });
      });
    });

    describe('GetTask', () => {
      let root: Json;
      let child1: Json;
      let child2: Json;
      let grandchild: Json;

      beforeAll(async () => {
        root = await createTask({ title: 'root', assigneeId: w2.id });
        child1 = await createTask({ title: 'child 1', parentTaskId: root.id });
        child2 = await createTask({ title: 'child 2', parentTaskId: root.id, assigneeId: w1.id });
        grandchild = await createTask({ title: 'grandchild', parentTaskId: child1.id });
      });

      it('the basic view has assignee and created_by, and no project, parent or subtasks', async () => {
        for (const view of [undefined, 'TASK_VIEW_BASIC']) {
          const task = await getTask(child2.id, view);
          expect(task).toMatchObject({ id: child2.id, assignee: { handle: '@w1' }, createdBy: { handle: '@owner' }, parentTaskId: root.id });
          expect(task.project).toBeUndefined();
          expect(task.parent).toBeUndefined();
          expect(task.subtasks).toBeUndefined();
        }
      });

      it('the full view adds project, parent and one level of subtasks', async () => {
        const task = await getTask(child1.id, 'TASK_VIEW_FULL');
        expect(task.project).toMatchObject({ id: project.id, name: 'Main', status: 'PROJECT_STATUS_ACTIVE' });
        expect(task.parent).toMatchObject({ id: root.id, title: 'root', assigneeId: w2.id });
        expect(ids(task.subtasks)).toEqual([grandchild.id]);
        expect(task.createdBy.handle).toBe('@owner');

        const top = await getTask(root.id, 'TASK_VIEW_FULL');
        expect(top.parent).toBeUndefined();
        expect(top.assignee).toMatchObject({ id: w2.id, type: 'WORKER_TYPE_AGENT', capabilities: ['code'] });
        expect(ids(top.subtasks)).toEqual([child1.id, child2.id]);
        expect(top.subtasks[0].title).toBe('child 1');
        // One level only.
        expect(top.subtasks[0].subtasks).toBeUndefined();

        const leaf = await getTask(grandchild.id, 'TASK_VIEW_FULL');
        expect(leaf.subtasks).toBeUndefined();
        expect(leaf.parent.id).toBe(child1.id);
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        await expectRpcError(api.call('TaskService', 'GetTask', { id: '987654321' }), 'NOT_FOUND', 'task');
        await expectRpcError(other.call('TaskService', 'GetTask', { id: root.id }), 'NOT_FOUND');
      });
    });

    describe('ListTasks', () => {
      let fp: Json;
      let t1: Json, t2: Json, t3: Json, t4: Json, t5: Json, t6: Json;

      beforeAll(async () => {
        fp = (await api.call('ProjectService', 'CreateProject', { name: 'Filters' })).project;
        const mk = (fields: Json) => createTask({ projectId: fp.id, ...fields });
        t1 = await mk({ title: 't1', priority: 'TASK_PRIORITY_LOW', tags: ['x'], dueDate: '2030-01-01T00:00:00Z', assigneeId: w1.id });
        t2 = await mk({ title: 't2', priority: 'TASK_PRIORITY_HIGH', tags: ['x', 'y'], dueDate: '2030-03-01T00:00:00Z', assigneeId: w2.id });
        t3 = await mk({ title: 't3', priority: 'TASK_PRIORITY_CRITICAL', tags: ['y'], createdById: w1.id });
        t4 = await mk({ title: 't4', dueDate: '2030-02-01T00:00:00Z', parentTaskId: t1.id });
        t5 = await mk({ title: 't5', priority: 'TASK_PRIORITY_HIGH', tags: ['x', 'y', 'z'], parentTaskId: t1.id, createdById: w1.id, assigneeId: w1.id });
        t6 = await mk({ title: 't6', dueDate: '2030-01-15T00:00:00Z' });
        await setStatus(t2.id, 'IN_PROGRESS');
        await setStatus(t4.id, 'BLOCKED');
        await setStatus(t6.id, 'COMPLETED');
      });

      it('lists the tasks of a project, oldest first, and only those', async () => {
        expect(await list({ projectId: fp.id })).toEqual(ids([t1, t2, t3, t4, t5, t6]));
        const res = await api.call('TaskService', 'ListTasks', { projectId: fp.id });
        expect(res.tasks[0]).toMatchObject({ title: 't1', assignee: { handle: '@w1' }, createdBy: { handle: '@owner' } });
        expect(res.nextPageToken).toBeUndefined();
        expect(await list({ projectId: otherProject.id })).not.toContain(t1.id);
      });

      it('filters by statuses', async () => {
        expect(await list({ projectId: fp.id, statuses: ['TASK_STATUS_PENDING'] })).toEqual(ids([t1, t3, t5]));
        expect(await list({ projectId: fp.id, statuses: ['TASK_STATUS_IN_PROGRESS', 'TASK_STATUS_BLOCKED'] })).toEqual(ids([t2, t4]));
        expect(await list({ projectId: fp.id, statuses: ['TASK_STATUS_REVIEW'] })).toEqual([]);
      });

      it('filters by assignee_id, created_by_id and parent_task_id', async () => {
        expect(await list({ projectId: fp.id, assigneeId: w1.id })).toEqual(ids([t1, t5]));
        expect(await list({ projectId: fp.id, assigneeId: w2.id })).toEqual(ids([t2]));
        expect(await list({ projectId: fp.id, createdById: w1.id })).toEqual(ids([t3, t5]));
        // Without a project: the whole tenant (w1 created tasks only here).
        expect(await list({ createdById: w1.id })).toEqual(ids([t3, t5]));
        expect(await list({ projectId: fp.id, parentTaskId: t1.id })).toEqual(ids([t4, t5]));
        expect(await list({ parentTaskId: t1.id })).toEqual(ids([t4, t5]));
      });

      it('filters by tags_all: tasks carrying every tag', async () => {
        expect(await list({ projectId: fp.id, tagsAll: ['x'] })).toEqual(ids([t1, t2, t5]));
        expect(await list({ projectId: fp.id, tagsAll: ['x', 'y'] })).toEqual(ids([t2, t5]));
        expect(await list({ projectId: fp.id, tagsAll: ['z', 'x', 'y'] })).toEqual(ids([t5]));
        expect(await list({ projectId: fp.id, tagsAll: ['nope'] })).toEqual([]);
        expect(await list({ projectId: fp.id, tagsAll: ['x', 'nope'] })).toEqual([]);
      });

      it('filters by priority', async () => {
        expect(await list({ projectId: fp.id, priority: 'TASK_PRIORITY_HIGH' })).toEqual(ids([t2, t5]));
        expect(await list({ projectId: fp.id, priority: 'TASK_PRIORITY_MEDIUM' })).toEqual(ids([t4, t6]));
        expect(await list({ projectId: fp.id, priority: 'TASK_PRIORITY_CRITICAL' })).toEqual(ids([t3]));
      });

      it('filters by due_before and due_after (exclusive; tasks without a due date never match)', async () => {
        expect(await list({ projectId: fp.id, dueBefore: '2030-02-01T00:00:00Z' })).toEqual(ids([t1, t6]));
        expect(await list({ projectId: fp.id, dueAfter: '2030-01-15T00:00:00Z' })).toEqual(ids([t2, t4]));
        expect(await list({ projectId: fp.id, dueAfter: '2030-01-01T00:00:00Z', dueBefore: '2030-03-01T00:00:00Z' })).toEqual(ids([t4, t6]));
      });

      it('combines filters', async () => {
        expect(await list({ projectId: fp.id, statuses: ['TASK_STATUS_PENDING'], tagsAll: ['x'] })).toEqual(ids([t1, t5]));
        expect(await list({ projectId: fp.id, assigneeId: w1.id, priority: 'TASK_PRIORITY_HIGH', parentTaskId: t1.id })).toEqual(ids([t5]));
        expect(await list({ projectId: fp.id, createdById: w1.id, statuses: ['TASK_STATUS_COMPLETED'] })).toEqual([]);
      });

      const ORDERS: [string, () => Json[]][] = [
        ['TASK_ORDER_BY_UNSPECIFIED', () => [t1, t2, t3, t4, t5, t6]],
        ['TASK_ORDER_BY_CREATED_AT', () => [t1, t2, t3, t4, t5, t6]],
        // Earliest due date first, tasks without one last (by id).
        ['TASK_ORDER_BY_DUE_DATE', () => [t1, t6, t4, t2, t3, t5]],
        // Critical first; equal priorities by id.
        ['TASK_ORDER_BY_PRIORITY', () => [t3, t2, t5, t4, t6, t1]],
      ];
      for (const [orderBy, expected] of ORDERS) {
        it(`orders by ${orderBy}, the same in one page and in pages of 1 and 2`, async () => {
          const want = ids(expected());
          expect(await list({ projectId: fp.id, orderBy })).toEqual(want);
          for (const pageSize of [1, 2]) {
            const { items, pages } = await listAll(api, 'TaskService', 'ListTasks', 'tasks', { projectId: fp.id, orderBy, pageSize });
            expect(ids(items)).toEqual(want);
            expect(pages).toBe(Math.ceil(want.length / pageSize));
          }
        });
      }

      it('pages through many tasks with no repeats and no gaps', async () => {
        const titles = Array.from({ length: 25 }, (_, i) => `bulk ${i}`);
        const { project: bulk, tasks } = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Bulk', taskTitles: titles, createdById: owner.id });
        const first = await api.call('TaskService', 'ListTasks', { projectId: bulk.id, pageSize: 7 });
        expect(first.tasks).toHaveLength(7);
        expect(first.nextPageToken).toBeTruthy();
        const { items, pages } = await listAll(api, 'TaskService', 'ListTasks', 'tasks', { projectId: bulk.id, pageSize: 7 });
        expect(pages).toBe(4);
        expect(ids(items)).toEqual(ids(tasks));
        expect(new Set(ids(items)).size).toBe(25);
        // A page size that divides the count: the last full page has no token after it... or an empty one.
        const exact = await listAll(api, 'TaskService', 'ListTasks', 'tasks', { projectId: bulk.id, pageSize: 5 });
        expect(ids(exact.items)).toEqual(ids(tasks));
      });

      describe('paging while rows are inserted', () => {
        const PRIORITIES = ['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'];
        const DUES = ['2030-01-05T00:00:00Z', undefined, '2030-01-02T00:00:00Z', '2030-01-09T00:00:00Z', undefined];

        /** Pages through a project of 12 tasks in pages of 3, inserting 3 tasks after each of the first 4 pages. */
        async function pageWhileInserting(orderBy: string) {
          const p = (await api.call('ProjectService', 'CreateProject', { name: `Moving ${orderBy}` })).project;
          const original: string[] = [];
          for (let i = 0; i < 12; i++) {
            const task = await createTask({
              projectId: p.id,
              title: `orig ${i}`,
              priority: `TASK_PRIORITY_${PRIORITIES[i % 4]}`,
              dueDate: DUES[i % 5],
            });
            original.push(task.id);
          }
          const seen: string[] = [];
          let pageToken = '';
          let round = 0;
          do {
            const res = await api.call('TaskService', 'ListTasks', { projectId: p.id, orderBy, pageSize: 3, pageToken });
            seen.push(...ids(res.tasks));
            pageToken = res.nextPageToken ?? '';
            round++;
            if (round > 4) continue;
            // New rows that sort before, among and after what was read so far.
            await createTask({ projectId: p.id, title: `new ${round} a`, priority: 'TASK_PRIORITY_CRITICAL', dueDate: '2029-12-31T00:00:00Z' });
            await createTask({ projectId: p.id, title: `new ${round} b`, priority: 'TASK_PRIORITY_MEDIUM', dueDate: '2030-01-05T00:00:00Z' });
            await createTask({ projectId: p.id, title: `new ${round} c`, priority: 'TASK_PRIORITY_LOW' });
          } while (pageToken && round < 20);
          expect(round).toBeLessThan(20);
          expect(new Set(seen).size, 'a row came twice').toBe(seen.length);
          for (const id of original) expect(seen, `row ${id} that existed at the start was skipped`).toContain(id);
          return { seen, original };
        }

        it('by creation: every original row once, new rows after them', async () => {
          const { seen, original } = await pageWhileInserting('TASK_ORDER_BY_CREATED_AT');
          expect(seen.slice(0, 12)).toEqual(original);
          expect([...seen].sort(byId)).toEqual(seen);
        });

        it('by due date: every original row once', async () => {
          await pageWhileInserting('TASK_ORDER_BY_DUE_DATE');
        });

        it('by priority: every original row once', async () => {
          await pageWhileInserting('TASK_ORDER_BY_PRIORITY');
        });
      });

      it('refuses a tampered page_token, garbage, and a token of other filters or order', async () => {
        const { nextPageToken: token } = await api.call('TaskService', 'ListTasks', { projectId: fp.id, pageSize: 2 });
        expect(token).toBeTruthy();
        const dot = token.indexOf('.');
        const tampered = `${token.slice(0, dot - 3)}${token[dot - 3] === 'A' ? 'B' : 'A'}${token.slice(dot - 2)}`;
        await expectRpcError(api.call('TaskService', 'ListTasks', { projectId: fp.id, pageSize: 2, pageToken: tampered }), 'INVALID_ARGUMENT', 'page_token');
        const badSum = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
        await expectRpcError(api.call('TaskService', 'ListTasks', { projectId: fp.id, pageSize: 2, pageToken: badSum }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(api.call('TaskService', 'ListTasks', { projectId: fp.id, pageSize: 2, pageToken: 'not-a-token' }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(
          api.call('TaskService', 'ListTasks', { projectId: fp.id, statuses: ['TASK_STATUS_PENDING'], pageSize: 2, pageToken: token }),
          'INVALID_ARGUMENT',
          'page_token',
        );
        await expectRpcError(
          api.call('TaskService', 'ListTasks', { projectId: fp.id, orderBy: 'TASK_ORDER_BY_PRIORITY', pageSize: 2, pageToken: token }),
          'INVALID_ARGUMENT',
          'page_token',
        );
        // The untampered token still works.
        expect(await list({ projectId: fp.id, pageSize: 2, pageToken: token })).toEqual(ids([t3, t4]));
      });

      it('refuses page_size over 500', async () => {
        await expectRpcError(api.call('TaskService', 'ListTasks', { projectId: fp.id, pageSize: 501 }), 'INVALID_ARGUMENT', 'page_size');
      });

      it('shows nothing of another tenant', async () => {
        expect((await other.call('TaskService', 'ListTasks', { projectId: fp.id })).tasks).toBeUndefined();
        expect((await other.call('TaskService', 'ListTasks', { createdById: w1.id })).tasks).toBeUndefined();
      });
    });

    describe('UpdateTask', () => {
      it('writes only the fields of update_mask, bumps version and updated_at', async () => {
        const task = await createTask({ title: 'old title', description: 'keep', priority: 'TASK_PRIORITY_LOW', tags: ['a'] });
        await new Promise((r) => setTimeout(r, 5));
        const updated = await update({ id: task.id, title: 'new title', description: 'not in mask', priority: 'TASK_PRIORITY_HIGH' }, 'title');
        expect(updated).toMatchObject({ title: 'new title', description: 'keep', priority: 'TASK_PRIORITY_LOW', tags: ['a'], version: '2' });
        expect(Date.parse(updated.updatedAt)).toBeGreaterThan(Date.parse(task.updatedAt));
        expect(iso(updated.createdAt)).toBe(iso(task.createdAt));
        expect(updated.createdBy.handle).toBe('@owner');
        const both = await update({ id: task.id, priority: 'TASK_PRIORITY_CRITICAL', description: '' }, 'priority,description');
        expect(both).toMatchObject({ title: 'new title', priority: 'TASK_PRIORITY_CRITICAL', version: '3' });
        expect(both.description).toBeUndefined();
        expect(await getTask(task.id)).toMatchObject({ title: 'new title', priority: 'TASK_PRIORITY_CRITICAL', version: '3' });
      });

      it('takes mask paths in the form of the protocol (snake_case in binary, lowerCamelCase in JSON)', async () => {
        const task = await createTask({ title: 'snake', dueDate: '2030-06-01T00:00:00Z' });
        if (protocol === 'grpc') {
          const updated = await update({ id: task.id, dueDate: '2030-07-01T00:00:00Z', title: 'ignored' }, 'due_date');
          expect(iso(updated.dueDate)).toBe('2030-07-01T00:00:00.000Z');
          expect(updated.title).toBe('snake');
        } else {
          // Proto JSON spells FieldMask paths in lowerCamelCase; snake_case there is malformed.
          await expectRpcError(update({ id: task.id, dueDate: '2030-07-01T00:00:00Z' }, 'due_date'), 'INVALID_ARGUMENT');
          expect(iso((await getTask(task.id)).dueDate)).toBe('2030-06-01T00:00:00.000Z');
        }
      });

      it('replaces and clears tags', async () => {
        const task = await createTask({ title: 'tagged', tags: ['a', 'b'] });
        expect((await update({ id: task.id, tags: ['c', 'd', 'c'] }, 'tags')).tags).toEqual(['c', 'd']);
        const cleared = await update({ id: task.id }, 'tags');
        expect(cleared.tags).toBeUndefined();
        expect(cleared.version).toBe('3');
        expect(await list({ projectId: project.id, tagsAll: ['c'] })).not.toContain(task.id);
      });

      it('sets and clears the due date', async () => {
        const task = await createTask({ title: 'due' });
        expect(iso((await update({ id: task.id, dueDate: '2032-02-02T02:02:02Z' }, 'dueDate')).dueDate)).toBe('2032-02-02T02:02:02.000Z');
        const cleared = await update({ id: task.id }, 'dueDate');
        expect(cleared.dueDate).toBeUndefined();
        expect((await getTask(task.id)).dueDate).toBeUndefined();
      });

      it('sets and clears assignee_id and parent_task_id through the mask', async () => {
        const parent = await createTask({ title: 'a parent' });
        const task = await createTask({ title: 'movable' });
        const moved = await update({ id: task.id, assigneeId: w2.id, parentTaskId: parent.id }, 'assigneeId,parentTaskId');
        expect(moved).toMatchObject({ assigneeId: w2.id, parentTaskId: parent.id, assignee: { handle: '@w2' } });
        const back = await update({ id: task.id }, 'assigneeId,parentTaskId');
        expect(back.assigneeId).toBeUndefined();
        expect(back.parentTaskId).toBeUndefined();
        expect(back.assignee).toBeUndefined();
      });

      for (const from of STATUSES) {
        it(`status from ${from}: allowed transitions succeed, others are FAILED_PRECONDITION`, async () => {
          for (const to of STATUSES.filter((s) => s !== from)) {
            const task = await createTask({ title: `${from} → ${to}` });
            for (const step of PATH_TO[from]!) await setStatus(task.id, step);
            const before = await getTask(task.id);
            expect(before.status).toBe(`TASK_STATUS_${from}`);
            if (ALLOWED[from]!.includes(to)) {
              const after = await setStatus(task.id, to);
              expect(after.status).toBe(`TASK_STATUS_${to}`);
              expect(after.version).toBe(String(BigInt(before.version) + 1n));
            } else {
              await expectRpcError(setStatus(task.id, to), 'FAILED_PRECONDITION', 'status');
              const after = await getTask(task.id);
              expect(after.status).toBe(`TASK_STATUS_${from}`);
              expect(after.version).toBe(before.version);
            }
          }
        });
      }

      it('setting the status a task already has is not a transition', async () => {
        const task = await createTask({ title: 'same status' });
        expect((await setStatus(task.id, 'PENDING')).status).toBe('TASK_STATUS_PENDING');
      });

      it('with a wrong expected_version: ABORTED, nothing written, version unchanged', async () => {
        const task = await createTask({ title: 'versioned' });
        await expectRpcError(
          api.call('TaskService', 'UpdateTask', { task: { id: task.id, title: 'lost' }, updateMask: 'title', expectedVersion: '5' }),
          'ABORTED',
          'version',
        );
        const read = await getTask(task.id);
        expect(read).toMatchObject({ title: 'versioned', version: '1' });
        expect(iso(read.updatedAt)).toBe(iso(task.updatedAt));
        const ok = await update({ id: task.id, title: 'won' }, 'title', '1');
        expect(ok).toMatchObject({ title: 'won', version: '2' });
        await expectRpcError(update({ id: task.id, title: 'stale' }, 'title', '1'), 'ABORTED');
        expect(await getTask(task.id)).toMatchObject({ title: 'won', version: '2' });
      });

      it('validates the written fields and the mask', async () => {
        const task = await createTask({ title: 'valid' });
        await expectRpcError(update({ id: task.id, title: '' }, 'title'), 'INVALID_ARGUMENT', 'title');
        await expectRpcError(update({ id: task.id, title: 'y'.repeat(501) }, 'title'), 'INVALID_ARGUMENT', 'title');
        await expectRpcError(update({ id: task.id, tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }, 'tags'), 'INVALID_ARGUMENT', 'tags');
        await expectRpcError(update({ id: task.id, version: '7' }, 'version'), 'INVALID_ARGUMENT', 'update_mask');
        await expectRpcError(update({ id: task.id, projectId: otherProject.id }, 'projectId'), 'INVALID_ARGUMENT', 'update_mask');
        await expectRpcError(update({ id: task.id }, 'status'), 'INVALID_ARGUMENT', 'status');
        expect(await getTask(task.id)).toMatchObject({ title: 'valid', version: '1', projectId: project.id });
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        const task = await createTask({ title: 'not yours' });
        await expectRpcError(update({ id: '987654321', title: 'x' }, 'title'), 'NOT_FOUND');
        await expectRpcError(other.call('TaskService', 'UpdateTask', { task: { id: task.id, title: 'x' }, updateMask: 'title' }), 'NOT_FOUND');
        expect((await getTask(task.id)).title).toBe('not yours');
      });
    });

    describe('parents', () => {
      it('refuses a parent in another project (FAILED_PRECONDITION)', async () => {
        const task = await createTask({ title: 'here' });
        const foreign = await createTask({ title: 'there', projectId: otherProject.id });
        await expectRpcError(update({ id: task.id, parentTaskId: foreign.id }, 'parentTaskId'), 'FAILED_PRECONDITION', 'parent_task_id');
        expect((await getTask(task.id)).parentTaskId).toBeUndefined();
      });

      it('refuses to make a task its own parent or the child of one of its descendants', async () => {
        const a = await createTask({ title: 'a' });
        const b = await createTask({ title: 'b', parentTaskId: a.id });
        const c = await createTask({ title: 'c', parentTaskId: b.id });
        await expectRpcError(update({ id: a.id, parentTaskId: a.id }, 'parentTaskId'), 'FAILED_PRECONDITION', 'parent_task_id');
        await expectRpcError(update({ id: a.id, parentTaskId: b.id }, 'parentTaskId'), 'FAILED_PRECONDITION', 'parent_task_id');
        await expectRpcError(update({ id: a.id, parentTaskId: c.id }, 'parentTaskId'), 'FAILED_PRECONDITION', 'parent_task_id');
        expect((await getTask(a.id)).parentTaskId).toBeUndefined();
        expect((await getTask(a.id)).version).toBe('1');
        // Moving down the tree the other way is fine.
        expect((await update({ id: c.id, parentTaskId: a.id }, 'parentTaskId')).parentTaskId).toBe(a.id);
      });
    });

    describe('DeleteTask', () => {
      it('deletes the task and all its subtasks, and nothing else', async () => {
        const root = await createTask({ title: 'doomed root' });
        const child = await createTask({ title: 'doomed child', parentTaskId: root.id });
        const grandchild = await createTask({ title: 'doomed grandchild', parentTaskId: child.id });
        const sibling = await createTask({ title: 'survivor' });
        const before = await countTasks(project.id);
        await api.call('TaskService', 'DeleteTask', { id: root.id });
        for (const gone of [root, child, grandchild]) await expectRpcError(api.call('TaskService', 'GetTask', { id: gone.id }), 'NOT_FOUND');
        expect((await getTask(sibling.id)).title).toBe('survivor');
        expect(await countTasks(project.id)).toBe(before - 3);
      });

      it('deleting a subtask leaves its parent', async () => {
        const parent = await createTask({ title: 'stays' });
        const child = await createTask({ title: 'goes', parentTaskId: parent.id });
        await api.call('TaskService', 'DeleteTask', { id: child.id });
        expect((await getTask(parent.id, 'TASK_VIEW_FULL')).subtasks).toBeUndefined();
      });

      it('with a wrong expected_version: ABORTED and the task stays', async () => {
        const task = await createTask({ title: 'guarded' });
        await expectRpcError(api.call('TaskService', 'DeleteTask', { id: task.id, expectedVersion: '2' }), 'ABORTED');
        expect((await getTask(task.id)).title).toBe('guarded');
        await api.call('TaskService', 'DeleteTask', { id: task.id, expectedVersion: '1' });
        await expectRpcError(api.call('TaskService', 'GetTask', { id: task.id }), 'NOT_FOUND');
      });

      it('answers NOT_FOUND for a missing task and a task of another tenant', async () => {
        const task = await createTask({ title: 'mine' });
        await expectRpcError(api.call('TaskService', 'DeleteTask', { id: '987654321' }), 'NOT_FOUND');
        await expectRpcError(other.call('TaskService', 'DeleteTask', { id: task.id }), 'NOT_FOUND');
        expect((await getTask(task.id)).title).toBe('mine');
      });
    });

    describe('AssignTask', () => {
      it('sets the assignee, and without worker_id clears it', async () => {
        const task = await createTask({ title: 'to assign' });
        const assigned = (await api.call('TaskService', 'AssignTask', { id: task.id, workerId: w2.id })).task;
        expect(assigned).toMatchObject({ assigneeId: w2.id, assignee: { id: w2.id, handle: '@w2' }, version: '2' });
        expect((await getTask(task.id)).assigneeId).toBe(w2.id);
        expect(await list({ projectId: project.id, assigneeId: w2.id })).toContain(task.id);

        const reassigned = (await api.call('TaskService', 'AssignTask', { id: task.id, workerId: w1.id, expectedVersion: '2' })).task;
        expect(reassigned).toMatchObject({ assigneeId: w1.id, assignee: { handle: '@w1' }, version: '3' });

        const cleared = (await api.call('TaskService', 'AssignTask', { id: task.id })).task;
        expect(cleared.assigneeId).toBeUndefined();
        expect(cleared.assignee).toBeUndefined();
        expect(cleared.version).toBe('4');
        expect((await getTask(task.id)).assigneeId).toBeUndefined();
      });

      it('refuses a worker of another tenant or a missing worker (FAILED_PRECONDITION) and writes nothing', async () => {
        const task = await createTask({ title: 'picky', assigneeId: w1.id });
        await expectRpcError(api.call('TaskService', 'AssignTask', { id: task.id, workerId: otherWorkerId }), 'FAILED_PRECONDITION', 'worker');
        await expectRpcError(api.call('TaskService', 'AssignTask', { id: task.id, workerId: '987654321' }), 'FAILED_PRECONDITION');
        expect(await getTask(task.id)).toMatchObject({ assigneeId: w1.id, version: '1' });
      });

      it('answers ABORTED for a wrong expected_version and NOT_FOUND for a missing task', async () => {
        const task = await createTask({ title: 'assign versioned' });
        await expectRpcError(api.call('TaskService', 'AssignTask', { id: task.id, workerId: w1.id, expectedVersion: '3' }), 'ABORTED');
        expect((await getTask(task.id)).assigneeId).toBeUndefined();
        await expectRpcError(api.call('TaskService', 'AssignTask', { id: '987654321', workerId: w1.id }), 'NOT_FOUND');
      });
    });

    describe('idempotent CreateTask (request_id)', () => {
      it('a retry returns the first response (same id, same created_at) and writes nothing', async () => {
        const req = { title: 'exactly once', tags: ['i'], dueDate: '2030-01-01T00:00:00Z', requestId: `t-${protocol}-1` };
        const first = await createTask(req);
        const count = await countTasks(project.id);
        await new Promise((r) => setTimeout(r, 5));
        const retry = await createTask(req);
        expect(retry).toEqual(first);
        expect(retry.id).toBe(first.id);
        expect(iso(retry.createdAt)).toBe(iso(first.createdAt));
        expect(await countTasks(project.id)).toBe(count);
      });

      it('the same request_id with a different request is INVALID_ARGUMENT and writes nothing', async () => {
        const count = await countTasks(project.id);
        await expectRpcError(createTask({ title: 'exactly twice', tags: ['i'], dueDate: '2030-01-01T00:00:00Z', requestId: `t-${protocol}-1` }), 'INVALID_ARGUMENT', 'request_id');
        await expectRpcError(createTask({ title: 'exactly once', tags: ['i'], requestId: `t-${protocol}-1` }), 'INVALID_ARGUMENT', 'request_id');
        expect(await countTasks(project.id)).toBe(count);
      });

      it('request ids are per tenant', async () => {
        const p = (await keyedApi.call('ProjectService', 'CreateProject', { name: 'Keyed idem' })).project;
        const task = (await keyedApi.call('TaskService', 'CreateTask', { projectId: p.id, title: 'other tenant', requestId: `t-${protocol}-1` })).task;
        expect(task.title).toBe('other tenant');
      });

      it('racing retries get the same task and one row is written', async () => {
        const count = await countTasks(project.id);
        const req = { title: 'raced', requestId: `t-${protocol}-race` };
        const results = await Promise.all([1, 2, 3, 4].map(() => createTask(req)));
        expect(new Set(results.map((r) => r.id)).size).toBe(1);
        for (const r of results) expect(r).toEqual(results[0]);
        expect(await countTasks(project.id)).toBe(count + 1);
      });

      it('a refused create does not use up its request_id', async () => {
        const requestId = `t-${protocol}-refused`;
        await expectRpcError(createTask({ title: 'later', assigneeId: '987654321', requestId }), 'FAILED_PRECONDITION');
        // Had the failed attempt kept the id, this different request would be INVALID_ARGUMENT.
        expect((await createTask({ title: 'later', requestId })).title).toBe('later');
      });
    });
  });
}

describe('relations are loaded in batch (connect)', () => {
  it('ListTasks sends as many statements for a page of 1 task as for a page of 200, in both views', async () => {
    const tenant = await t.tenant({ withWorker: true });
    const api = t.client('connect', tenant.headers);
    const workers: string[] = [];
    for (const handle of ['@a1', '@a2', '@a3']) workers.push((await api.call('WorkerService', 'CreateWorker', { handle })).worker.id);

    // A project whose first task has a parent, an assignee and a subtask...
    const small = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Small', taskTitles: ['s0', 's1', 's2'] });
    const [s0, s1, s2] = small.tasks;
    await api.call('TaskService', 'UpdateTask', { task: { id: s0.id, parentTaskId: s1.id }, updateMask: 'parentTaskId' });
    await api.call('TaskService', 'UpdateTask', { task: { id: s2.id, parentTaskId: s0.id }, updateMask: 'parentTaskId' });
    await api.call('TaskService', 'AssignTask', { id: s0.id, workerId: workers[0] });

    // ...and one of 201 tasks with a few assignees, parents and subtasks.
    const titles = Array.from({ length: 201 }, (_, i) => `task ${String(i).padStart(3, '0')}`);
    const big = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Big', taskTitles: titles });
    expect(big.tasks).toHaveLength(201);
    const bt: Json[] = big.tasks;
    for (let i = 0; i < 6; i++) await api.call('TaskService', 'AssignTask', { id: bt[10 + i].id, workerId: workers[i % 3] });
    for (const i of [1, 2, 150]) await api.call('TaskService', 'UpdateTask', { task: { id: bt[i].id, parentTaskId: bt[0].id }, updateMask: 'parentTaskId' });

    const db = t.app.database.db;
    const measure = async (req: Json) => {
      const before = db.statements;
      const res = await api.call('TaskService', 'ListTasks', req);
      return { statements: db.statements - before, tasks: res.tasks as Json[] };
    };

    const counts: Record<string, number> = {};
    for (const view of ['TASK_VIEW_BASIC', 'TASK_VIEW_FULL']) {
      // Warm up (tenant lookup cache), then measure.
      await api.call('TaskService', 'ListTasks', { projectId: small.project.id, pageSize: 1, view });
      const one = await measure({ projectId: small.project.id, pageSize: 1, view });
      const many = await measure({ projectId: big.project.id, pageSize: 200, view });
      expect(one.tasks).toHaveLength(1);
      expect(many.tasks).toHaveLength(200);
      expect(one.tasks[0]).toMatchObject({ id: s0.id, assignee: { id: workers[0] }, createdBy: { id: tenant.workerId } });
      expect(many.tasks.every((task) => task.createdBy?.id === tenant.workerId)).toBe(true);
      expect(many.tasks.filter((task) => task.assignee).map((task) => task.assignee.id)).toEqual([0, 1, 2, 3, 4, 5].map((i) => workers[i % 3]));
      if (view === 'TASK_VIEW_FULL') {
        expect(one.tasks[0]).toMatchObject({ project: { name: 'Small' }, parent: { id: s1.id } });
        expect(ids(one.tasks[0].subtasks)).toEqual([s2.id]);
        expect(many.tasks.every((task) => task.project?.id === big.project.id)).toBe(true);
        expect(ids(many.tasks[0].subtasks)).toEqual([bt[1].id, bt[2].id, bt[150].id]);
        expect(many.tasks[150].parent.id).toBe(bt[0].id);
        expect(many.tasks.filter((task) => task.parent).length).toBe(3);
      } else {
        expect(one.tasks[0].project).toBeUndefined();
        expect(many.tasks[0].subtasks).toBeUndefined();
      }
      expect(many.statements, `${view}: statements for 200 tasks vs 1`).toBe(one.statements);
      counts[view] = one.statements;
    }
    // The full view loads three more relations (project, parent, subtasks), one statement each.
    expect(counts.TASK_VIEW_FULL).toBe(counts.TASK_VIEW_BASIC! + 3);

    // GetTask's relations are batched the same way: a bounded, fixed number of statements.
    const before = db.statements;
    await api.call('TaskService', 'GetTask', { id: bt[0].id, view: 'TASK_VIEW_FULL' });
    const getFull = db.statements - before;
    expect(getFull).toBeLessThanOrEqual(counts.TASK_VIEW_FULL!);
  });
});
