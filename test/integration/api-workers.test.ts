/**
 * WorkerService over gRPC and Connect: create (with validation and case-insensitive unique
 * handles), get by id and by handle, list with a type filter and paging, delete (unassigning
 * tasks, refusing creators). Idempotent create: api-idempotency.test.ts; page tokens:
 * api-paging.test.ts.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Project, Worker } from '../../src/gen/taskapi/v1/resources_pb.js';
import type { CreateWorkerRequestSchema } from '../../src/gen/taskapi/v1/worker_pb.js';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, WorkerType } from '../helpers/clients.js';
import {
  Code,
  expectRpcError,
  foreignWorkerId,
  iso,
  listAll,
  workerByHandle,
  workerById,
} from '../helpers/expect-rpc.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let tenant: TestTenant;
    let api: ApiClient;
    let other: ApiClient;
    let alice: Worker;

    const createWorker = async (req: MessageInitShape<typeof CreateWorkerRequestSchema>) =>
      (await api.WorkerService.createWorker(req)).worker;
    const countWorkers = async () => (await api.WorkerService.listWorkers({ pageSize: 500 })).workers.length;

    beforeAll(async () => {
      tenant = await t.tenant();
      api = t.client(protocol, tenant.headers);
      other = t.client(protocol, (await t.tenant()).headers);
    });

    describe('CreateWorker', () => {
      it('creates a human with handle, type and email', async () => {
        const before = Date.now();
        alice = await createWorker({ handle: '@alice', type: WorkerType.HUMAN, email: 'alice@example.com' });
        expect(alice).toMatchObject({ handle: '@alice', type: WorkerType.HUMAN, email: 'alice@example.com' });
        expect(alice.id).toBeGreaterThan(0n);
        expect(alice.capabilities).toEqual([]);
        expect(Date.parse(iso(alice.createdAt)!)).toBeGreaterThan(before - 60_000);
      });

      it('creates an agent with capabilities (duplicates dropped, order kept)', async () => {
        const agent = await createWorker({
          handle: '@researcher',
          type: WorkerType.AGENT,
          capabilities: ['search', 'summarize', 'search'],
        });
        expect(agent).toMatchObject({
          handle: '@researcher',
          type: WorkerType.AGENT,
          capabilities: ['search', 'summarize'],
        });
        expect(agent.email).toBe('');
        expect(agent.id).toBeGreaterThan(alice.id);
      });

      it('defaults the type to human', async () => {
        const w = await createWorker({ handle: '@plain' });
        expect(w.type).toBe(WorkerType.HUMAN);
      });

      it('refuses a handle that exists in another case with ALREADY_EXISTS', async () => {
        const before = await countWorkers();
        await expectRpcError(api.WorkerService.createWorker({ handle: '@ALICE' }), Code.AlreadyExists, 'handle');
        await expectRpcError(
          api.WorkerService.createWorker({ handle: '@alice', type: WorkerType.AGENT }),
          Code.AlreadyExists,
        );
        expect(await countWorkers()).toBe(before);
      });

      it('allows the same handle in another tenant', async () => {
        const { worker } = await other.WorkerService.createWorker({ handle: '@alice' });
        expect(worker.handle).toBe('@alice');
      });

      it.each(['alice', '@', '@with space', '@bad/char', `@${'x'.repeat(65)}`, ''])(
        'refuses the handle %j with INVALID_ARGUMENT naming handle',
        async (handle) => {
          await expectRpcError(api.WorkerService.createWorker({ handle }), Code.InvalidArgument, 'handle');
        },
      );

      it.each(['not-an-email', 'a@b', '@example.com', 'a b@example.com'])(
        'refuses the email %j with INVALID_ARGUMENT naming email',
        async (email) => {
          await expectRpcError(
            api.WorkerService.createWorker({ handle: '@mailer', email }),
            Code.InvalidArgument,
            'email',
          );
        },
      );

      it('refuses an unknown type', async () => {
        // (An unknown enum name in Connect JSON: isolation.test.ts, bad input at the edge.)
        await expectRpcError(
          api.WorkerService.createWorker({ handle: '@typed', type: 7 as WorkerType }),
          Code.InvalidArgument,
          'type',
        );
      });
    });

    describe('GetWorker', () => {
      it('finds a worker by id', async () => {
        const { worker } = await api.WorkerService.getWorker(workerById(alice.id));
        expect(worker).toMatchObject({
          id: alice.id,
          handle: '@alice',
          type: WorkerType.HUMAN,
          email: 'alice@example.com',
        });
        expect(iso(worker.createdAt)).toBe(iso(alice.createdAt));
      });

      it('finds a worker by handle, in any case', async () => {
        expect((await api.WorkerService.getWorker(workerByHandle('@alice'))).worker.id).toBe(alice.id);
        expect((await api.WorkerService.getWorker(workerByHandle('@ALICE'))).worker.id).toBe(alice.id);
      });

      it('answers NOT_FOUND for a missing id or handle, and for a worker of another tenant', async () => {
        await expectRpcError(api.WorkerService.getWorker(workerById(987654321n)), Code.NotFound, 'worker');
        await expectRpcError(api.WorkerService.getWorker(workerByHandle('@nobody')), Code.NotFound);
        const foreign = await foreignWorkerId(api, other);
        expect((await other.WorkerService.getWorker(workerById(foreign))).worker.id).toBe(foreign);
        await expectRpcError(api.WorkerService.getWorker(workerById(foreign)), Code.NotFound);
        await expectRpcError(api.WorkerService.getWorker(workerByHandle('@foreign0')), Code.NotFound);
      });

      it('refuses a request with neither id nor handle', async () => {
        await expectRpcError(api.WorkerService.getWorker({}), Code.InvalidArgument);
      });
    });

    describe('ListWorkers', () => {
      let agents: bigint[];
      let humans: bigint[];

      beforeAll(async () => {
        for (let i = 0; i < 5; i++) await createWorker({ handle: `@agent${i}`, type: WorkerType.AGENT });
        for (let i = 0; i < 2; i++) await createWorker({ handle: `@human${i}`, type: WorkerType.HUMAN });
        const all = (await api.WorkerService.listWorkers({ pageSize: 500 })).workers;
        agents = all.filter((w) => w.type === WorkerType.AGENT).map((w) => w.id);
        humans = all.filter((w) => w.type === WorkerType.HUMAN).map((w) => w.id);
      });

      it('lists every worker of the tenant, oldest first, and only those', async () => {
        const { workers, nextPageToken } = await api.WorkerService.listWorkers({});
        const ids = workers.map((w) => w.id);
        expect(ids).toEqual([...ids].sort((a, b) => Number(a - b)));
        expect(ids.length).toBe(agents.length + humans.length);
        expect(agents.length).toBe(6); // @researcher and five more
        expect(humans.length).toBe(4); // @alice, @plain and two more
        expect(nextPageToken).toBe('');
        expect(workers.map((w) => w.handle)).not.toContain('@ALICE');
      });

      it('filters by type', async () => {
        const { workers } = await api.WorkerService.listWorkers({ type: WorkerType.AGENT });
        expect(workers.map((w) => w.id)).toEqual(agents);
        expect(workers.every((w) => w.type === WorkerType.AGENT)).toBe(true);
        const humansOnly = await api.WorkerService.listWorkers({ type: WorkerType.HUMAN });
        expect(humansOnly.workers.map((w) => w.id)).toEqual(humans);
      });

      it('pages with page_size and page_token, without repeats or gaps', async () => {
        const first = await api.WorkerService.listWorkers({ type: WorkerType.AGENT, pageSize: 4 });
        expect(first.workers).toHaveLength(4);
        expect(first.nextPageToken).toBeTruthy();
        const second = await api.WorkerService.listWorkers({
          type: WorkerType.AGENT,
          pageSize: 4,
          pageToken: first.nextPageToken,
        });
        expect(second.workers).toHaveLength(2);
        expect(second.nextPageToken).toBe('');
        expect([...first.workers, ...second.workers].map((w) => w.id)).toEqual(agents);
        const { items, pages } = await listAll(
          (pageToken) => api.WorkerService.listWorkers({ pageSize: 1, pageToken }),
          (r) => r.workers,
        );
        expect(pages).toBe(agents.length + humans.length);
        expect(new Set(items.map((w) => w.id))).toEqual(new Set([...agents, ...humans]));
      });

      it('refuses a tampered token, a token of other filters, and page_size over 500', async () => {
        const first = await api.WorkerService.listWorkers({ type: WorkerType.AGENT, pageSize: 2 });
        const token: string = first.nextPageToken;
        const tampered = `${token.slice(0, 5)}${token[5] === 'A' ? 'B' : 'A'}${token.slice(6)}`;
        await expectRpcError(
          api.WorkerService.listWorkers({ type: WorkerType.AGENT, pageSize: 2, pageToken: tampered }),
          Code.InvalidArgument,
          'page_token',
        );
        await expectRpcError(
          api.WorkerService.listWorkers({ type: WorkerType.HUMAN, pageSize: 2, pageToken: token }),
          Code.InvalidArgument,
          'page_token',
        );
        await expectRpcError(api.WorkerService.listWorkers({ pageSize: 501 }), Code.InvalidArgument, 'page_size');
      });

      it('shows nothing of another tenant', async () => {
        const theirs = (await other.WorkerService.listWorkers({})).workers.map((w) => w.handle);
        expect(theirs).toContain('@alice');
        expect(theirs).not.toContain('@researcher');
        const ours = (await api.WorkerService.listWorkers({ pageSize: 500 })).workers.map((w) => w.handle);
        expect(ours.filter((h) => h.startsWith('@foreign'))).toEqual([]);
      });
    });

    describe('DeleteWorker', () => {
      let project: Project;
      let creator: Worker;

      beforeAll(async () => {
        project = (await api.ProjectService.createProject({ name: 'Deletions' })).project;
        creator = await createWorker({ handle: '@creator' });
      });

      it('deletes a worker and unassigns its tasks', async () => {
        const assignee = await createWorker({ handle: '@assignee', type: WorkerType.AGENT });
        const create = (title: string) =>
          api.TaskService.createTask({
            projectId: project.id,
            title,
            createdById: creator.id,
            assigneeId: assignee.id,
          });
        const { task: a } = await create('first');
        const { task: b } = await create('second');
        expect(a.assigneeId).toBe(assignee.id);
        expect(a.assignee?.handle).toBe('@assignee');

        await api.WorkerService.deleteWorker({ id: assignee.id });

        await expectRpcError(api.WorkerService.getWorker(workerById(assignee.id)), Code.NotFound);
        for (const before of [a, b]) {
          const { task } = await api.TaskService.getTask({ id: before.id });
          expect(task.assigneeId).toBeUndefined();
          expect(task.assignee).toBeUndefined();
          expect(task.version).toBe(before.version + 1n);
          expect(task.createdById).toBe(creator.id);
        }
        const { tasks } = await api.TaskService.listTasks({ projectId: project.id, assigneeId: assignee.id });
        expect(tasks).toEqual([]);
      });

      it('refuses to delete a worker who created tasks (FAILED_PRECONDITION) and keeps it', async () => {
        await expectRpcError(api.WorkerService.deleteWorker({ id: creator.id }), Code.FailedPrecondition);
        expect((await api.WorkerService.getWorker(workerById(creator.id))).worker.handle).toBe('@creator');
      });

      it('deletes a worker without tasks; then the handle is free again', async () => {
        const w = await createWorker({ handle: '@temp' });
        await api.WorkerService.deleteWorker({ id: w.id });
        await expectRpcError(api.WorkerService.getWorker(workerByHandle('@temp')), Code.NotFound);
        const again = await createWorker({ handle: '@TEMP' });
        expect(again.id).not.toBe(w.id);
      });

      it('answers NOT_FOUND for a missing worker, a deleted one, and one of another tenant', async () => {
        await expectRpcError(api.WorkerService.deleteWorker({ id: 987654321n }), Code.NotFound);
        const w = await createWorker({ handle: '@twice' });
        await api.WorkerService.deleteWorker({ id: w.id });
        await expectRpcError(api.WorkerService.deleteWorker({ id: w.id }), Code.NotFound);
        const foreign = await foreignWorkerId(api, other, '@foreign-del');
        await expectRpcError(api.WorkerService.deleteWorker({ id: foreign }), Code.NotFound);
        expect((await other.WorkerService.getWorker(workerById(foreign))).worker.id).toBe(foreign);
      });

      it('refuses an id of 0 with INVALID_ARGUMENT', async () => {
        await expectRpcError(api.WorkerService.deleteWorker({}), Code.InvalidArgument, 'id');
      });
    });
  });
}
