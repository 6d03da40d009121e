/**
 * The cross-tenant matrix (SPEC §5), over gRPC and Connect: for EVERY RPC of every service, what
 * tenant B can do to tenant A's data, by ids and handles of A's rows. The list of RPCs comes
 * from the generated service descriptors, so an RPC added to a .proto without a case in CASES
 * fails this suite. At the end, A's data must be exactly as before.
 * Also runs in schema-per-tenant mode (vitest projects *-schema).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Project, Task, Worker } from '../../src/gen/taskapi/v1/resources_pb.js';
import { PROTOCOLS, type Protocol, startTestApp, type TestApp } from '../helpers/app.js';
import {
  type ApiClient,
  ProjectStatus,
  SERVICES,
  type ServiceName,
  TaskOrderBy,
  TaskPriority,
  TaskStatus,
  TaskView,
  WorkerType,
} from '../helpers/clients.js';
import { Code, expectRpcError, mask, workerByHandle, workerById } from '../helpers/expect-rpc.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

let handles = 0;
const uniqueHandle = (prefix: string) => `@${prefix}${++handles}x${Date.now().toString(36)}`;

/** What the cases work with: A's rows, and B with rows of its own. */
interface Matrix {
  protocol: Protocol;
  a: { worker: Worker; project: Project; task: Task; subtask: Task };
  b: { api: ApiClient; worker: Worker; project: Project; task: Task };
  /** B's tenant key, without a tenant's rights on TenantService. */
  bKey: ApiClient;
}

type Case = (m: Matrix) => Promise<void>;
/** One case per RPC, by service name and the method's local (lowerCamelCase) name. */
type Cases = { [S in ServiceName]: Partial<Record<keyof (typeof SERVICES)[S]['method'], Case>> };

const ids = (items: readonly { id: bigint }[]) => items.map((x) => x.id);

/** TenantService is the admin's: a tenant's key (with or without its tenant) is refused. */
const adminOnly =
  (call: (c: ApiClient, m: Matrix) => Promise<unknown>): Case =>
  async (m) => {
    await expectRpcError(call(m.bKey, m), Code.Unauthenticated);
    await expectRpcError(call(m.b.api, m), Code.Unauthenticated);
  };

