/**
 * Agent work (SPEC §6) over gRPC and Connect: ClaimTask (order, filters, concurrency, request_id
 * replay), leases (heartbeat, release, expiry and re-claim, revocation, fencing), max_attempts
 * dead letters, GetTaskTree and ListTaskEvents. Leases are short and the tests wait on
 * conditions through the API, with a bound.
 */
import { create, type JsonObject, type MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskEvent, Worker } from '../../src/gen/taskapi/v1/resources_pb.js';
import {
  type ClaimTaskRequestSchema,
  ClaimTaskResponseSchema,
  type CreateTaskRequestSchema,
  ListTaskEventsResponseSchema,
} from '../../src/gen/taskapi/v1/task_pb.js';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { type ApiClient, TaskPriority, TaskStatus, WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError, listAll, mask, ms, ts } from '../helpers/expect-rpc.js';
import { eventually } from '../helpers/wait.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

let handles = 0;

/** ClaimTask's answer when there is nothing to claim. */
const NOTHING = create(ClaimTaskResponseSchema);
/** The before/after of each field an event changed. */
const changes = (e: TaskEvent | undefined) => e?.data?.changes as JsonObject | undefined;

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let api: ApiClient;
    let human: Worker;

    beforeAll(async () => {
      const tenant = await t.tenant();
      api = t.client(protocol, tenant.headers);
      human = await worker(WorkerType.HUMAN);
    });

    async function worker(type = WorkerType.AGENT, capabilities: string[] = []): Promise<Worker> {
      return (await api.WorkerService.createWorker({ handle: `@w${++handles}`, type, capabilities })).worker;
    }
    const project = async () => (await api.ProjectService.createProject({ name: `p${++handles}` })).project;
    const createTask = async (projectId: bigint, fields: MessageInitShape<typeof CreateTaskRequestSchema> = {}) =>
      (await api.TaskService.createTask({ projectId, title: 'work', createdById: human.id, ...fields })).task;
    const claim = (workerId: bigint, projectId: bigint, fields: MessageInitShape<typeof ClaimTaskRequestSchema> = {}) =>
      api.TaskService.claimTask({ workerId, projectId, ...fields });
    const getTask = async (id: bigint) => (await api.TaskService.getTask({ id })).task;
    const events = async (taskId: bigint) =>
      (
        await listAll(
          (pageToken) => api.TaskService.listTaskEvents({ taskId, pageSize: 500, pageToken }),
          (r) => r.events,
        )
      ).items;
    /** Claims until the lease of `task` is taken over by `workerId` (after the old lease ran out). */
    const reclaim = (workerId: bigint, projectId: bigint, taskId: bigint, leaseSeconds = 300) =>
      eventually(
        () => claim(workerId, projectId, { leaseSeconds }),
        (r) => r.task?.id === taskId,
        're-claim after expiry',
        15_000,
      );

    describe('ClaimTask', () => {
      it('takes the most urgent task: priority, then due date (none last), then id; sets the lease', async () => {
        const p = (await project()).id;
        const a = await worker();
        const low = await createTask(p, { priority: TaskPriority.LOW });
        const noDue = await createTask(p, { priority: TaskPriority.HIGH });
        const late = await createTask(p, { priority: TaskPriority.HIGH, dueDate: ts('2031-01-02T00:00:00Z') });
        const early = await createTask(p, { priority: TaskPriority.HIGH, dueDate: ts('2031-01-01T00:00:00Z') });
        const critical = await createTask(p, { priority: TaskPriority.CRITICAL });
        const order: bigint[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await claim(a.id, p, { leaseSeconds: 60 });
          order.push(r.task.id);
          expect(r.task).toMatchObject({ status: TaskStatus.IN_PROGRESS, assigneeId: a.id, attempts: 1 });
          expect(r.leaseToken).toBeGreaterThan(0n);
          const expires = ms(r.leaseExpiresAt);
          expect(expires).toBeGreaterThan(Date.now() + 50_000);
          expect(expires).toBeLessThan(Date.now() + 70_000);
          expect(r.task.leaseExpiresAt).toEqual(r.leaseExpiresAt);
        }
        expect(order).toEqual([critical.id, early.id, late.id, noDue.id, low.id]);
        expect(await claim(a.id, p)).toEqual(NOTHING);
      });

      it('8 agents claiming 40 tasks at once: each task is claimed exactly once', async () => {
        const p = (await project()).id;
        const created = new Set<bigint>();
        for (let i = 0; i < 40; i++) created.add((await createTask(p, { title: `t${i}` })).id);
        const agents = await Promise.all(Array.from({ length: 8 }, () => worker()));
        const claimed = await Promise.all(
          agents.map(async (agent) => {
            const mine: { task: bigint; token: bigint }[] = [];
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
        expect(await claim((await worker()).id, p)).toEqual(NOTHING);
        expect(await claim((await worker(WorkerType.AGENT, ['python'])).id, p)).toEqual(NOTHING);
        const able = await worker(WorkerType.AGENT, ['sql', 'go', 'python']);
        expect((await claim(able.id, p)).task.id).toBe(task.id);
      });

      it('does not hand out a task before not_before, nor a task assigned to someone else', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        const later = await createTask(p, { notBefore: ts(new Date(Date.now() + 3_600_000)) });
        await createTask(p, { assigneeId: b.id });
        expect(await claim(a.id, p)).toEqual(NOTHING);
        await api.TaskService.updateTask({
          task: { id: later.id, notBefore: ts(new Date(Date.now() - 1000)) },
          updateMask: mask('notBefore'),
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
        expect(await claim(a.id, p, { tagsAll: ['y'] })).toEqual(NOTHING);
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
        await expectRpcError(claim(a.id, p, { requestId, leaseSeconds: 61 }), Code.InvalidArgument, 'request_id');
        // Once its lease is over, the replay says so instead of handing out a lease that ended.
        await api.TaskService.releaseTask({
          id: first.task.id,
          leaseToken: first.leaseToken,
          status: TaskStatus.COMPLETED,
        });
        await expectRpcError(
          claim(a.id, p, { requestId, leaseSeconds: 60 }),
          Code.FailedPrecondition,
          'request_id',
          'released',
        );
      });

      it('validates its input, naming the field', async () => {
        const a = await worker();
        await expectRpcError(
          api.TaskService.claimTask({ workerId: a.id, leaseSeconds: 86_401 }),
          Code.InvalidArgument,
          'lease_seconds',
        );
        await expectRpcError(
          api.TaskService.claimTask({ workerId: a.id, leaseSeconds: -1 }),
          Code.InvalidArgument,
          'lease_seconds',
        );
        await expectRpcError(
          api.TaskService.claimTask({ workerId: a.id, waitSeconds: 61 }),
          Code.InvalidArgument,
          'wait_seconds',
        );
        await expectRpcError(api.TaskService.claimTask({}), Code.InvalidArgument, 'worker_id');
        await expectRpcError(api.TaskService.claimTask({ workerId: 999999999n }), Code.NotFound, 'worker');
        await expectRpcError(
          api.TaskService.claimTask({ workerId: a.id, projectId: 999999999n }),
          Code.NotFound,
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
        const hb = await api.TaskService.heartbeatTask({
          id: r.task.id,
          leaseToken: r.leaseToken,
          leaseSeconds: 600,
        });
        expect(ms(hb.leaseExpiresAt)).toBeGreaterThan(ms(r.leaseExpiresAt));
        expect((await getTask(r.task.id)).leaseExpiresAt).toEqual(hb.leaseExpiresAt);
        const { task } = await api.TaskService.releaseTask({
          id: r.task.id,
          leaseToken: r.leaseToken,
          status: TaskStatus.COMPLETED,
        });
        expect(task).toMatchObject({ status: TaskStatus.COMPLETED, assigneeId: a.id });
        expect(task.leaseExpiresAt).toBeUndefined();
        await expectRpcError(
          api.TaskService.heartbeatTask({ id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          Code.FailedPrecondition,
          'released',
        );
        await expectRpcError(
          api.TaskService.releaseTask({
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: TaskStatus.REVIEW,
          }),
          Code.FailedPrecondition,
          'released',
        );
        expect((await getTask(r.task.id)).status).toBe(TaskStatus.COMPLETED);
      });

      it('release as pending gives the task back: unassigned, last_error, claimable after retry_after_seconds', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const r = await claim(a.id, p);
        const { task } = await api.TaskService.releaseTask({
          id: r.task.id,
          leaseToken: r.leaseToken,
          status: TaskStatus.PENDING,
          error: 'rate limited',
          retryAfterSeconds: 3600,
        });
        expect(task).toMatchObject({ status: TaskStatus.PENDING, lastError: 'rate limited', attempts: 1 });
        expect(task.assigneeId).toBeUndefined();
        expect(ms(task.notBefore)).toBeGreaterThan(Date.now() + 3_500_000);
        expect(await claim(b.id, p)).toEqual(NOTHING);
        await api.TaskService.updateTask({ task: { id: task.id }, updateMask: mask('notBefore') });
        const again = await claim(b.id, p);
        expect(again.task).toMatchObject({ id: task.id, attempts: 2, assigneeId: b.id });
        expect(again.leaseToken).toBeGreaterThan(r.leaseToken);
      });

      it('an expired lease is re-claimed with a larger token; the old holder is fenced off and writes nothing', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const first = await claim(a.id, p, { leaseSeconds: 1 });
        const second = await reclaim(b.id, p, first.task.id);
        expect(second.leaseToken).toBeGreaterThan(first.leaseToken);
        expect(second.task).toMatchObject({ assigneeId: b.id, attempts: 2, status: TaskStatus.IN_PROGRESS });
        expect(second.task.lastError).toContain('lease expired');
        const old = { id: first.task.id, leaseToken: first.leaseToken };
        await expectRpcError(
          api.TaskService.heartbeatTask({ ...old, leaseSeconds: 60 }),
          Code.FailedPrecondition,
          'lease_token',
          're-claimed',
        );
        await expectRpcError(
          api.TaskService.releaseTask({ ...old, status: TaskStatus.COMPLETED }),
          Code.FailedPrecondition,
          're-claimed',
        );
        await expectRpcError(
          api.TaskService.updateTask({
            task: { id: old.id, title: 'stale write' },
            updateMask: mask('title'),
            leaseToken: old.leaseToken,
          }),
          Code.FailedPrecondition,
          'lease_token',
        );
        await expectRpcError(
          api.TaskService.assignTask({ id: old.id, workerId: a.id, leaseToken: old.leaseToken }),
          Code.FailedPrecondition,
        );
        const now = await getTask(old.id);
        expect(now).toMatchObject({ title: 'work', assigneeId: b.id, version: second.task.version });
        // The current holder's fenced write goes through.
        const { task } = await api.TaskService.updateTask({
          task: { id: old.id, description: 'progress' },
          updateMask: mask('description'),
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
        await api.TaskService.updateTask({
          task: { id: r.task.id, status: TaskStatus.BLOCKED },
          updateMask: mask('status'),
        });
        await expectRpcError(
          api.TaskService.heartbeatTask({ id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          Code.FailedPrecondition,
          'revoked',
        );
        const task = await getTask(r.task.id);
        expect(task.status).toBe(TaskStatus.BLOCKED);
        expect(task.leaseExpiresAt).toBeUndefined();
      });

      it('reassignment and deletion take the task away too', async () => {
        const p = (await project()).id;
        const a = await worker();
        const b = await worker();
        await createTask(p);
        const r = await claim(a.id, p, { leaseSeconds: 600 });
        await api.TaskService.assignTask({ id: r.task.id, workerId: b.id });
        await expectRpcError(
          api.TaskService.releaseTask({
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: TaskStatus.COMPLETED,
          }),
          Code.FailedPrecondition,
          'revoked',
        );
        await api.TaskService.deleteTask({ id: r.task.id });
        await expectRpcError(
          api.TaskService.heartbeatTask({ id: r.task.id, leaseToken: r.leaseToken, leaseSeconds: 60 }),
          Code.NotFound,
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
          (x) => x.status === TaskStatus.BLOCKED,
          'dead letter',
          15_000,
        );
        expect(dead.lastError).toMatch(/lease expired.*all 2 attempts used/);
        expect(dead.attempts).toBe(2);
        const expired = (await events(task.id)).filter((e) => e.kind === 'lease_expired');
        expect(expired).toHaveLength(2);
        expect(changes(expired[1])?.status).toEqual({ before: 'in_progress', after: 'blocked' });
        await api.TaskService.updateTask({
          task: { id: task.id, status: TaskStatus.PENDING, maxAttempts: 3 },
          updateMask: mask('status,maxAttempts'),
        });
        expect((await claim(a.id, p)).task).toMatchObject({ id: task.id, attempts: 3 });
      });

      it('refuses a token that was never issued, and bad release input', async () => {
        const p = (await project()).id;
        const a = await worker();
        await createTask(p);
        const r = await claim(a.id, p);
        const next = r.leaseToken + 1n;
        await expectRpcError(
          api.TaskService.heartbeatTask({ id: r.task.id, leaseToken: next }),
          Code.FailedPrecondition,
          'not a lease',
        );
        await expectRpcError(api.TaskService.heartbeatTask({ id: r.task.id }), Code.InvalidArgument, 'lease_token');
        await expectRpcError(
          api.TaskService.releaseTask({
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: TaskStatus.IN_PROGRESS,
          }),
          Code.InvalidArgument,
          'status',
        );
        await expectRpcError(
          api.TaskService.releaseTask({
            id: r.task.id,
            leaseToken: r.leaseToken,
            status: TaskStatus.PENDING,
            retryAfterSeconds: -5,
          }),
          Code.InvalidArgument,
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
        const all = await api.TaskService.getTaskTree({ id: root.id });
        expect(all.nodes.map((n) => [n.task?.id, n.depth])).toEqual([
          [root.id, 0],
          [c1.id, 1],
          [g1.id, 2],
          [gg.id, 3],
          [c2.id, 1],
        ]);
        expect(all.nodes[1]?.task?.createdBy?.id).toBe(human.id);
        const one = await api.TaskService.getTaskTree({ id: root.id, maxDepth: 1 });
        expect(one.nodes.map((n) => n.task?.id)).toEqual([root.id, c1.id, c2.id]);
        const sub = await api.TaskService.getTaskTree({ id: c1.id, maxDepth: 2 });
        expect(sub.nodes.map((n) => n.task?.id)).toEqual([c1.id, g1.id, gg.id]);
        // Cycle prevention stays: a task cannot move under its own descendant.
        await expectRpcError(
          api.TaskService.updateTask({
            task: { id: root.id, parentTaskId: gg.id },
            updateMask: mask('parentTaskId'),
          }),
          Code.FailedPrecondition,
          'parent_task_id',
        );
        await expectRpcError(api.TaskService.getTaskTree({ id: 999999999n }), Code.NotFound);
        await expectRpcError(
          api.TaskService.getTaskTree({ id: root.id, maxDepth: -1 }),
          Code.InvalidArgument,
          'max_depth',
        );
      });
    });

    describe('ListTaskEvents', () => {
      it("pages through a task's history in order, with kinds, actors, versions and before/after; it outlives the task", async () => {
        const p = (await project()).id;
        const a = await worker();
        const task = await createTask(p);
        await api.TaskService.updateTask({ task: { id: task.id, title: 'renamed' }, updateMask: mask('title') });
        const r = await claim(a.id, p);
        await api.TaskService.heartbeatTask({ id: task.id, leaseToken: r.leaseToken, leaseSeconds: 60 });
        await api.TaskService.releaseTask({
          id: task.id,
          leaseToken: r.leaseToken,
          status: TaskStatus.REVIEW,
        });
        await api.TaskService.deleteTask({ id: task.id });

        const { items, pages } = await listAll(
          (pageToken) => api.TaskService.listTaskEvents({ taskId: task.id, pageSize: 2, pageToken }),
          (r) => r.events,
        );
        expect(pages).toBe(3);
        expect(items.map((e) => e.kind)).toEqual(['created', 'updated', 'claimed', 'heartbeat', 'released', 'deleted']);
        const ids = items.map((e) => e.id);
        expect([...ids].sort((x, y) => (x < y ? -1 : 1))).toEqual(ids);
        expect(items.map((e) => e.taskVersion)).toEqual([1n, 2n, 3n, 3n, 4n, 4n]);
        for (const e of items) expect(e).toMatchObject({ taskId: task.id, projectId: p });
        expect(changes(items[1])?.title).toEqual({ before: 'work', after: 'renamed' });
        expect(items[2]?.actorId).toBe(a.id);
        expect(changes(items[2])?.status).toEqual({ before: 'pending', after: 'in_progress' });
        expect(changes(items[4])?.status).toEqual({ before: 'in_progress', after: 'review' });
        expect(ms(items[0]?.createdAt)).toBeGreaterThan(Date.now() - 600_000);

        const byProject = await listAll(
          (pageToken) => api.TaskService.listTaskEvents({ projectId: p, pageSize: 4, pageToken }),
          (r) => r.events,
        );
        expect(byProject.items.map((e) => e.id)).toEqual(items.map((e) => e.id));
      });

      it('needs exactly one of task_id and project_id; unknown ones are NOT_FOUND, a project without events is empty', async () => {
        await expectRpcError(api.TaskService.listTaskEvents({}), Code.InvalidArgument, 'task_id');
        await expectRpcError(
          api.TaskService.listTaskEvents({ taskId: 1n, projectId: 1n }),
          Code.InvalidArgument,
          'task_id',
        );
        await expectRpcError(api.TaskService.listTaskEvents({ taskId: 999999999n }), Code.NotFound);
        await expectRpcError(api.TaskService.listTaskEvents({ projectId: 999999999n }), Code.NotFound);
        const p = await project();
        expect(await api.TaskService.listTaskEvents({ projectId: p.id })).toEqual(create(ListTaskEventsResponseSchema));
      });
    });
  });
}
