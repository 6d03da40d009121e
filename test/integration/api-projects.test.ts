/**
 * ProjectService over gRPC and Connect: create with defaults and metadata, get and list with
 * filters and paging, update with update_mask and expected_version, delete with and without
 * force, the transactional CreateProjectWithTasks (all or nothing, including an injected
 * fault) and CompleteProjectTasks, and idempotent creates.
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
  if (t) t.app.services.projects.afterTasksInserted = null;
  await t?.stop();
});

const METADATA = { team: 'core', budget: 1250.5, count: 3, open: true, nothing: null, tags: ['a', 'b', 7], nested: { deep: { x: 'y' }, list: [] } };

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    /** A tenant whose API key is bound to a worker: that worker creates the tasks. */
    let tenant: TestTenant;
    let api: ApiClient;
    /** A tenant whose key has no worker: created_by_id must be given. */
    let plain: ApiClient;
    let plainWorkerId: string;
    let other: ApiClient;

    const createProject = async (req: Json): Promise<Json> => (await api.call('ProjectService', 'CreateProject', req)).project;
    const countProjects = async (client = api) => (await listAll(client, 'ProjectService', 'ListProjects', 'projects', { pageSize: 500 })).items.length;
    const listTasks = async (projectId: string, client = api): Promise<Json[]> =>
      (await listAll(client, 'TaskService', 'ListTasks', 'tasks', { projectId, pageSize: 500 })).items;

    beforeAll(async () => {
      tenant = await t.tenant({ withWorker: true });
      api = t.client(protocol, tenant.headers);
      plain = t.client(protocol, (await t.tenant()).headers);
      plainWorkerId = (await plain.call('WorkerService', 'CreateWorker', { handle: '@maker' })).worker.id;
      other = t.client(protocol, (await t.tenant()).headers);
    });

    describe('CreateProject and GetProject', () => {
      it('creates a project with the defaults: active, version 1, empty description and metadata', async () => {
        const p = await createProject({ name: 'Launch' });
        expect(p).toMatchObject({ name: 'Launch', status: 'PROJECT_STATUS_ACTIVE', version: '1' });
        expect(p.id).toMatch(/^[1-9]\d*$/);
        expect(p.description).toBeUndefined();
        expect(p.metadata ?? {}).toEqual({});
        expect(iso(p.updatedAt)).toBe(iso(p.createdAt));
        const { project } = await api.call('ProjectService', 'GetProject', { id: p.id });
        expect(project).toMatchObject({ id: p.id, name: 'Launch', status: 'PROJECT_STATUS_ACTIVE', version: '1' });
        expect(iso(project.createdAt)).toBe(iso(p.createdAt));
      });

      it('keeps an explicit status and the description', async () => {
        const p = await createProject({ name: 'Old', description: 'long gone', status: 'PROJECT_STATUS_ARCHIVED' });
        expect(p).toMatchObject({ status: 'PROJECT_STATUS_ARCHIVED', description: 'long gone' });
      });

      it('round-trips metadata as JSON', async () => {
        const p = await createProject({ name: 'With metadata', metadata: METADATA });
        expect(p.metadata).toEqual(METADATA);
        const { project } = await api.call('ProjectService', 'GetProject', { id: p.id });
        expect(project.metadata).toEqual(METADATA);
      });

      it('refuses a missing or too long name', async () => {
        await expectRpcError(api.call('ProjectService', 'CreateProject', { name: '' }), 'INVALID_ARGUMENT', 'name');
        await expectRpcError(api.call('ProjectService', 'CreateProject', { name: 'n'.repeat(201) }), 'INVALID_ARGUMENT', 'name');
      });

      it('answers NOT_FOUND for a missing project and for a project of another tenant', async () => {
        const p = await createProject({ name: 'Mine' });
        await expectRpcError(api.call('ProjectService', 'GetProject', { id: '987654321' }), 'NOT_FOUND', 'project');
        await expectRpcError(other.call('ProjectService', 'GetProject', { id: p.id }), 'NOT_FOUND');
      });
    });

    describe('ListProjects', () => {
      let lister: ApiClient;
      let active: string[];
      let archived: string[];

      beforeAll(async () => {
        lister = t.client(protocol, (await t.tenant()).headers);
        active = [];
        archived = [];
        for (let i = 0; i < 7; i++) {
          const status = i % 3 === 2 ? 'PROJECT_STATUS_ARCHIVED' : 'PROJECT_STATUS_ACTIVE';
          const { project } = await lister.call('ProjectService', 'CreateProject', { name: `P${i}`, status });
          (status === 'PROJECT_STATUS_ACTIVE' ? active : archived).push(project.id);
        }
      });

      it('lists every project of the tenant, oldest first', async () => {
        const { projects, nextPageToken } = await lister.call('ProjectService', 'ListProjects', {});
        expect(projects.map((p: Json) => p.id)).toEqual([...active, ...archived].sort((a, b) => Number(BigInt(a) - BigInt(b))));
        expect(projects.map((p: Json) => p.name)).toEqual(['P0', 'P1', 'P2', 'P3', 'P4', 'P5', 'P6']);
        expect(nextPageToken).toBeUndefined();
      });

      it('filters by status', async () => {
        const a = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ACTIVE' });
        expect(a.projects.map((p: Json) => p.id)).toEqual(active);
        const b = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ARCHIVED' });
        expect(b.projects.map((p: Json) => p.id)).toEqual(archived);
        const c = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_COMPLETED' });
        expect(c.projects).toBeUndefined();
      });

      it('pages with page_size and page_token', async () => {
        const first = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ACTIVE', pageSize: 2 });
        expect(first.projects.map((p: Json) => p.id)).toEqual(active.slice(0, 2));
        const second = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ACTIVE', pageSize: 2, pageToken: first.nextPageToken });
        expect(second.projects.map((p: Json) => p.id)).toEqual(active.slice(2, 4));
        const third = await lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ACTIVE', pageSize: 2, pageToken: second.nextPageToken });
        expect(third.projects.map((p: Json) => p.id)).toEqual(active.slice(4));
        expect(third.nextPageToken).toBeUndefined();
        const { items, pages } = await listAll(lister, 'ProjectService', 'ListProjects', 'projects', { pageSize: 3 });
        expect(pages).toBe(3);
        expect(items.map((p) => p.id).sort()).toEqual([...active, ...archived].sort());
      });

      it('refuses page_size over 500 and a negative one', async () => {
        await expectRpcError(lister.call('ProjectService', 'ListProjects', { pageSize: 501 }), 'INVALID_ARGUMENT', 'page_size');
        await expectRpcError(lister.call('ProjectService', 'ListProjects', { pageSize: -1 }), 'INVALID_ARGUMENT', 'page_size');
        expect((await lister.call('ProjectService', 'ListProjects', { pageSize: 500 })).projects).toHaveLength(7);
      });

      it('refuses a tampered page_token, garbage, and a token of other filters', async () => {
        const { nextPageToken: token } = await lister.call('ProjectService', 'ListProjects', { pageSize: 2 });
        expect(token).toBeTruthy();
        const dot = token.indexOf('.');
        // Change the position inside the payload, keep the checksum.
        const tampered = `${token.slice(0, dot - 2)}${token[dot - 2] === 'A' ? 'B' : 'A'}${token.slice(dot - 1)}`;
        await expectRpcError(lister.call('ProjectService', 'ListProjects', { pageSize: 2, pageToken: tampered }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(lister.call('ProjectService', 'ListProjects', { pageSize: 2, pageToken: 'garbage' }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(
          lister.call('ProjectService', 'ListProjects', { status: 'PROJECT_STATUS_ARCHIVED', pageSize: 2, pageToken: token }),
          'INVALID_ARGUMENT',
          'page_token',
        );
      });

      it('shows nothing of another tenant', async () => {
        const { projects } = await other.call('ProjectService', 'ListProjects', {});
        const ids = (projects ?? []).map((p: Json) => p.id);
        for (const id of [...active, ...archived]) expect(ids).not.toContain(id);
      });
    });

    describe('UpdateProject', () => {
      it('writes only the fields of update_mask, bumps the version and updated_at', async () => {
        const p = await createProject({ name: 'Before', description: 'keep me', metadata: { a: 1 } });
        await new Promise((r) => setTimeout(r, 5));
        const { project } = await api.call('ProjectService', 'UpdateProject', {
          project: { id: p.id, name: 'After', description: 'ignored: not in the mask', metadata: { b: 2 } },
          updateMask: 'name',
        });
        expect(project).toMatchObject({ id: p.id, name: 'After', description: 'keep me', metadata: { a: 1 }, version: '2' });
        expect(Date.parse(project.updatedAt)).toBeGreaterThan(Date.parse(p.updatedAt));
        expect(iso(project.createdAt)).toBe(iso(p.createdAt));

        const second = await api.call('ProjectService', 'UpdateProject', {
          project: { id: p.id, status: 'PROJECT_STATUS_COMPLETED', metadata: { b: 2 }, description: '' },
          updateMask: 'status,metadata,description',
        });
        expect(second.project).toMatchObject({ name: 'After', status: 'PROJECT_STATUS_COMPLETED', metadata: { b: 2 }, version: '3' });
        expect(second.project.description).toBeUndefined();
        const { project: read } = await api.call('ProjectService', 'GetProject', { id: p.id });
        expect(read).toMatchObject({ name: 'After', status: 'PROJECT_STATUS_COMPLETED', metadata: { b: 2 }, version: '3' });
        expect(iso(read.updatedAt)).toBe(iso(second.project.updatedAt));
      });

      it('refuses a mask naming a field that cannot be updated', async () => {
        const p = await createProject({ name: 'Masked' });
        await expectRpcError(api.call('ProjectService', 'UpdateProject', { project: { id: p.id, version: '9' }, updateMask: 'version' }), 'INVALID_ARGUMENT', 'update_mask');
        await expectRpcError(api.call('ProjectService', 'UpdateProject', { project: { id: p.id, name: '' }, updateMask: 'name' }), 'INVALID_ARGUMENT', 'name');
        expect((await api.call('ProjectService', 'GetProject', { id: p.id })).project).toMatchObject({ name: 'Masked', version: '1' });
      });

      it('with a wrong expected_version: ABORTED and nothing written', async () => {
        const p = await createProject({ name: 'Versioned' });
        await expectRpcError(
          api.call('ProjectService', 'UpdateProject', { project: { id: p.id, name: 'Lost update' }, updateMask: 'name', expectedVersion: '2' }),
          'ABORTED',
          'version',
        );
        const { project } = await api.call('ProjectService', 'GetProject', { id: p.id });
        expect(project).toMatchObject({ name: 'Versioned', version: '1' });
        expect(iso(project.updatedAt)).toBe(iso(p.updatedAt));
        const ok = await api.call('ProjectService', 'UpdateProject', { project: { id: p.id, name: 'Won' }, updateMask: 'name', expectedVersion: '1' });
        expect(ok.project).toMatchObject({ name: 'Won', version: '2' });
        await expectRpcError(
          api.call('ProjectService', 'UpdateProject', { project: { id: p.id, name: 'Stale' }, updateMask: 'name', expectedVersion: '1' }),
          'ABORTED',
        );
        expect((await api.call('ProjectService', 'GetProject', { id: p.id })).project).toMatchObject({ name: 'Won', version: '2' });
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const p = await createProject({ name: 'Not yours' });
        await expectRpcError(api.call('ProjectService', 'UpdateProject', { project: { id: '987654321', name: 'x' }, updateMask: 'name' }), 'NOT_FOUND');
        await expectRpcError(other.call('ProjectService', 'UpdateProject', { project: { id: p.id, name: 'x' }, updateMask: 'name' }), 'NOT_FOUND');
        expect((await api.call('ProjectService', 'GetProject', { id: p.id })).project.name).toBe('Not yours');
      });
    });

    describe('DeleteProject', () => {
      it('deletes a project without tasks', async () => {
        const p = await createProject({ name: 'Empty' });
        await api.call('ProjectService', 'DeleteProject', { id: p.id });
        await expectRpcError(api.call('ProjectService', 'GetProject', { id: p.id }), 'NOT_FOUND');
      });

      it('refuses a project with tasks (FAILED_PRECONDITION) unless force, which deletes the tasks', async () => {
        const { project, tasks } = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Busy', taskTitles: ['one', 'two'] });
        await api.call('TaskService', 'CreateTask', { projectId: project.id, title: 'child', parentTaskId: tasks[0].id });
        await expectRpcError(api.call('ProjectService', 'DeleteProject', { id: project.id }), 'FAILED_PRECONDITION', 'force');
        expect((await api.call('ProjectService', 'GetProject', { id: project.id })).project.name).toBe('Busy');
        expect(await listTasks(project.id)).toHaveLength(3);

        await api.call('ProjectService', 'DeleteProject', { id: project.id, force: true });
        await expectRpcError(api.call('ProjectService', 'GetProject', { id: project.id }), 'NOT_FOUND');
        for (const task of tasks) await expectRpcError(api.call('TaskService', 'GetTask', { id: task.id }), 'NOT_FOUND');
        expect(await listTasks(project.id)).toHaveLength(0);
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const p = await createProject({ name: 'Keep' });
        await expectRpcError(api.call('ProjectService', 'DeleteProject', { id: '987654321', force: true }), 'NOT_FOUND');
        await expectRpcError(other.call('ProjectService', 'DeleteProject', { id: p.id, force: true }), 'NOT_FOUND');
        expect((await api.call('ProjectService', 'GetProject', { id: p.id })).project.name).toBe('Keep');
      });
    });

    describe('CreateProjectWithTasks', () => {
      it('creates the project and one task per title, in title order, created by the key worker', async () => {
        const titles = ['write spec', 'build it', 'an early title', 'ship'];
        const res = await api.call('ProjectService', 'CreateProjectWithTasks', {
          name: 'Bundle',
          description: 'with tasks',
          metadata: { k: 'v' },
          taskTitles: titles,
        });
        expect(res.project).toMatchObject({ name: 'Bundle', description: 'with tasks', metadata: { k: 'v' }, status: 'PROJECT_STATUS_ACTIVE', version: '1' });
        expect(res.tasks.map((task: Json) => task.title)).toEqual(titles);
        const ids = res.tasks.map((task: Json) => BigInt(task.id));
        expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
        for (const task of res.tasks) {
          expect(task).toMatchObject({
            projectId: res.project.id,
            status: 'TASK_STATUS_PENDING',
            priority: 'TASK_PRIORITY_MEDIUM',
            createdById: tenant.workerId,
            createdBy: { id: tenant.workerId, handle: '@owner' },
            version: '1',
          });
        }
        const listed = await listTasks(res.project.id);
        expect(listed.map((task) => task.title)).toEqual(titles);
        expect(listed.map((task) => task.id)).toEqual(res.tasks.map((task: Json) => task.id));
      });

      it('creates a project with no tasks when no titles are given', async () => {
        const res = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'No tasks' });
        expect(res.project.name).toBe('No tasks');
        expect(res.tasks).toBeUndefined();
      });

      it('takes created_by_id when the key has no worker', async () => {
        const res = await plain.call('ProjectService', 'CreateProjectWithTasks', { name: 'Plain', taskTitles: ['a'], createdById: plainWorkerId });
        expect(res.tasks[0]).toMatchObject({ createdById: plainWorkerId, createdBy: { handle: '@maker' } });
      });

      it.each([
        ['an empty title', ''],
        ['a blank title', '   '],
        ['a title of 501 characters', 't'.repeat(501)],
      ])('refuses %s with INVALID_ARGUMENT and creates nothing', async (_, bad) => {
        const before = await countProjects();
        await expectRpcError(
          api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Invalid', taskTitles: ['fine', bad, 'also fine'] }),
          'INVALID_ARGUMENT',
          'title',
        );
        expect(await countProjects()).toBe(before);
      });

      it('accepts a title of exactly 500 characters', async () => {
        const res = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Long', taskTitles: ['t'.repeat(500)] });
        expect(res.tasks[0].title).toHaveLength(500);
      });

      it('refuses a created_by_id that names no worker and creates nothing', async () => {
        const before = await countProjects(plain);
        const err = await plain
          .call('ProjectService', 'CreateProjectWithTasks', { name: 'Orphans', taskTitles: ['a', 'b'], createdById: '987654321' })
          .then(() => null, (e: Error & { code: string }) => e);
        expect(err?.code).toMatch(/^(FAILED_PRECONDITION|NOT_FOUND)$/);
        expect(err?.message).toContain('created_by_id');
        // With no titles there is no task to refer to the worker, and still nothing is created.
        const err2 = await plain
          .call('ProjectService', 'CreateProjectWithTasks', { name: 'Orphans', createdById: '987654321' })
          .then(() => null, (e: Error & { code: string }) => e);
        expect(err2?.code).toMatch(/^(FAILED_PRECONDITION|NOT_FOUND)$/);
        expect(await countProjects(plain)).toBe(before);
      });

      it('refuses a created_by_id that is a worker of another tenant', async () => {
        const before = await countProjects(plain);
        const foreign = await foreignWorkerId(plain, api);
        const err = await plain
          .call('ProjectService', 'CreateProjectWithTasks', { name: 'Foreign', taskTitles: ['a'], createdById: foreign })
          .then(() => null, (e: Error & { code: string }) => e);
        expect(err?.code).toMatch(/^(FAILED_PRECONDITION|NOT_FOUND)$/);
        expect(await countProjects(plain)).toBe(before);
      });

      it('without created_by_id and without a worker key: INVALID_ARGUMENT', async () => {
        await expectRpcError(plain.call('ProjectService', 'CreateProjectWithTasks', { name: 'Nobody', taskTitles: ['a'] }), 'INVALID_ARGUMENT', 'created_by_id');
      });

      it('rolls everything back when a fault happens after the tasks were inserted (INTERNAL)', async () => {
        const before = await countProjects();
        const tasksBefore = (await listAll(api, 'TaskService', 'ListTasks', 'tasks', { pageSize: 500 })).items.length;
        t.app.services.projects.afterTasksInserted = async () => {
          throw new Error('boom');
        };
        try {
          const err = await expectRpcError(api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Doomed', taskTitles: ['a', 'b', 'c'] }), 'INTERNAL');
          expect(err.message).not.toContain('boom');
        } finally {
          t.app.services.projects.afterTasksInserted = null;
        }
        expect(await countProjects()).toBe(before);
        expect((await listAll(api, 'TaskService', 'ListTasks', 'tasks', { pageSize: 500 })).items.length).toBe(tasksBefore);
        const { projects } = await api.call('ProjectService', 'ListProjects', { pageSize: 500 });
        expect(projects.map((p: Json) => p.name)).not.toContain('Doomed');
      });
    });

    describe('CompleteProjectTasks', () => {
      it('completes every open task in one call, returns the count, and 0 the second time', async () => {
        const { project, tasks } = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Finish', taskTitles: ['a', 'b', 'c', 'd'] });
        const done = (await api.call('TaskService', 'UpdateTask', { task: { id: tasks[0].id, status: 'TASK_STATUS_COMPLETED' }, updateMask: 'status' })).task;
        await api.call('TaskService', 'UpdateTask', { task: { id: tasks[1].id, status: 'TASK_STATUS_IN_PROGRESS' }, updateMask: 'status' });
        const elsewhere = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Untouched', taskTitles: ['x'] });

        const first = await api.call('ProjectService', 'CompleteProjectTasks', { projectId: project.id });
        expect(first.completedCount).toBe('3');
        const second = await api.call('ProjectService', 'CompleteProjectTasks', { projectId: project.id });
        expect(second.completedCount ?? '0').toBe('0');
        expect(second.completedCount).toBeUndefined();

        const after = new Map((await listTasks(project.id)).map((task) => [task.id, task]));
        expect([...after.values()].every((task) => task.status === 'TASK_STATUS_COMPLETED')).toBe(true);
        expect(after.get(tasks[0].id)!.version).toBe(done.version); // already completed: untouched
        expect(iso(after.get(tasks[0].id)!.updatedAt)).toBe(iso(done.updatedAt));
        expect(after.get(tasks[1].id)!.version).toBe('3');
        expect(after.get(tasks[2].id)!.version).toBe('2');
        expect(after.get(tasks[3].id)!.version).toBe('2');
        expect(Date.parse(after.get(tasks[3].id)!.updatedAt)).toBeGreaterThan(Date.parse(tasks[3].updatedAt));

        const [untouched] = await listTasks(elsewhere.project.id);
        expect(untouched).toMatchObject({ status: 'TASK_STATUS_PENDING', version: '1' });
      });

      it('returns 0 for a project without tasks', async () => {
        const p = await createProject({ name: 'Idle' });
        expect((await api.call('ProjectService', 'CompleteProjectTasks', { projectId: p.id })).completedCount).toBeUndefined();
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const { project, tasks } = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Guarded', taskTitles: ['a'] });
        await expectRpcError(api.call('ProjectService', 'CompleteProjectTasks', { projectId: '987654321' }), 'NOT_FOUND', 'project');
        await expectRpcError(other.call('ProjectService', 'CompleteProjectTasks', { projectId: project.id }), 'NOT_FOUND');
        expect((await api.call('TaskService', 'GetTask', { id: tasks[0].id })).task.status).toBe('TASK_STATUS_PENDING');
      });
    });

    describe('idempotent creates (request_id)', () => {
      it('CreateProject: a retry returns the first response and writes nothing', async () => {
        const req = { name: 'Once', metadata: { n: 1 }, requestId: `p-${protocol}-1` };
        const first = await api.call('ProjectService', 'CreateProject', req);
        const count = await countProjects();
        await new Promise((r) => setTimeout(r, 5));
        const retry = await api.call('ProjectService', 'CreateProject', req);
        expect(retry).toEqual(first);
        expect(retry.project.id).toBe(first.project.id);
        expect(iso(retry.project.createdAt)).toBe(iso(first.project.createdAt));
        expect(await countProjects()).toBe(count);
      });

      it('CreateProject: the same request_id with a different request is INVALID_ARGUMENT', async () => {
        const count = await countProjects();
        await expectRpcError(
          api.call('ProjectService', 'CreateProject', { name: 'Once', metadata: { n: 2 }, requestId: `p-${protocol}-1` }),
          'INVALID_ARGUMENT',
          'request_id',
        );
        // The same id for another operation is a different request too.
        await expectRpcError(
          api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Once', metadata: { n: 1 }, requestId: `p-${protocol}-1` }),
          'INVALID_ARGUMENT',
          'request_id',
        );
        expect(await countProjects()).toBe(count);
      });

      it('CreateProject: racing retries get the same project and one row is written', async () => {
        const count = await countProjects();
        const req = { name: 'Raced', requestId: `p-${protocol}-race` };
        const results = await Promise.all([1, 2, 3].map(() => api.call('ProjectService', 'CreateProject', req)));
        expect(new Set(results.map((r) => r.project.id)).size).toBe(1);
        expect(results[2]).toEqual(results[0]);
        expect(await countProjects()).toBe(count + 1);
      });

      it('CreateProjectWithTasks: a retry returns the first response and writes nothing', async () => {
        const req = { name: 'Batch once', taskTitles: ['x', 'y'], requestId: `pt-${protocol}-1` };
        const first = await api.call('ProjectService', 'CreateProjectWithTasks', req);
        const count = await countProjects();
        const retry = await api.call('ProjectService', 'CreateProjectWithTasks', req);
        expect(retry).toEqual(first);
        expect(retry.tasks.map((task: Json) => task.id)).toEqual(first.tasks.map((task: Json) => task.id));
        expect(iso(retry.tasks[0].createdAt)).toBe(iso(first.tasks[0].createdAt));
        expect(await countProjects()).toBe(count);
        expect(await listTasks(first.project.id)).toHaveLength(2);
      });

      it('CreateProjectWithTasks: the same request_id with other titles is INVALID_ARGUMENT', async () => {
        const count = await countProjects();
        await expectRpcError(
          api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Batch once', taskTitles: ['x', 'z'], requestId: `pt-${protocol}-1` }),
          'INVALID_ARGUMENT',
          'request_id',
        );
        expect(await countProjects()).toBe(count);
      });

      it('CreateProjectWithTasks: racing retries get the same project and tasks, written once', async () => {
        const count = await countProjects();
        const req = { name: 'Batch raced', taskTitles: ['a', 'b', 'c'], requestId: `pt-${protocol}-race` };
        const results = await Promise.all([1, 2].map(() => api.call('ProjectService', 'CreateProjectWithTasks', req)));
        expect(results[1]).toEqual(results[0]);
        expect(await countProjects()).toBe(count + 1);
        expect(await listTasks(results[0].project.id)).toHaveLength(3);
      });

      it('a failed create does not use up its request_id', async () => {
        const requestId = `p-${protocol}-fail`;
        t.app.services.projects.afterTasksInserted = async () => {
          throw new Error('boom');
        };
        try {
          await expectRpcError(api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Retry me', taskTitles: ['a'], requestId }), 'INTERNAL');
        } finally {
          t.app.services.projects.afterTasksInserted = null;
        }
        const res = await api.call('ProjectService', 'CreateProjectWithTasks', { name: 'Retry me', taskTitles: ['a'], requestId });
        expect(res.project.name).toBe('Retry me');
      });
    });
  });
}
