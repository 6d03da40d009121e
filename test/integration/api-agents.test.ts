/**
 * Agent work (SPEC §6) over gRPC and Connect: ClaimTask (order, filters, concurrency, request_id
 * replay), leases (heartbeat, release, expiry and re-claim, revocation, fencing), max_attempts
 * dead letters, GetTaskTree and ListTaskEvents. Leases are short and the tests wait on
 * conditions through the API, with a bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/legacy/app.js';
import type { ApiClient, Json } from '../helpers/legacy/clients.js';
import { eventually, expectRpcError, listAll } from '../helpers/legacy/expect-rpc.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

let handles = 0;

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let api: ApiClient;
    let human: Json;

    beforeAll(async () => {
      const tenant = await t.tenant();
      api = t.client(protocol, tenant.headers);
      human = await worker('WORKER_TYPE_HUMAN');
    });

    async function worker(type = 'WORKER_TYPE_AGENT', capabilities: string[] = []): Promise<Json> {
      return (await api.call('WorkerService', 'CreateWorker', { handle: `@w${++handles}`, type, capabilities })).worker;
    }
    const project = async (): Promise<Json> =>
      (await api.call('ProjectService', 'CreateProject', { name: `p${++handles}` })).project;
    const createTask = async (projectId: string, fields: Json = {}): Promise<Json> =>
      (await api.call('TaskService', 'CreateTask', { projectId, title: 'work', createdById: human.id, ...fields }))
        .task;
    const claim = (workerId: string, projectId: string, fields: Json = {}): Promise<Json> =>
      api.call('TaskService', 'ClaimTask', { workerId, projectId, ...fields });
    const getTask = async (id: string): Promise<Json> => (await api.call('TaskService', 'GetTask', { id })).task;
    const events = async (taskId: string): Promise<Json[]> =>
      (await listAll(api, 'TaskService', 'ListTaskEvents', 'events', { taskId, pageSize: 500 })).items;
    /** Claims until the lease of `task` is taken over by `workerId` (after the old lease ran out). */
    const reclaim = (workerId: string, projectId: string, taskId: string, leaseSeconds = 300) =>
      eventually(
        () => claim(workerId, projectId, { leaseSeconds }),
        (r) => r.task?.id === taskId,
        15_000,
        're-claim after expiry',
      );

    describe('ClaimTask', () => {
      it('takes the most urgent task: priority, then due date (none last), then id; sets the lease', async () => {
        const p = (await project()).id;
        const a = await worker();
        const low = await createTask(p, { priority: 'TASK_PRIORITY_LOW' });
        const noDue = await createTask(p, { priority: 'TASK_PRIORITY_HIGH' });
        const late = await createTask(p, { priority: 'TASK_PRIORITY_HIGH', dueDate: '2031-01-02T00:00:00Z' });
        const early = await createTask(p, { priority: 'TASK_PRIORITY_HIGH', dueDate: '2031-01-01T00:00:00Z' });
        const critical = await createTask(p, { priority: 'TASK_PRIORITY_CRITICAL' });
        const order: string[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await claim(a.id, p, { leaseSeconds: 60 });
          order.push(r.task.id);
          expect(r.task).toMatchObject({ status: 'TASK_STATUS_IN_PROGRESS', assigneeId: a.id, attempts: 1 });
          expect(BigInt(r.leaseToken)).toBeGreaterThan(0n);
          const expires = Date.parse(r.leaseExpiresAt);
          expect(expires).toBeGreaterThan(Date.now() + 50_000);
          expect(expires).toBeLessThan(Date.now() + 70_000);
          expect(r.task.leaseExpiresAt).toBe(r.leaseExpiresAt);
        }
        expect(order).toEqual([critical.id, early.id, late.id, noDue.id, low.id]);
        expect(await claim(a.id, p)).toEqual({});
      });

      it('8 agents claiming 40 tasks at once: each task is claimed exactly once', async () => {
        const p = (await project()).id;
        const created = new Set<string>();
        for (let i = 0; i < 40; i++) created.add((await createTask(p, { title: `t${i}` })).id);
        const agents = await Promise.all(Array.from({ length: 8 }, () => worker()));
        const claimed = await Promise.all(
          agents.map(async (agent) => {
            const mine: { task: string; token: string }[] = [];
            for (;;) {
              const r = await claim(agent.id, p, { leaseSeconds: 300 });
              if (!r.task) return mine;
              expect(r.task.assigneeId).toBe(agent.id);
              mine.push({ task: r.task.id, token: r.leaseToken });
            }
          }),
        );
        const all = claimed.flat().map((c) => c.task);
        expect(all).toHaveLength(40);
        expect(new Set(all)).toEqual(created);
        for (const id of created) {
          const task = await getTask(id);
          expect(task.attempts).toBe(1);
          expect((await events(id)).filter((e) => e.kind === 'claimed')).toHaveLength(1);
        }
      });

      it('hands a task only to a worker holding every required capability', async () => {
        const p = (await project()).id;
        const task = await createTask(p, { requiredCapabilities: ['python', 'sql'] });
        expect(task.requiredCapabilities).toEqual(['python', 'sql']);
        expect(await claim((await worker()).id, p)).toEqual({});
        expect(await claim((await worker('WORKER_TYPE_AGENT', ['python'])).id, p)).toEqual({});
        const able = await worker('WORKER_TYPE_AGENT', ['sql', 'go', 'python']);
        expect((await claim(able.id, p)).task.id).toBe(task.id);
      });

      it('does not hand out a task before not_before, nor a task assigned to someone else', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        const later = await createTask(p, { notBefore: new Date(Date.now() + 3_600_000).toISOString() });
        await createTask(p, { assigneeId: b.id });
        expect(await claim(a.id, p)).toEqual({});
        await api.call('TaskService', 'UpdateTask', {
          task: { id: later.id, notBefore: new Date(Date.now() - 1000).toISOString() },
          updateMask: 'notBefore',
        });
        expect((await claim(a.id, p)).task.id).toBe(later.id);
        // The task assigned to b is b's to claim.
        expect((await claim(b.id, p)).task.assigneeId).toBe(b.id);
      });

      it('filters by tags_all', async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p, { tags: ['x'] });
        const both = await createTask(p, { tags: ['x', 'y'] });
        expect((await claim(a.id, p, { tagsAll: ['y', 'x'] })).task.id).toBe(both.id);
        expect(await claim(a.id, p, { tagsAll: ['y'] })).toEqual({});
      });

      it('a retry with the same request_id returns the same claim; another request with it is INVALID_ARGUMENT', async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p);
        await createTask(p);
        const requestId = `claim-${protocol}-${handles}`;
        const first = await claim(a.id, p, { requestId, leaseSeconds: 60 });
        const again = await claim(a.id, p, { requestId, leaseSeconds: 60 });
        expect(again.task.id).toBe(first.task.id);
        expect(again.leaseToken).toBe(first.leaseToken);
        expect((await getTask(first.task.id)).attempts).toBe(1);
        await expectRpcError(claim(a.id, p, { requestId, leaseSeconds: 61 }), 'INVALID_ARGUMENT', 'request_id');
        // Once its lease is over, the replay says so instead of handing out a lease that ended.
        await api.call('TaskService', 'ReleaseTask', {
          id: first.task.id,
          leaseToken: first.leaseToken,
          status: 'TASK_STATUS_COMPLETED',
        });
        await expectRpcError(
          claim(a.id, p, { requestId, leaseSeconds: 60 }),
          'FAILED_PRECONDITION',
          'request_id',
          'released',
        );
      });

      it('validates its input, naming the field', async () => {
        const a = await worker();
        await expectRpcError(
          api.call('TaskService', 'ClaimTask', { workerId: a.id, leaseSeconds: 86_401 }),
          'INVALID_ARGUMENT',
          'lease_seconds',
        );
        await expectRpcError(
          api.call('TaskService', 'ClaimTask', { workerId: a.id, leaseSeconds: -1 }),
          'INVALID_ARGUMENT',
          'lease_seconds',
        );
        await expectRpcError(
          api.call('TaskService', 'ClaimTask', { workerId: a.id, waitSeconds: 61 }),
          'INVALID_ARGUMENT',
          'wait_seconds',
        );
        await expectRpcError(api.call('TaskService', 'ClaimTask', {}), 'INVALID_ARGUMENT', 'worker_id');
        await expectRpcError(api.call('TaskService', 'ClaimTask', { workerId: '999999999' }), 'NOT_FOUND', 'worker');
        await expectRpcError(
          api.call('TaskService', 'ClaimTask', { workerId: a.id, projectId: '999999999' }),
          'NOT_FOUND',
          'project',
        );
      });
    });

    describe('leases', () => {
      it('heartbeat extends the lease; release completes the task and ends the lease', async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p);
        const r = await claim(a.id, p, { leaseSeconds: 30 });
        const hb = await api.call('TaskService', 'HeartbeatTask', {
          id: r.task.id,
          leaseToken: r.leaseToken,
          leaseSeconds: 600,
        });
        expect(Date.parse(hb.leaseExpiresAt)).toBeGreaterThan(Date.parse(r.leaseExpiresAt));
        expect((await getTask(r.task.id)).leaseExpiresAt).toBe(hb.leaseExpiresAt);
        const { task } = await api.call('TaskService', 'ReleaseTask', {
          id: r.task.id,
          leaseToken: r.leaseToken,
          status: 'TASK_STATUS_COMPLETED',
        });
        expect(task).toMatchObject({ status: 'TASK_STATUS_COMPLETED', assigneeId: a.id });
        expect(task.leaseExpiresAt).toBeUndefined();
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          'FAILED_PRECONDITION',
          'released',
        );
        await expectRpcError(
          api.call('TaskService', 'ReleaseTask', {
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: 'TASK_STATUS_REVIEW',
          }),
          'FAILED_PRECONDITION',
          'released',
        );
        expect((await getTask(r.task.id)).status).toBe('TASK_STATUS_COMPLETED');
      });

      it('release as pending gives the task back: unassigned, last_error, claimable after retry_after_seconds', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const r = await claim(a.id, p);
        const { task } = await api.call('TaskService', 'ReleaseTask', {
          id: r.task.id,
          leaseToken: r.leaseToken,
          status: 'TASK_STATUS_PENDING',
          error: 'rate limited',
          retryAfterSeconds: 3600,
        });
        expect(task).toMatchObject({ status: 'TASK_STATUS_PENDING', lastError: 'rate limited', attempts: 1 });
        expect(task.assigneeId).toBeUndefined();
        expect(Date.parse(task.notBefore)).toBeGreaterThan(Date.now() + 3_500_000);
        expect(await claim(b.id, p)).toEqual({});
        await api.call('TaskService', 'UpdateTask', { task: { id: task.id }, updateMask: 'notBefore' });
        const again = await claim(b.id, p);
        expect(again.task).toMatchObject({ id: task.id, attempts: 2, assigneeId: b.id });
        expect(BigInt(again.leaseToken)).toBeGreaterThan(BigInt(r.leaseToken));
      });

      it('an expired lease is re-claimed with a larger token; the old holder is fenced off and writes nothing', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const first = await claim(a.id, p, { leaseSeconds: 1 });
        const second = await reclaim(b.id, p, first.task.id);
        expect(BigInt(second.leaseToken)).toBeGreaterThan(BigInt(first.leaseToken));
        expect(second.task).toMatchObject({ assigneeId: b.id, attempts: 2, status: 'TASK_STATUS_IN_PROGRESS' });
        expect(second.task.lastError).toContain('lease expired');
        const old = { id: first.task.id, leaseToken: first.leaseToken };
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { ...old, leaseSeconds: 60 }),
          'FAILED_PRECONDITION',
          'lease_token',
          're-claimed',
        );
        await expectRpcError(
          api.call('TaskService', 'ReleaseTask', { ...old, status: 'TASK_STATUS_COMPLETED' }),
          'FAILED_PRECONDITION',
          're-claimed',
        );
        await expectRpcError(
          api.call('TaskService', 'UpdateTask', {
            task: { id: old.id, title: 'stale write' },
            updateMask: 'title',
            leaseToken: old.leaseToken,
          }),
          'FAILED_PRECONDITION',
          'lease_token',
        );
        await expectRpcError(
          api.call('TaskService', 'AssignTask', { id: old.id, workerId: a.id, leaseToken: old.leaseToken }),
          'FAILED_PRECONDITION',
        );
        const now = await getTask(old.id);
        expect(now).toMatchObject({ title: 'work', assigneeId: b.id, version: second.task.version });
        // The current holder's fenced write goes through.
        const { task } = await api.call('TaskService', 'UpdateTask', {
          task: { id: old.id, description: 'progress' },
          updateMask: 'description',
          leaseToken: second.leaseToken,
        });
        expect(task.description).toBe('progress');
        const kinds = (await events(old.id)).map((e) => e.kind);
        expect(kinds).toEqual(['created', 'claimed', 'lease_expired', 'claimed', 'updated']);
      });

      it("a human's status change revokes the lease at once; the holder learns it on its next heartbeat", async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p);
        const r = await claim(a.id, p, { leaseSeconds: 600 });
        await api.call('TaskService', 'UpdateTask', {
          task: { id: r.task.id, status: 'TASK_STATUS_BLOCKED' },
          updateMask: 'status',
        });
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          'FAILED_PRECONDITION',
          'revoked',
        );
        const task = await getTask(r.task.id);
        expect(task.status).toBe('TASK_STATUS_BLOCKED');
        expect(task.leaseExpiresAt).toBeUndefined();
      });

      it('reassignment and deletion take the task away too', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const r = await claim(a.id, p, { leaseSeconds: 600 });
        await api.call('TaskService', 'AssignTask', { id: r.task.id, workerId: b.id });
        await expectRpcError(
          api.call('TaskService', 'ReleaseTask', {
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: 'TASK_STATUS_COMPLETED',
          }),
          'FAILED_PRECONDITION',
          'revoked',
        );
        await api.call('TaskService', 'DeleteTask', { id: r.task.id });
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          'NOT_FOUND',
        );
      });

      it('after max_attempts expired leases the task is blocked with last_error; a human re-opens it', async () => {
        const p = (await project()).id;
        const a = await worker();
        const task = await createTask(p, { maxAttempts: 2 });
        expect(task.maxAttempts).toBe(2);
        const first = await claim(a.id, p, { leaseSeconds: 1 });
        const second = await reclaim(a.id, p, first.task.id, 1);
        expect(second.task.attempts).toBe(2);
        // Claiming again notices the second expiry: the task is a dead letter, not handed out.
        const dead = await eventually(
          async () => {
            expect((await claim(a.id, p)).task).toBeUndefined();
            return getTask(task.id);
          },
          (x) => x.status === 'TASK_STATUS_BLOCKED',
          15_000,
          'dead letter',
        );
        expect(dead.lastError).toMatch(/lease expired.*all 2 attempts used/);
        expect(dead.attempts).toBe(2);
        const expired = (await events(task.id)).filter((e) => e.kind === 'lease_expired');
        expect(expired).toHaveLength(2);
        expect(expired[1].data.changes.status).toEqual({ before: 'in_progress', after: 'blocked' });
        await api.call('TaskService', 'UpdateTask', {
          task: { id: task.id, status: 'TASK_STATUS_PENDING', maxAttempts: 3 },
          updateMask: 'status,maxAttempts',
        });
        expect((await claim(a.id, p)).task).toMatchObject({ id: task.id, attempts: 3 });
      });

      it('refuses a token that was never issued, and bad release input', async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p);
        const r = await claim(a.id, p);
        const next = (BigInt(r.leaseToken) + 1n).toString();
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { id: r.task.id, leaseToken: next }),
          'FAILED_PRECONDITION',
          'not a lease',
        );
        await expectRpcError(
          api.call('TaskService', 'HeartbeatTask', { id: r.task.id }),
          'INVALID_ARGUMENT',
          'lease_token',
        );
        await expectRpcError(
          api.call('TaskService', 'ReleaseTask', {
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: 'TASK_STATUS_IN_PROGRESS',
          }),
          'INVALID_ARGUMENT',
          'status',
        );
        await expectRpcError(
          api.call('TaskService', 'ReleaseTask', {
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: 'TASK_STATUS_PENDING',
            retryAfterSeconds: -5,
          }),
          'INVALID_ARGUMENT',
          'retry_after_seconds',
        );
      });
    });

    describe('GetTaskTree', () => {
      it('returns the subtree depth first with depths; max_depth 1 is the task and its children', async () => {
        const p = (await project()).id;
        const root = await createTask(p, { title: 'root' });
        const c1 = await createTask(p, { title: 'c1', parentTaskId: root.id });
        const c2 = await createTask(p, { title: 'c2', parentTaskId: root.id });
        const g1 = await createTask(p, { title: 'g1', parentTaskId: c1.id });
        const gg = await createTask(p, { title: 'gg', parentTaskId: g1.id });
        const all = await api.call('TaskService', 'GetTaskTree', { id: root.id });
        expect(all.nodes.map((n: Json) => [n.task.id, n.depth ?? 0])).toEqual([
          [root.id, 0],
          [c1.id, 1],
          [g1.id, 2],
          [gg.id, 3],
          [c2.id, 1],
        ]);
        expect(all.nodes[1].task.createdBy.id).toBe(human.id);
        const one = await api.call('TaskService', 'GetTaskTree', { id: root.id, maxDepth: 1 });
        expect(one.nodes.map((n: Json) => n.task.id)).toEqual([root.id, c1.id, c2.id]);
        const sub = await api.call('TaskService', 'GetTaskTree', { id: c1.id, maxDepth: 2 });
        expect(sub.nodes.map((n: Json) => n.task.id)).toEqual([c1.id, g1.id, gg.id]);
        // Cycle prevention stays: a task cannot move under its own descendant.
        await expectRpcError(
          api.call('TaskService', 'UpdateTask', {
            task: { id: root.id, parentTaskId: gg.id },
            updateMask: 'parentTaskId',
          }),
          'FAILED_PRECONDITION',
          'parent_task_id',
        );
        await expectRpcError(api.call('TaskService', 'GetTaskTree', { id: '999999999' }), 'NOT_FOUND');
        await expectRpcError(
          api.call('TaskService', 'GetTaskTree', { id: root.id, maxDepth: -1 }),
          'INVALID_ARGUMENT',
          'max_depth',
        );
      });
    });

    describe('ListTaskEvents', () => {
      it("pages through a task's history in order, with kinds, actors, versions and before/after; it outlives the task", async () => {
        const p = (await project()).id;
        const a = await worker();
        const task = await createTask(p);
        await api.call('TaskService', 'UpdateTask', { task: { id: task.id, title: 'renamed' }, updateMask: 'title' });
        const r = await claim(a.id, p);
        await api.call('TaskService', 'HeartbeatTask', { id: task.id, leaseToken: r.leaseToken, leaseSeconds: 60 });
        await api.call('TaskService', 'ReleaseTask', {
          id: task.id,
          leaseToken: r.leaseToken,
          status: 'TASK_STATUS_REVIEW',
        });
        await api.call('TaskService', 'DeleteTask', { id: task.id });

        const { items, pages } = await listAll(api, 'TaskService', 'ListTaskEvents', 'events', {
          taskId: task.id,
          pageSize: 2,
        });
        expect(pages).toBe(3);
        expect(items.map((e) => e.kind)).toEqual(['created', 'updated', 'claimed', 'heartbeat', 'released', 'deleted']);
        const ids = items.map((e) => BigInt(e.id));
        expect([...ids].sort((x, y) => (x < y ? -1 : 1))).toEqual(ids);
        expect(items.map((e) => e.taskVersion)).toEqual(['1', '2', '3', '3', '4', '4']);
        for (const e of items) expect(e).toMatchObject({ taskId: task.id, projectId: p });
        expect(items[1].data.changes.title).toEqual({ before: 'work', after: 'renamed' });
        expect(items[2].actorId).toBe(a.id);
        expect(items[2].data.changes.status).toEqual({ before: 'pending', after: 'in_progress' });
        expect(items[4].data.changes.status).toEqual({ before: 'in_progress', after: 'review' });
        expect(Date.parse(items[0].createdAt)).toBeGreaterThan(Date.now() - 600_000);

        const byProject = await listAll(api, 'TaskService', 'ListTaskEvents', 'events', { projectId: p, pageSize: 4 });
        expect(byProject.items.map((e) => e.id)).toEqual(items.map((e) => e.id));
      });

      it('needs exactly one of task_id and project_id; unknown ones are NOT_FOUND, a project without events is empty', async () => {
        await expectRpcError(api.call('TaskService', 'ListTaskEvents', {}), 'INVALID_ARGUMENT', 'task_id');
        await expectRpcError(
          api.call('TaskService', 'ListTaskEvents', { taskId: '1', projectId: '1' }),
          'INVALID_ARGUMENT',
          'task_id',
        );
        await expectRpcError(api.call('TaskService', 'ListTaskEvents', { taskId: '999999999' }), 'NOT_FOUND');
        await expectRpcError(api.call('TaskService', 'ListTaskEvents', { projectId: '999999999' }), 'NOT_FOUND');
        const p = await project();
        expect(await api.call('TaskService', 'ListTaskEvents', { projectId: p.id })).toEqual({});
      });
    });
  });
}