const CASES: Cases = {
  TenantService: {
    createTenant: adminOnly((c) => c.TenantService.createTenant({ name: 'x', subdomain: uniqueHandle('x').slice(1) })),
    getTenant: adminOnly((c) => c.TenantService.getTenant({ id: 1n })),
    listTenants: adminOnly((c) => c.TenantService.listTenants({})),
    createApiKey: adminOnly((c, { a }) => c.TenantService.createApiKey({ tenantId: 1n, workerId: a.worker.id })),
    revokeApiKey: adminOnly((c) => c.TenantService.revokeApiKey({ tenantId: 1n, apiKeyId: 1n })),
  },
  WorkerService: {
    async createWorker({ a, b }) {
      // Handles are per tenant: B may use A's, and gets a worker of its own.
      const { worker } = await b.api.WorkerService.createWorker({ handle: a.worker.handle });
      expect(worker.handle).toBe(a.worker.handle);
      await b.api.WorkerService.deleteWorker({ id: worker.id });
    },
    async getWorker({ a, b }) {
      await expectRpcError(b.api.WorkerService.getWorker(workerById(a.worker.id)), Code.NotFound);
      await expectRpcError(b.api.WorkerService.getWorker(workerByHandle(a.worker.handle)), Code.NotFound);
      await expectRpcError(b.api.WorkerService.getWorker(workerByHandle(a.worker.handle.toUpperCase())), Code.NotFound);
    },
    async listWorkers({ a, b }) {
      const all = ids((await b.api.WorkerService.listWorkers({ pageSize: 500 })).workers);
      expect(all).toContain(b.worker.id);
      expect(all).not.toContain(a.worker.id);
      const agents = ids((await b.api.WorkerService.listWorkers({ type: WorkerType.AGENT, pageSize: 500 })).workers);
      expect(agents).not.toContain(a.worker.id);
    },
    async deleteWorker({ a, b }) {
      await expectRpcError(b.api.WorkerService.deleteWorker({ id: a.worker.id }), Code.NotFound);
    },
  },
  ProjectService: {
    async createProject({ b, protocol }) {
      // A request_id A used is B's own: B never gets A's stored response.
      const request = { name: `idempotent ${protocol}`, requestId: `shared-request-${protocol}` };
      const aApi = matrixA.get(protocol)!;
      const first = (await aApi.ProjectService.createProject(request)).project;
      expect((await aApi.ProjectService.createProject(request)).project).toEqual(first);
      const theirs = (await b.api.ProjectService.createProject(request)).project;
      await expectRpcError(b.api.ProjectService.getProject({ id: first.id }), Code.NotFound);
      expect((await b.api.ProjectService.getProject({ id: theirs.id })).project).toEqual(theirs);
      await aApi.ProjectService.deleteProject({ id: first.id });
      await b.api.ProjectService.deleteProject({ id: theirs.id });
    },
    async createProjectWithTasks({ a, b, protocol }) {
      const name = `B with A creator ${protocol}`;
      await expectRpcError(
        b.api.ProjectService.createProjectWithTasks({ name, taskTitles: ['one', 'two'], createdById: a.worker.id }),
        Code.FailedPrecondition,
      );
      const { projects } = await b.api.ProjectService.listProjects({ pageSize: 500 });
      expect(projects.map((p) => p.name)).not.toContain(name);
    },
    async getProject({ a, b }) {
      await expectRpcError(b.api.ProjectService.getProject({ id: a.project.id }), Code.NotFound);
    },
    async listProjects({ a, b }) {
      const all = ids((await b.api.ProjectService.listProjects({ pageSize: 500 })).projects);
      expect(all).toContain(b.project.id);
      expect(all).not.toContain(a.project.id);
      const active = ids(
        (await b.api.ProjectService.listProjects({ status: ProjectStatus.ACTIVE, pageSize: 500 })).projects,
      );
      expect(active).not.toContain(a.project.id);
    },
    async updateProject({ a, b }) {
      await expectRpcError(
        b.api.ProjectService.updateProject({ project: { id: a.project.id, name: 'pwned' }, updateMask: mask('name') }),
        Code.NotFound,
      );
      await expectRpcError(
        b.api.ProjectService.updateProject({
          project: { id: a.project.id, name: 'pwned', status: ProjectStatus.ARCHIVED, metadata: { x: 1 } },
          updateMask: mask('name,status,metadata'),
          expectedVersion: a.project.version,
        }),
        Code.NotFound,
      );
    },
    async deleteProject({ a, b }) {
      await expectRpcError(b.api.ProjectService.deleteProject({ id: a.project.id, force: true }), Code.NotFound);
      await expectRpcError(b.api.ProjectService.deleteProject({ id: a.project.id }), Code.NotFound);
    },
    async completeProjectTasks({ a, b }) {
      await expectRpcError(b.api.ProjectService.completeProjectTasks({ projectId: a.project.id }), Code.NotFound);
    },
  },
  TaskService: {
    async createTask({ a, b }) {
      const create = (fields: {
        projectId?: bigint;
        createdById?: bigint;
        assigneeId?: bigint;
        parentTaskId?: bigint;
      }) =>
        b.api.TaskService.createTask({ projectId: b.project.id, createdById: b.worker.id, title: 'into A', ...fields });
      await expectRpcError(create({ projectId: a.project.id }), Code.FailedPrecondition, 'project_id');
      await expectRpcError(create({ assigneeId: a.worker.id }), Code.FailedPrecondition, 'assignee_id');
      await expectRpcError(create({ createdById: a.worker.id }), Code.FailedPrecondition, 'created_by_id');
      await expectRpcError(create({ parentTaskId: a.task.id }), Code.FailedPrecondition, 'parent_task_id');
      expect(ids((await b.api.TaskService.listTasks({ projectId: b.project.id, pageSize: 500 })).tasks)).toEqual([
        b.task.id,
      ]);
    },
    async getTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.getTask({ id }), Code.NotFound);
        await expectRpcError(b.api.TaskService.getTask({ id, view: TaskView.FULL }), Code.NotFound);
      }
    },
    async listTasks({ a, b }) {
      const list = async (request: Parameters<ApiClient['TaskService']['listTasks']>[0]) =>
        ids((await b.api.TaskService.listTasks({ pageSize: 500, ...request })).tasks);
      for (const filter of [
        { projectId: a.project.id },
        { projectId: a.project.id, view: TaskView.FULL },
        { assigneeId: a.worker.id },
        { createdById: a.worker.id },
        { parentTaskId: a.task.id },
        { tagsAll: ['a-only'] },
        { priority: TaskPriority.HIGH },
      ]) {
        expect(
          await list(filter),
          JSON.stringify(filter, (_, v) => (typeof v === 'bigint' ? `${v}` : v)),
        ).toEqual([]);
      }
      // Unfiltered lists in every order hold B's tasks only.
      for (const request of [
        {},
        { orderBy: TaskOrderBy.PRIORITY },
        { orderBy: TaskOrderBy.DUE_DATE },
        { statuses: [TaskStatus.PENDING] },
        { view: TaskView.FULL },
      ]) {
        expect(await list(request)).toEqual([b.task.id]);
      }
    },
    async updateTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(
          b.api.TaskService.updateTask({ task: { id, title: 'pwned' }, updateMask: mask('title') }),
          Code.NotFound,
        );
        await expectRpcError(
          b.api.TaskService.updateTask({
            task: { id, status: TaskStatus.COMPLETED },
            updateMask: mask('status'),
            expectedVersion: 1n,
          }),
          Code.NotFound,
        );
      }
      // B's own task pointed into A.
      await expectRpcError(
        b.api.TaskService.updateTask({
          task: { id: b.task.id, assigneeId: a.worker.id },
          updateMask: mask('assigneeId'),
        }),
        Code.FailedPrecondition,
        'assignee_id',
      );
      await expectRpcError(
        b.api.TaskService.updateTask({
          task: { id: b.task.id, parentTaskId: a.task.id },
          updateMask: mask('parentTaskId'),
        }),
        Code.FailedPrecondition,
        'parent_task_id',
      );
      expect((await b.api.TaskService.getTask({ id: b.task.id })).task).toEqual(b.task);
    },
    async deleteTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.deleteTask({ id }), Code.NotFound);
        await expectRpcError(b.api.TaskService.deleteTask({ id, expectedVersion: 1n }), Code.NotFound);
      }
    },
    async assignTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.assignTask({ id, workerId: b.worker.id }), Code.NotFound);
        await expectRpcError(b.api.TaskService.assignTask({ id }), Code.NotFound);
        await expectRpcError(
          b.api.TaskService.assignTask({ id, workerId: b.worker.id, leaseToken: 1n }),
          Code.NotFound,
        );
      }
      await expectRpcError(
        b.api.TaskService.assignTask({ id: b.task.id, workerId: a.worker.id }),
        Code.FailedPrecondition,
        'worker_id',
      );
    },
    async claimTask({ a, b }) {
      await expectRpcError(b.api.TaskService.claimTask({ workerId: a.worker.id }), Code.NotFound);
      await expectRpcError(
        b.api.TaskService.claimTask({ workerId: b.worker.id, projectId: a.project.id }),
        Code.NotFound,
      );
      // A's task carries this tag; B's claim by it finds nothing (and leaves B's own tasks alone).
      expect((await b.api.TaskService.claimTask({ workerId: b.worker.id, tagsAll: ['a-only'] })).task).toBeUndefined();
    },
    async heartbeatTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.heartbeatTask({ id, leaseToken: 1n }), Code.NotFound);
      }
    },
    async releaseTask({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(
          b.api.TaskService.releaseTask({ id, leaseToken: 1n, status: TaskStatus.COMPLETED }),
          Code.NotFound,
        );
      }
    },
    async getTaskTree({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.getTaskTree({ id }), Code.NotFound);
        await expectRpcError(b.api.TaskService.getTaskTree({ id, maxDepth: 1 }), Code.NotFound);
      }
    },
    async watchTasks({ a, b }) {
      // B's stream on A's project: nothing of A's ever arrives (row-level security); the stream
      // only ends at its deadline.
      const received: unknown[] = [];
      const watching = (async () => {
        for await (const res of b.api.TaskService.watchTasks({ projectId: a.project.id }, { timeoutMs: 800 }))
          received.push(res);
      })();
      await expectRpcError(watching, Code.DeadlineExceeded);
      expect(received).toEqual([]);
    },
    async listTaskEvents({ a, b }) {
      for (const id of [a.task.id, a.subtask.id]) {
        await expectRpcError(b.api.TaskService.listTaskEvents({ taskId: id }), Code.NotFound);
      }
      await expectRpcError(b.api.TaskService.listTaskEvents({ projectId: a.project.id }), Code.NotFound);
    },
  },
};

