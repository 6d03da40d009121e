/**
 * ProjectService over gRPC and Connect: create with defaults and metadata, get and list with
 * filters and paging, update with update_mask and expected_version, delete with and without
 * force, the transactional CreateProjectWithTasks (all or nothing, including an injected
 * fault) and CompleteProjectTasks. Idempotent creates: api-idempotency.test.ts; page tokens:
 * api-paging.test.ts.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateProjectRequestSchema } from '../../src/gen/taskapi/v1/project_pb.js';
import { listenToStatements } from '../../src/services/statement-listeners.js';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, ProjectStatus, TaskPriority, TaskStatus } from '../helpers/clients.js';
import { Code, expectRpcError, foreignWorkerId, iso, listAll, mask, ms } from '../helpers/expect-rpc.js';
import { clockPast } from '../helpers/wait.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const METADATA = {
  team: 'core',
  budget: 1250.5,
  count: 3,
  open: true,
  nothing: null,
  tags: ['a', 'b', 7],
  nested: { deep: { x: 'y' }, list: [] },
};

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    /** A tenant whose API key is bound to a worker: that worker creates the tasks. */
    let tenant: TestTenant<true>;
    let api: ApiClient;
    /** A tenant whose key has no worker: created_by_id must be given. */
    let plain: ApiClient;
    let plainWorkerId: bigint;
    let other: ApiClient;

    const createProject = async (req: MessageInitShape<typeof CreateProjectRequestSchema>) =>
      (await api.ProjectService.createProject(req)).project;
    const countProjects = async (client = api) =>
      (
        await listAll(
          (pageToken) => client.ProjectService.listProjects({ ...{ pageSize: 500 }, pageToken }),
          (r) => r.projects,
        )
      ).items.length;
    const listTasks = async (projectId: bigint, client = api) =>
      (
        await listAll(
          (pageToken) => client.TaskService.listTasks({ ...{ projectId, pageSize: 500 }, pageToken }),
          (r) => r.tasks,
        )
      ).items;

    beforeAll(async () => {
      tenant = await t.tenant({ withWorker: true });
      api = t.client(protocol, tenant.headers);
      plain = t.client(protocol, (await t.tenant()).headers);
      plainWorkerId = (await plain.WorkerService.createWorker({ handle: '@maker' })).worker.id;
      other = t.client(protocol, (await t.tenant()).headers);
    });

    describe('CreateProject and GetProject', () => {
      it('creates a project with the defaults: active, version 1, empty description and metadata', async () => {
        const p = await createProject({ name: 'Launch' });
        expect(p).toMatchObject({ name: 'Launch', status: ProjectStatus.ACTIVE, version: 1n });
        expect(p.id).toBeGreaterThan(0n);
        expect(p.description).toBe('');
        expect(p.metadata ?? {}).toEqual({});
        expect(iso(p.updatedAt)).toBe(iso(p.createdAt));
        const { project } = await api.ProjectService.getProject({ id: p.id });
        expect(project).toMatchObject({ id: p.id, name: 'Launch', status: ProjectStatus.ACTIVE, version: 1n });
        expect(iso(project.createdAt)).toBe(iso(p.createdAt));
      });

      it('keeps an explicit status and the description', async () => {
        const p = await createProject({ name: 'Old', description: 'long gone', status: ProjectStatus.ARCHIVED });
        expect(p).toMatchObject({ status: ProjectStatus.ARCHIVED, description: 'long gone' });
      });

      it('round-trips metadata as JSON', async () => {
        const p = await createProject({ name: 'With metadata', metadata: METADATA });
        expect(p.metadata).toEqual(METADATA);
        const { project } = await api.ProjectService.getProject({ id: p.id });
        expect(project.metadata).toEqual(METADATA);
      });

      it('refuses a missing or too long name', async () => {
        await expectRpcError(api.ProjectService.createProject({ name: '' }), Code.InvalidArgument, 'name');
        await expectRpcError(api.ProjectService.createProject({ name: 'n'.repeat(201) }), Code.InvalidArgument, 'name');
      });

      it('answers NOT_FOUND for a missing project and for a project of another tenant', async () => {
        const p = await createProject({ name: 'Mine' });
        await expectRpcError(api.ProjectService.getProject({ id: 987654321n }), Code.NotFound, 'project');
        await expectRpcError(other.ProjectService.getProject({ id: p.id }), Code.NotFound);
      });
    });

    describe('ListProjects', () => {
      let lister: ApiClient;
      let active: bigint[];
      let archived: bigint[];

      beforeAll(async () => {
        lister = t.client(protocol, (await t.tenant()).headers);
        active = [];
        archived = [];
        for (let i = 0; i < 7; i++) {
          const status = i % 3 === 2 ? ProjectStatus.ARCHIVED : ProjectStatus.ACTIVE;
          const { project } = await lister.ProjectService.createProject({ name: `P${i}`, status });
          (status === ProjectStatus.ACTIVE ? active : archived).push(project.id);
        }
      });

      it('lists every project of the tenant, oldest first', async () => {
        const { projects, nextPageToken } = await lister.ProjectService.listProjects({});
        expect(projects.map((p) => p.id)).toEqual([...active, ...archived].sort((a, b) => Number(a - b)));
        expect(projects.map((p) => p.name)).toEqual(['P0', 'P1', 'P2', 'P3', 'P4', 'P5', 'P6']);
        expect(nextPageToken).toBe('');
      });

      it('filters by status', async () => {
        const a = await lister.ProjectService.listProjects({ status: ProjectStatus.ACTIVE });
        expect(a.projects.map((p) => p.id)).toEqual(active);
        const b = await lister.ProjectService.listProjects({ status: ProjectStatus.ARCHIVED });
        expect(b.projects.map((p) => p.id)).toEqual(archived);
        const c = await lister.ProjectService.listProjects({ status: ProjectStatus.COMPLETED });
        expect(c.projects).toEqual([]);
      });

      it('pages with page_size and page_token', async () => {
        const first = await lister.ProjectService.listProjects({ status: ProjectStatus.ACTIVE, pageSize: 2 });
        expect(first.projects.map((p) => p.id)).toEqual(active.slice(0, 2));
        const second = await lister.ProjectService.listProjects({
          status: ProjectStatus.ACTIVE,
          pageSize: 2,
          pageToken: first.nextPageToken,
        });
        expect(second.projects.map((p) => p.id)).toEqual(active.slice(2, 4));
        const third = await lister.ProjectService.listProjects({
          status: ProjectStatus.ACTIVE,
          pageSize: 2,
          pageToken: second.nextPageToken,
        });
        expect(third.projects.map((p) => p.id)).toEqual(active.slice(4));
        expect(third.nextPageToken).toBe('');
        const { items, pages } = await listAll(
          (pageToken) => lister.ProjectService.listProjects({ ...{ pageSize: 3 }, pageToken }),
          (r) => r.projects,
        );
        expect(pages).toBe(3);
        expect(new Set(items.map((p) => p.id))).toEqual(new Set([...active, ...archived]));
      });

      it('shows nothing of another tenant', async () => {
        const { projects } = await other.ProjectService.listProjects({});
        const ids = (projects ?? []).map((p) => p.id);
        for (const id of [...active, ...archived]) expect(ids).not.toContain(id);
      });
    });

    describe('UpdateProject', () => {
      it('writes only the fields of update_mask, bumps the version and updated_at', async () => {
        const p = await createProject({ name: 'Before', description: 'keep me', metadata: { a: 1 } });
        await clockPast();
        const { project } = await api.ProjectService.updateProject({
          project: { id: p.id, name: 'After', description: 'ignored: not in the mask', metadata: { b: 2 } },
          updateMask: mask('name'),
        });
        expect(project).toMatchObject({
          id: p.id,
          name: 'After',
          description: 'keep me',
          metadata: { a: 1 },
          version: 2n,
        });
        expect(ms(project.updatedAt)).toBeGreaterThan(ms(p.updatedAt));
        expect(iso(project.createdAt)).toBe(iso(p.createdAt));

        const second = await api.ProjectService.updateProject({
          project: { id: p.id, status: ProjectStatus.COMPLETED, metadata: { b: 2 }, description: '' },
          updateMask: mask('status,metadata,description'),
        });
        expect(second.project).toMatchObject({
          name: 'After',
          status: ProjectStatus.COMPLETED,
          metadata: { b: 2 },
          version: 3n,
        });
        expect(second.project.description).toBe('');
        const { project: read } = await api.ProjectService.getProject({ id: p.id });
        expect(read).toMatchObject({ name: 'After', status: ProjectStatus.COMPLETED, metadata: { b: 2 }, version: 3n });
        expect(iso(read.updatedAt)).toBe(iso(second.project.updatedAt));
      });

      it('refuses a mask naming a field that cannot be updated', async () => {
        const p = await createProject({ name: 'Masked' });
        await expectRpcError(
          api.ProjectService.updateProject({ project: { id: p.id, version: 9n }, updateMask: mask('version') }),
          Code.InvalidArgument,
          'update_mask',
        );
        await expectRpcError(
          api.ProjectService.updateProject({ project: { id: p.id, name: '' }, updateMask: mask('name') }),
          Code.InvalidArgument,
          'name',
        );
        expect((await api.ProjectService.getProject({ id: p.id })).project).toMatchObject({
          name: 'Masked',
          version: 1n,
        });
      });

      it('with a wrong expected_version: ABORTED and nothing written', async () => {
        const p = await createProject({ name: 'Versioned' });
        await expectRpcError(
          api.ProjectService.updateProject({
            project: { id: p.id, name: 'Lost update' },
            updateMask: mask('name'),
            expectedVersion: 2n,
          }),
          Code.Aborted,
          'version',
        );
        const { project } = await api.ProjectService.getProject({ id: p.id });
        expect(project).toMatchObject({ name: 'Versioned', version: 1n });
        expect(iso(project.updatedAt)).toBe(iso(p.updatedAt));
        const ok = await api.ProjectService.updateProject({
          project: { id: p.id, name: 'Won' },
          updateMask: mask('name'),
          expectedVersion: 1n,
        });
        expect(ok.project).toMatchObject({ name: 'Won', version: 2n });
        await expectRpcError(
          api.ProjectService.updateProject({
            project: { id: p.id, name: 'Stale' },
            updateMask: mask('name'),
            expectedVersion: 1n,
          }),
          Code.Aborted,
        );
        expect((await api.ProjectService.getProject({ id: p.id })).project).toMatchObject({ name: 'Won', version: 2n });
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const p = await createProject({ name: 'Not yours' });
        await expectRpcError(
          api.ProjectService.updateProject({ project: { id: 987654321n, name: 'x' }, updateMask: mask('name') }),
          Code.NotFound,
        );
        await expectRpcError(
          other.ProjectService.updateProject({ project: { id: p.id, name: 'x' }, updateMask: mask('name') }),
          Code.NotFound,
        );
        expect((await api.ProjectService.getProject({ id: p.id })).project.name).toBe('Not yours');
      });
    });

    describe('DeleteProject', () => {
      it('deletes a project without tasks', async () => {
        const p = await createProject({ name: 'Empty' });
        await api.ProjectService.deleteProject({ id: p.id });
        await expectRpcError(api.ProjectService.getProject({ id: p.id }), Code.NotFound);
      });

      it('refuses a project with tasks (FAILED_PRECONDITION) unless force, which deletes the tasks', async () => {
        const { project, tasks } = await api.ProjectService.createProjectWithTasks({
          name: 'Busy',
          taskTitles: ['one', 'two'],
        });
        await api.TaskService.createTask({ projectId: project.id, title: 'child', parentTaskId: tasks[0]!.id });
        await expectRpcError(api.ProjectService.deleteProject({ id: project.id }), Code.FailedPrecondition, 'force');
        expect((await api.ProjectService.getProject({ id: project.id })).project.name).toBe('Busy');
        expect(await listTasks(project.id)).toHaveLength(3);

        await api.ProjectService.deleteProject({ id: project.id, force: true });
        await expectRpcError(api.ProjectService.getProject({ id: project.id }), Code.NotFound);
        for (const task of tasks) await expectRpcError(api.TaskService.getTask({ id: task.id }), Code.NotFound);
        expect(await listTasks(project.id)).toHaveLength(0);
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const p = await createProject({ name: 'Keep' });
        await expectRpcError(api.ProjectService.deleteProject({ id: 987654321n, force: true }), Code.NotFound);
        await expectRpcError(other.ProjectService.deleteProject({ id: p.id, force: true }), Code.NotFound);
        expect((await api.ProjectService.getProject({ id: p.id })).project.name).toBe('Keep');
      });
    });

    describe('CreateProjectWithTasks', () => {
      it('creates the project and one task per title, in title order, created by the key worker', async () => {
        const titles = ['write spec', 'build it', 'an early title', 'ship'];
        const res = await api.ProjectService.createProjectWithTasks({
          name: 'Bundle',
          description: 'with tasks',
          metadata: { k: 'v' },
          taskTitles: titles,
        });
        expect(res.project).toMatchObject({
          name: 'Bundle',
          description: 'with tasks',
          metadata: { k: 'v' },
          status: ProjectStatus.ACTIVE,
          version: 1n,
        });
        expect(res.tasks.map((task) => task.title)).toEqual(titles);
        const ids = res.tasks.map((task) => task.id);
        expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
        for (const task of res.tasks) {
          expect(task).toMatchObject({
            projectId: res.project.id,
            status: TaskStatus.PENDING,
            priority: TaskPriority.MEDIUM,
            createdById: tenant.workerId,
            createdBy: { id: tenant.workerId, handle: '@owner' },
            version: 1n,
          });
        }
        const listed = await listTasks(res.project.id);
        expect(listed.map((task) => task.title)).toEqual(titles);
        expect(listed.map((task) => task.id)).toEqual(res.tasks.map((task) => task.id));
      });

      it('creates a project with no tasks when no titles are given', async () => {
        const res = await api.ProjectService.createProjectWithTasks({ name: 'No tasks' });
        expect(res.project.name).toBe('No tasks');
        expect(res.tasks).toEqual([]);
      });

      it('takes created_by_id when the key has no worker', async () => {
        const res = await plain.ProjectService.createProjectWithTasks({
          name: 'Plain',
          taskTitles: ['a'],
          createdById: plainWorkerId,
        });
        expect(res.tasks[0]).toMatchObject({ createdById: plainWorkerId, createdBy: { handle: '@maker' } });
      });

      it.each([
        ['an empty title', ''],
        ['a blank title', '   '],
        ['a title of 501 characters', 't'.repeat(501)],
      ])('refuses %s with INVALID_ARGUMENT and creates nothing', async (_, bad) => {
        const before = await countProjects();
        await expectRpcError(
          api.ProjectService.createProjectWithTasks({ name: 'Invalid', taskTitles: ['fine', bad, 'also fine'] }),
          Code.InvalidArgument,
          'title',
        );
        expect(await countProjects()).toBe(before);
      });

      it('accepts a title of exactly 500 characters', async () => {
        const res = await api.ProjectService.createProjectWithTasks({ name: 'Long', taskTitles: ['t'.repeat(500)] });
        expect(res.tasks[0]!.title).toHaveLength(500);
      });

      it('refuses a created_by_id that names no worker and creates nothing', async () => {
        const before = await countProjects(plain);
        const missing = [Code.FailedPrecondition, Code.NotFound];
        await expectRpcError(
          plain.ProjectService.createProjectWithTasks({
            name: 'Orphans',
            taskTitles: ['a', 'b'],
            createdById: 987654321n,
          }),
          missing,
          'created_by_id',
        );
        // With no titles there is no task to refer to the worker, and still nothing is created.
        await expectRpcError(
          plain.ProjectService.createProjectWithTasks({ name: 'Orphans', createdById: 987654321n }),
          missing,
        );
        expect(await countProjects(plain)).toBe(before);
      });

      it('refuses a created_by_id that is a worker of another tenant', async () => {
        const before = await countProjects(plain);
        const foreign = await foreignWorkerId(plain, api);
        await expectRpcError(
          plain.ProjectService.createProjectWithTasks({ name: 'Foreign', taskTitles: ['a'], createdById: foreign }),
          [Code.FailedPrecondition, Code.NotFound],
        );
        expect(await countProjects(plain)).toBe(before);
      });

      it('without created_by_id and without a worker key: INVALID_ARGUMENT', async () => {
        await expectRpcError(
          plain.ProjectService.createProjectWithTasks({ name: 'Nobody', taskTitles: ['a'] }),
          Code.InvalidArgument,
          'created_by_id',
        );
      });

      it('rolls everything back when a fault happens after the tasks were inserted (INTERNAL)', async () => {
        const before = await countProjects();
        const tasksBefore = (
          await listAll(
            (pageToken) => api.TaskService.listTasks({ ...{ pageSize: 500 }, pageToken }),
            (r) => r.tasks,
          )
        ).items.length;
        // The fault: the statement after the task insert (their history events) fails.
        const detach = listenToStatements(t.app.database.db, (sql) => {
          if (sql.includes('insert into task_events')) throw new Error('boom');
        });
        try {
          const err = await expectRpcError(
            api.ProjectService.createProjectWithTasks({ name: 'Doomed', taskTitles: ['a', 'b', 'c'] }),
            Code.Internal,
          );
          expect(err.message).not.toContain('boom');
        } finally {
          detach();
        }
        expect(await countProjects()).toBe(before);
        expect(
          (
            await listAll(
              (pageToken) => api.TaskService.listTasks({ ...{ pageSize: 500 }, pageToken }),
              (r) => r.tasks,
            )
          ).items.length,
        ).toBe(tasksBefore);
        const { projects } = await api.ProjectService.listProjects({ pageSize: 500 });
        expect(projects.map((p) => p.name)).not.toContain('Doomed');
      });
    });

    describe('CompleteProjectTasks', () => {
      it('completes every open task in one call, returns the count, and 0 the second time', async () => {
        const { project, tasks } = await api.ProjectService.createProjectWithTasks({
          name: 'Finish',
          taskTitles: ['a', 'b', 'c', 'd'],
        });
        const done = (
          await api.TaskService.updateTask({
            task: { id: tasks[0]!.id, status: TaskStatus.COMPLETED },
            updateMask: mask('status'),
          })
        ).task;
        await api.TaskService.updateTask({
          task: { id: tasks[1]!.id, status: TaskStatus.IN_PROGRESS },
          updateMask: mask('status'),
        });
        const elsewhere = await api.ProjectService.createProjectWithTasks({ name: 'Untouched', taskTitles: ['x'] });

        const first = await api.ProjectService.completeProjectTasks({ projectId: project.id });
        expect(first.completedCount).toBe(3n);
        const second = await api.ProjectService.completeProjectTasks({ projectId: project.id });
        expect(second.completedCount).toBe(0n);

        const after = new Map((await listTasks(project.id)).map((task) => [task.id, task]));
        expect([...after.values()].every((task) => task.status === TaskStatus.COMPLETED)).toBe(true);
        expect(after.get(tasks[0]!.id)!.version).toBe(done.version); // already completed: untouched
        expect(iso(after.get(tasks[0]!.id)!.updatedAt)).toBe(iso(done.updatedAt));
        expect(after.get(tasks[1]!.id)!.version).toBe(3n);
        expect(after.get(tasks[2]!.id)!.version).toBe(2n);
        expect(after.get(tasks[3]!.id)!.version).toBe(2n);
        expect(ms(after.get(tasks[3]!.id)!.updatedAt)).toBeGreaterThan(ms(tasks[3]!.updatedAt));

        const [untouched] = await listTasks(elsewhere.project.id);
        expect(untouched).toMatchObject({ status: TaskStatus.PENDING, version: 1n });
      });

      it('returns 0 for a project without tasks', async () => {
        const p = await createProject({ name: 'Idle' });
        expect((await api.ProjectService.completeProjectTasks({ projectId: p.id })).completedCount).toBe(0n);
      });

      it('answers NOT_FOUND for a missing project and a project of another tenant', async () => {
        const { project, tasks } = await api.ProjectService.createProjectWithTasks({
          name: 'Guarded',
          taskTitles: ['a'],
        });
        await expectRpcError(
          api.ProjectService.completeProjectTasks({ projectId: 987654321n }),
          Code.NotFound,
          'project',
        );
        await expectRpcError(other.ProjectService.completeProjectTasks({ projectId: project.id }), Code.NotFound);
        expect((await api.TaskService.getTask({ id: tasks[0]!.id })).task.status).toBe(TaskStatus.PENDING);
      });
    });
  });
}
