/**
 * WorkerService over gRPC and Connect: create (with validation and case-insensitive unique
 * handles), get by id and by handle, list with a type filter and paging, delete (unassigning
 * tasks, refusing creators), and idempotent create.
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

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let tenant: TestTenant;
    let api: ApiClient;
    let other: ApiClient;
    let alice: Json;

    const createWorker = async (req: Json): Promise<Json> => (await api.call('WorkerService', 'CreateWorker', req)).worker;
    const countWorkers = async () => (await listAll(api, 'WorkerService', 'ListWorkers', 'workers', { pageSize: 500 })).items.length;

    beforeAll(async () => {
      tenant = await t.tenant();
      api = t.client(protocol, tenant.headers);
      other = t.client(protocol, (await t.tenant()).headers);
    });

    describe('CreateWorker', () => {
      it('creates a human with handle, type and email', async () => {
        const before = Date.now();
        alice = await createWorker({ handle: '@alice', type: 'WORKER_TYPE_HUMAN', email: 'alice@example.com' });
        expect(alice).toMatchObject({ handle: '@alice', type: 'WORKER_TYPE_HUMAN', email: 'alice@example.com' });
        expect(alice.id).toMatch(/^[1-9]\d*$/);
        expect(alice.capabilities).toBeUndefined();
        expect(Date.parse(alice.createdAt)).toBeGreaterThan(before - 60_000);
      });

      it('creates an agent with capabilities (duplicates dropped, order kept)', async () => {
        const agent = await createWorker({ handle: '@researcher', type: 'WORKER_TYPE_AGENT', capabilities: ['search', 'summarize', 'search'] });
        expect(agent).toMatchObject({ handle: '@researcher', type: 'WORKER_TYPE_AGENT', capabilities: ['search', 'summarize'] });
        expect(agent.email).toBeUndefined();
        expect(BigInt(agent.id)).toBeGreaterThan(BigInt(alice.id));
      });

      it('defaults the type to human', async () => {
        const w = await createWorker({ handle: '@plain' });
        expect(w.type).toBe('WORKER_TYPE_HUMAN');
      });

      it('refuses a handle that exists in another case with ALREADY_EXISTS', async () => {
        const before = await countWorkers();
        await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@ALICE' }), 'ALREADY_EXISTS', 'handle');
        await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@alice', type: 'WORKER_TYPE_AGENT' }), 'ALREADY_EXISTS');
        expect(await countWorkers()).toBe(before);
      });

      it('allows the same handle in another tenant', async () => {
        const { worker } = await other.call('WorkerService', 'CreateWorker', { handle: '@alice' });
        expect(worker.handle).toBe('@alice');
      });

      it.each(['alice', '@', '@with space', '@bad/char', `@${'x'.repeat(65)}`, ''])('refuses the handle %j with INVALID_ARGUMENT naming handle', async (handle) => {
        await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle }), 'INVALID_ARGUMENT', 'handle');
      });

      it.each(['not-an-email', 'a@b', '@example.com', 'a b@example.com'])('refuses the email %j with INVALID_ARGUMENT naming email', async (email) => {
        await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@mailer', email }), 'INVALID_ARGUMENT', 'email');
      });

      it('refuses an unknown type', async () => {
        if (protocol === 'grpc') {
          await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@typed', type: 7 }), 'INVALID_ARGUMENT', 'type');
        } else {
          await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@typed', type: 'WORKER_TYPE_ROBOT' }), 'INVALID_ARGUMENT');
        }
      });
    });

    describe('GetWorker', () => {
      it('finds a worker by id', async () => {
        const { worker } = await api.call('WorkerService', 'GetWorker', { id: alice.id });
        expect(worker).toMatchObject({ id: alice.id, handle: '@alice', type: 'WORKER_TYPE_HUMAN', email: 'alice@example.com' });
        expect(iso(worker.createdAt)).toBe(iso(alice.createdAt));
      });

      it('finds a worker by handle, in any case', async () => {
        expect((await api.call('WorkerService', 'GetWorker', { handle: '@alice' })).worker.id).toBe(alice.id);
        expect((await api.call('WorkerService', 'GetWorker', { handle: '@ALICE' })).worker.id).toBe(alice.id);
      });

      it('answers NOT_FOUND for a missing id or handle, and for a worker of another tenant', async () => {
        await expectRpcError(api.call('WorkerService', 'GetWorker', { id: '987654321' }), 'NOT_FOUND', 'worker');
        await expectRpcError(api.call('WorkerService', 'GetWorker', { handle: '@nobody' }), 'NOT_FOUND');
        const foreign = await foreignWorkerId(api, other);
        expect((await other.call('WorkerService', 'GetWorker', { id: foreign })).worker.id).toBe(foreign);
        await expectRpcError(api.call('WorkerService', 'GetWorker', { id: foreign }), 'NOT_FOUND');
        await expectRpcError(api.call('WorkerService', 'GetWorker', { handle: '@foreign0' }), 'NOT_FOUND');
      });

      it('refuses a request with neither id nor handle', async () => {
        await expectRpcError(api.call('WorkerService', 'GetWorker', {}), 'INVALID_ARGUMENT');
      });
    });

    describe('ListWorkers', () => {
      let agents: string[];
      let humans: string[];

      beforeAll(async () => {
        for (let i = 0; i < 5; i++) await createWorker({ handle: `@agent${i}`, type: 'WORKER_TYPE_AGENT' });
        for (let i = 0; i < 2; i++) await createWorker({ handle: `@human${i}`, type: 'WORKER_TYPE_HUMAN' });
        const all = (await api.call('WorkerService', 'ListWorkers', { pageSize: 500 })).workers as Json[];
        agents = all.filter((w) => w.type === 'WORKER_TYPE_AGENT').map((w) => w.id);
        humans = all.filter((w) => w.type === 'WORKER_TYPE_HUMAN').map((w) => w.id);
      });

      it('lists every worker of the tenant, oldest first, and only those', async () => {
        const { workers, nextPageToken } = await api.call('WorkerService', 'ListWorkers', {});
        const ids = workers.map((w: Json) => w.id);
        expect(ids).toEqual([...ids].sort((a, b) => Number(BigInt(a) - BigInt(b))));
        expect(ids.length).toBe(agents.length + humans.length);
        expect(agents.length).toBe(6); // @researcher and five more
        expect(humans.length).toBe(4); // @alice, @plain and two more
        expect(nextPageToken).toBeUndefined();
        expect(workers.map((w: Json) => w.handle)).not.toContain('@ALICE');
      });

      it('filters by type', async () => {
        const { workers } = await api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT' });
        expect(workers.map((w: Json) => w.id)).toEqual(agents);
        expect(workers.every((w: Json) => w.type === 'WORKER_TYPE_AGENT')).toBe(true);
        const humansOnly = await api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_HUMAN' });
        expect(humansOnly.workers.map((w: Json) => w.id)).toEqual(humans);
      });

      it('pages with page_size and page_token, without repeats or gaps', async () => {
        const first = await api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT', pageSize: 4 });
        expect(first.workers).toHaveLength(4);
        expect(first.nextPageToken).toBeTruthy();
        const second = await api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT', pageSize: 4, pageToken: first.nextPageToken });
        expect(second.workers).toHaveLength(2);
        expect(second.nextPageToken).toBeUndefined();
        expect([...first.workers, ...second.workers].map((w: Json) => w.id)).toEqual(agents);
        const { items, pages } = await listAll(api, 'WorkerService', 'ListWorkers', 'workers', { pageSize: 1 });
        expect(pages).toBe(agents.length + humans.length);
        expect(items.map((w) => w.id).sort()).toEqual([...agents, ...humans].sort());
      });

      it('refuses a tampered token, a token of other filters, and page_size over 500', async () => {
        const first = await api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT', pageSize: 2 });
        const token: string = first.nextPageToken;
        const tampered = `${token.slice(0, 5)}${token[5] === 'A' ? 'B' : 'A'}${token.slice(6)}`;
        await expectRpcError(api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_AGENT', pageSize: 2, pageToken: tampered }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(api.call('WorkerService', 'ListWorkers', { type: 'WORKER_TYPE_HUMAN', pageSize: 2, pageToken: token }), 'INVALID_ARGUMENT', 'page_token');
        await expectRpcError(api.call('WorkerService', 'ListWorkers', { pageSize: 501 }), 'INVALID_ARGUMENT', 'page_size');
      });

      it('shows nothing of another tenant', async () => {
        const theirs = (await other.call('WorkerService', 'ListWorkers', {})).workers.map((w: Json) => w.handle);
        expect(theirs).toContain('@alice');
        expect(theirs).not.toContain('@researcher');
        const ours = (await api.call('WorkerService', 'ListWorkers', { pageSize: 500 })).workers.map((w: Json) => w.handle);
        expect(ours.filter((h: string) => h.startsWith('@foreign'))).toEqual([]);
      });
    });

    describe('DeleteWorker', () => {
      let project: Json;
      let creator: Json;

      beforeAll(async () => {
        project = (await api.call('ProjectService', 'CreateProject', { name: 'Deletions' })).project;
        creator = await createWorker({ handle: '@creator' });
      });

      it('deletes a worker and unassigns its tasks', async () => {
        const assignee = await createWorker({ handle: '@assignee', type: 'WORKER_TYPE_AGENT' });
        const create = (title: string) =>
          api.call('TaskService', 'CreateTask', { projectId: project.id, title, createdById: creator.id, assigneeId: assignee.id });
        const { task: a } = await create('first');
        const { task: b } = await create('second');
        expect(a.assigneeId).toBe(assignee.id);
        expect(a.assignee.handle).toBe('@assignee');

        await api.call('WorkerService', 'DeleteWorker', { id: assignee.id });

        await expectRpcError(api.call('WorkerService', 'GetWorker', { id: assignee.id }), 'NOT_FOUND');
        for (const before of [a, b]) {
          const { task } = await api.call('TaskService', 'GetTask', { id: before.id });
          expect(task.assigneeId).toBeUndefined();
          expect(task.assignee).toBeUndefined();
          expect(task.version).toBe(String(BigInt(before.version) + 1n));
          expect(task.createdById).toBe(creator.id);
        }
        const { tasks } = await api.call('TaskService', 'ListTasks', { projectId: project.id, assigneeId: assignee.id });
        expect(tasks).toBeUndefined();
      });

      it('refuses to delete a worker who created tasks (FAILED_PRECONDITION) and keeps it', async () => {
        await expectRpcError(api.call('WorkerService', 'DeleteWorker', { id: creator.id }), 'FAILED_PRECONDITION');
        expect((await api.call('WorkerService', 'GetWorker', { id: creator.id })).worker.handle).toBe('@creator');
      });

      it('deletes a worker without tasks; then the handle is free again', async () => {
        const w = await createWorker({ handle: '@temp' });
        await api.call('WorkerService', 'DeleteWorker', { id: w.id });
        await expectRpcError(api.call('WorkerService', 'GetWorker', { handle: '@temp' }), 'NOT_FOUND');
        const again = await createWorker({ handle: '@TEMP' });
        expect(again.id).not.toBe(w.id);
      });

      it('answers NOT_FOUND for a missing worker, a deleted one, and one of another tenant', async () => {
        await expectRpcError(api.call('WorkerService', 'DeleteWorker', { id: '987654321' }), 'NOT_FOUND');
        const w = await createWorker({ handle: '@twice' });
        await api.call('WorkerService', 'DeleteWorker', { id: w.id });
        await expectRpcError(api.call('WorkerService', 'DeleteWorker', { id: w.id }), 'NOT_FOUND');
        const foreign = await foreignWorkerId(api, other, '@foreign-del');
        await expectRpcError(api.call('WorkerService', 'DeleteWorker', { id: foreign }), 'NOT_FOUND');
        expect((await other.call('WorkerService', 'GetWorker', { id: foreign })).worker.id).toBe(foreign);
      });

      it('refuses an id of 0 with INVALID_ARGUMENT', async () => {
        await expectRpcError(api.call('WorkerService', 'DeleteWorker', {}), 'INVALID_ARGUMENT', 'id');
      });
    });

    describe('idempotent CreateWorker (request_id)', () => {
      it('returns the first response to a retry and writes nothing', async () => {
        const req = { handle: '@idem', type: 'WORKER_TYPE_AGENT', capabilities: ['x'], requestId: `w-${protocol}-1` };
        const first = await api.call('WorkerService', 'CreateWorker', req);
        const count = await countWorkers();
        const retry = await api.call('WorkerService', 'CreateWorker', req);
        expect(retry).toEqual(first);
        expect(iso(retry.worker.createdAt)).toBe(iso(first.worker.createdAt));
        expect(await countWorkers()).toBe(count);
      });

      it('refuses the same request_id with a different request', async () => {
        const count = await countWorkers();
        await expectRpcError(
          api.call('WorkerService', 'CreateWorker', { handle: '@idem2', type: 'WORKER_TYPE_AGENT', capabilities: ['x'], requestId: `w-${protocol}-1` }),
          'INVALID_ARGUMENT',
          'request_id',
        );
        expect(await countWorkers()).toBe(count);
        await expectRpcError(api.call('WorkerService', 'GetWorker', { handle: '@idem2' }), 'NOT_FOUND');
      });

      it('gives racing retries the same worker and writes one row', async () => {
        const count = await countWorkers();
        const req = { handle: '@racer', requestId: `w-${protocol}-race` };
        const results = await Promise.all([1, 2, 3].map(() => api.call('WorkerService', 'CreateWorker', req)));
        expect(new Set(results.map((r) => r.worker.id)).size).toBe(1);
        expect(results[1]).toEqual(results[0]);
        expect(await countWorkers()).toBe(count + 1);
      });

      it('without a request_id, a second create is a new request (and here a duplicate)', async () => {
        await expectRpcError(api.call('WorkerService', 'CreateWorker', { handle: '@idem', type: 'WORKER_TYPE_AGENT', capabilities: ['x'] }), 'ALREADY_EXISTS');
      });
    });
  });
}