/** A's client per protocol (the createProject case needs to act as A too). */
const matrixA = new Map<Protocol, ApiClient>();

for (const protocol of PROTOCOLS) {
  describe(`over ${protocol}`, () => {
    let m: Matrix;
    let asA: ApiClient;
    let before: unknown;

    /** Everything of A's data the matrix could touch, as A reads it. */
    async function snapshotA() {
      const { worker, project, task, subtask } = m.a;
      return {
        worker: (await asA.WorkerService.getWorker(workerById(worker.id))).worker,
        byHandle: (await asA.WorkerService.getWorker(workerByHandle(worker.handle))).worker,
        project: (await asA.ProjectService.getProject({ id: project.id })).project,
        task: (await asA.TaskService.getTask({ id: task.id, view: TaskView.FULL })).task,
        subtask: (await asA.TaskService.getTask({ id: subtask.id, view: TaskView.FULL })).task,
        tasks: (await asA.TaskService.listTasks({ projectId: project.id })).tasks,
        workers: (await asA.WorkerService.listWorkers({ pageSize: 500 })).workers,
        projects: (await asA.ProjectService.listProjects({ pageSize: 500 })).projects,
      };
    }

    beforeAll(async () => {
      // Fresh tenants with plain keys: their contents are exactly what this block creates.
      const tenantA = await t.tenant();
      const tenantB = await t.tenant();
      asA = t.client(protocol, tenantA.headers);
      matrixA.set(protocol, asA);
      const bApi = t.client(protocol, tenantB.headers);
      // In schema mode every tenant numbers its rows from 1: filler rows push A's ids past
      // B's, so that an id of A names nothing in B (in row mode ids are unique anyway).
      for (let i = 0; i < 2; i++) {
        const { worker: w } = await asA.WorkerService.createWorker({ handle: uniqueHandle('filler') });
        const { project: p } = await asA.ProjectService.createProject({ name: `filler ${i}` });
        await asA.TaskService.createTask({ projectId: p.id, title: 'filler', createdById: w.id });
      }
      const { worker } = await asA.WorkerService.createWorker({
        handle: uniqueHandle('onlyina'),
        type: WorkerType.AGENT,
        capabilities: ['search'],
      });
      const { project } = await asA.ProjectService.createProject({
        name: `A secret ${protocol}`,
        description: 'belongs to A',
        metadata: { owner: 'A' },
      });
      const { task } = await asA.TaskService.createTask({
        projectId: project.id,
        title: 'A task',
        tags: ['a-only'],
        assigneeId: worker.id,
        createdById: worker.id,
        priority: TaskPriority.HIGH,
      });
      const { task: subtask } = await asA.TaskService.createTask({
        projectId: project.id,
        title: 'A subtask',
        parentTaskId: task.id,
        createdById: worker.id,
      });
      const { worker: bWorker } = await bApi.WorkerService.createWorker({
        handle: uniqueHandle('inb'),
        type: WorkerType.HUMAN,
      });
      const { project: bProject } = await bApi.ProjectService.createProject({ name: `B project ${protocol}` });
      const { task: bTask } = await bApi.TaskService.createTask({
        projectId: bProject.id,
        title: 'B task',
        createdById: bWorker.id,
      });
      m = {
        protocol,
        a: { worker, project, task, subtask },
        b: { api: bApi, worker: bWorker, project: bProject, task: bTask },
        bKey: t.client(protocol, { authorization: `Bearer ${tenantB.apiKey}` }),
      };
      before = await snapshotA();
      // Precondition of every NOT_FOUND below: A's ids are not also B's ids.
      expect(bWorker.id).not.toBe(worker.id);
      expect(bProject.id).not.toBe(project.id);
      expect([task.id, subtask.id]).not.toContain(bTask.id);
    });

    for (const [serviceName, service] of Object.entries(SERVICES) as [ServiceName, (typeof SERVICES)[ServiceName]][]) {
      for (const method of service.methods) {
        it(`${service.name}.${method.name}: B cannot reach A's data`, async () => {
          const run = (CASES[serviceName] as Record<string, Case | undefined>)[method.localName];
          if (!run) {
            expect.fail(
              `${service.name}.${method.name} has no cross-tenant case: add one to CASES in isolation-matrix.test.ts`,
            );
          }
          await run(m);
        });
      }
    }

    it("A's data is unchanged afterwards (same versions, same fields)", async () => {
      const after = await snapshotA();
      expect(after).toEqual(before);
      expect(after.task.version).toBe(m.a.task.version);
      expect(after.project.version).toBe(m.a.project.version);
      expect(after.task.assigneeId).toBe(m.a.worker.id);
      expect(after.task.status).toBe(TaskStatus.PENDING);
      expect(ids(after.task.subtasks)).toEqual([m.a.subtask.id]);
    });
  });
}
