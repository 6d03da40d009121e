/**
 * WatchTasks (SPEC §6) through real grpc-js and Connect clients, on PostgreSQL and on embedded
 * PGlite, in row and schema tenancy: replay after an event, then live events; reconnecting with
 * the last id seen while writers run misses nothing and keeps each task's order; only the
 * caller's tenant; shutdown ends streams with UNAVAILABLE.
 */
import type { JsonObject } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskEvent } from '../../src/gen/taskapi/v1/resources_pb.js';
import {
  PROTOCOLS,
  type Protocol,
  startTestApp,
  type TestApp,
  type TestTenant,
  tenantHeaders,
} from '../helpers/app.js';
import { type ApiClient, connectClient } from '../helpers/clients.js';
import { Code, listAll, mask, ms } from '../helpers/expect-rpc.js';
import { collect, type ServerStream } from '../helpers/streams.js';
import { waitFor } from '../helpers/wait.js';

type Message = { event: TaskEvent };

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let workerId: bigint;
const streams: ServerStream<Message>[] = [];

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  c = t.client('connect', tenant.headers);
  workerId = (await c.WorkerService.createWorker({ handle: '@watcher' })).worker.id;
});
afterAll(async () => {
  for (const s of streams) s.cancel();
  await t?.stop();
});

function watch(
  protocol: Protocol,
  request: { projectId?: bigint; afterEventId?: bigint },
  headers = tenant.headers,
  app = t,
  timeoutMs?: number,
): ServerStream<Message> {
  // Over Connect the deadline is the server's to keep: the client only sends it.
  const api =
    protocol === 'connect' ? connectClient(app.port, headers, { deadlines: 'server' }) : app.client(protocol, headers);
  const s = collect((options) => api.TaskService.watchTasks(request, options), { timeoutMs });
  streams.push(s);
  return s;
}
const eventsOf = (messages: readonly Message[]) => messages.map((m) => m.event);
const has = (id: bigint) => (messages: readonly Message[]) => messages.some((m) => m.event.id === id);

/** The events of the tenant (of one project, if given) in the table, as the tenant sees them. */
const tableEvents = async (tenantId = tenant.id, projectId?: bigint) =>
  (
    await t.app.database.db.withTenantTransaction(tenantId, (tx) =>
      projectId === undefined
        ? tx.many<{ id: string; task_id: string }>(`select id, task_id from task_events order by id`)
        : tx.many<{ id: string; task_id: string }>(
            `select id, task_id from task_events where project_id = $1::bigint order by id`,
            [String(projectId)],
          ),
    )
  ).map((r) => ({ id: BigInt(r.id), taskId: BigInt(r.task_id) }));

/** For each task, the versions of its events in the order received: must never go down. */
function expectPerTaskOrder(events: readonly TaskEvent[]) {
  const last = new Map<bigint, bigint>();
  for (const e of events) {
    const before = last.get(e.taskId);
    if (before !== undefined)
      expect(e.taskVersion, `task ${e.taskId}: version ${e.taskVersion} after ${before}`).toBeGreaterThanOrEqual(
        before,
      );
    last.set(e.taskId, e.taskVersion);
  }
}

/**
 * Writes markers until the stream shows one: a stream without after_event_id starts at the
 * moment the server reads its position, which the client cannot observe otherwise.
 */
async function streamIsLive(
  s: ServerStream<Message>,
  projectId: bigint,
  client = c,
  createdById: bigint | undefined = workerId,
) {
  const markers = new Set<bigint>();
  for (let i = 0; ; i++) {
    const { task } = await client.TaskService.createTask({ projectId, title: `marker ${i}`, createdById });
    markers.add(task.id);
    try {
      return await s.until((m) => m.some((x) => markers.has(x.event.taskId)), 2_000);
    } catch (err) {
      if (i >= 15 || s.done) throw err;
    }
  }
}

const untilSubscribers = (n: number) => waitFor(() => t.app.services.feed.size <= n, `at most ${n} feed subscriptions`);

async function newProject(name: string) {
  return (await c.ProjectService.createProject({ name })).project;
}
async function newTask(projectId: bigint, title: string) {
  return (await c.TaskService.createTask({ projectId, title, createdById: workerId })).task;
}

describe.each(PROTOCOLS)('WatchTasks over %s', (protocol) => {
  it('replays the events after after_event_id, then streams new ones as they commit', async () => {
    const project = await newProject(`replay ${protocol}`);
    const first = await newTask(project.id, 'first');
    await c.TaskService.updateTask({ task: { id: first.id, title: 'first, renamed' }, updateMask: mask('title') });
    const [created, updated] = (await tableEvents()).filter((e) => e.taskId === first.id);

    const s = watch(protocol, { projectId: project.id, afterEventId: created!.id });
    await s.until(has(updated!.id));
    const [replayed] = eventsOf(s.messages);
    expect(replayed).toMatchObject({
      id: updated!.id,
      taskId: first.id,
      projectId: project.id,
      kind: 'updated',
      taskVersion: 2n,
    });
    expect((replayed!.data?.changes as JsonObject | undefined)?.title).toEqual({
      before: 'first',
      after: 'first, renamed',
    });

    const second = await newTask(project.id, 'second');
    const live = await s.until((m) => m.some((x) => x.event.taskId === second.id));
    const event = eventsOf(live).find((e) => e.taskId === second.id);
    expect(event).toMatchObject({ kind: 'created', actorId: workerId, taskVersion: 1n });
    expect(ms(event!.createdAt)).not.toBeNaN();
    expect(s.done).toBe(false);
  });

  it('without after_event_id sends only events from now on, and only of the project asked for', async () => {
    const project = await newProject(`live ${protocol}`);
    const other = await newProject(`other ${protocol}`);
    const old = await newTask(project.id, 'before the watch');
    const s = watch(protocol, { projectId: project.id });
    await streamIsLive(s, project.id);
    const elsewhere = await newTask(other.id, 'other project');
    const after = await newTask(project.id, 'after');
    await s.until((m) => m.some((x) => x.event.taskId === after.id));
    const taskIds = eventsOf(s.messages).map((e) => e.taskId);
    expect(taskIds).not.toContain(old.id);
    expect(taskIds).not.toContain(elsewhere.id);
  });

  it('never shows another tenant’s events', async () => {
    const other = await t.tenant();
    const oc = t.client('connect', other.headers);
    const otherWorker = (await oc.WorkerService.createWorker({ handle: '@other' })).worker.id;
    const otherProject = (await oc.ProjectService.createProject({ name: 'theirs' })).project;
    const theirFirst = (
      await oc.TaskService.createTask({ projectId: otherProject.id, title: 'theirs', createdById: otherWorker })
    ).task;
    const theirEvent = (await tableEvents(other.id)).find((e) => e.taskId === theirFirst.id)!;

    // Their event id is no position in this tenant's feed. (In schema mode every tenant numbers
    // its own events, so the same number may well be one of ours: then ask for one nobody has.)
    const ours = new Set((await tableEvents()).map((e) => e.id));
    const foreign = watch(protocol, { afterEventId: ours.has(theirEvent.id) ? 999999999n : theirEvent.id });
    expect((await foreign.ended)?.code).toBe(Code.NotFound);

    const project = await newProject(`mine ${protocol}`);
    const s = watch(protocol, {});
    await streamIsLive(s, project.id);
    await oc.TaskService.createTask({ projectId: otherProject.id, title: 'theirs again', createdById: otherWorker });
    const mine = await newTask(project.id, 'mine');
    await oc.TaskService.createTask({
      projectId: otherProject.id,
      title: 'theirs once more',
      createdById: otherWorker,
    });
    const last = await newTask(project.id, 'mine too');
    await s.until((m) => m.some((x) => x.event.taskId === last.id));
    const ids = new Set((await tableEvents()).map((e) => e.id));
    expect(eventsOf(s.messages).map((e) => e.taskId)).toContain(mine.id);
    for (const e of eventsOf(s.messages)) expect(ids.has(e.id), `event ${e.id} is not this tenant's`).toBe(true);
  });

  it('ends with DEADLINE_EXCEEDED at the call’s deadline', async () => {
    const s = watch(protocol, {}, tenant.headers, t, 1_000);
    expect((await s.ended)?.code).toBe(Code.DeadlineExceeded);
  });

  it('ends with UNAUTHENTICATED at its next read once its API key is revoked', async () => {
    const admin = t.client('connect', { authorization: `Bearer ${t.adminToken}` });
    const key = await admin.TenantService.createApiKey({ tenantId: tenant.id, name: 'short-lived' });
    const project = await newProject(`revoked ${protocol}`);
    const s = watch(protocol, { projectId: project.id }, tenantHeaders(tenant.id, key.secret));
    await streamIsLive(s, project.id);
    await admin.TenantService.revokeApiKey({ tenantId: tenant.id, apiKeyId: key.apiKeyId });
    await newTask(project.id, 'after the revocation');
    expect((await s.ended)?.code).toBe(Code.Unauthenticated);
  });

  it('rejects a malformed request with INVALID_ARGUMENT naming the field', async () => {
    const s = watch(protocol, { projectId: -1n });
    const err = await s.ended;
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toContain('project_id');
  });

  it('misses nothing when the client reconnects with its last id while 4 writers run', async () => {
    const subscribersBefore = t.app.services.feed.size;
    const project = await newProject(`reconnect ${protocol}`);
    const tasks = await Promise.all([0, 1, 2, 3].map((i) => newTask(project.id, `shared ${i}`)));
    const start = (await tableEvents()).at(-1)!.id;
    let stop = false;
    const writer = async (w: number) => {
      const wc = t.client(w % 2 === 0 ? 'grpc' : 'connect', tenant.headers);
      let n = 0;
      while (!stop) {
        // Writers share tasks, so the same task is written by several transactions in turn.
        const task = tasks[(w + n) % tasks.length]!;
        await wc.TaskService.updateTask({ task: { id: task.id, title: `w${w} n${n}` }, updateMask: mask('title') });
        if (n % 5 === 0)
          await wc.TaskService.createTask({ projectId: project.id, title: `w${w} new ${n}`, createdById: workerId });
        n++;
      }
    };
    const writers = [0, 1, 2, 3].map(writer);

    const received: TaskEvent[] = [];
    let after = start;
    for (let round = 0; round < 4; round++) {
      const s = watch(protocol, { projectId: project.id, afterEventId: after });
      const target = received.length + 10;
      await s.until((m) => received.length + m.length >= target);
      s.cancel();
      await s.ended;
      received.push(...eventsOf(s.messages));
      after = received.at(-1)!.id;
    }
    stop = true;
    await Promise.all(writers);
    // Once the writers are done, a last reconnect catches up with everything they wrote, as
    // ListTaskEvents pages through it.
    const expected = (
      await listAll(
        (pageToken) => c.TaskService.listTaskEvents({ projectId: project.id, pageSize: 500, pageToken }),
        (page) => page.events,
      )
    ).items.filter((e) => e.id > start);
    expect(expected.map((e) => e.id)).toEqual(
      (await tableEvents(tenant.id, project.id)).filter((e) => e.id > start).map((e) => e.id),
    );
    const seenAll = (m: readonly Message[]) => {
      const seen = new Set([...received, ...eventsOf(m)].map((e) => e.id));
      return expected.every((e) => seen.has(e.id));
    };
    const s = watch(protocol, { projectId: project.id, afterEventId: after });
    await s.until(seenAll).catch(() => {});
    received.push(...eventsOf(s.messages));

    const seen = new Set(received.map((e) => e.id));
    expect(expected.filter((e) => !seen.has(e.id)).map((e) => e.id)).toEqual([]);
    expect(expected.length).toBeGreaterThan(40);
    // Resuming from the last id received repeats nothing and keeps every task's order.
    expect(new Set(received.map((e) => e.id)).size).toBe(received.length);
    expectPerTaskOrder(received);
    // Every event arrived whole, as ListTaskEvents has it.
    const byId = new Map(received.map((e) => [e.id, e]));
    for (const e of expected) expect(byId.get(e.id)).toEqual(e);
    // The cancelled streams let go of their subscriptions on the server.
    s.cancel();
    await s.ended;
    await untilSubscribers(subscribersBefore);
  });
});

describe('shutdown', () => {
  it.each(PROTOCOLS)('ends open %s streams with UNAVAILABLE at once, not after the grace period', async (protocol) => {
    const app = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '30000' } });
    try {
      const owner = await app.tenant({ withWorker: true });
      const oc = app.client('connect', owner.headers);
      const { project } = await oc.ProjectService.createProject({ name: 'shutdown' });
      const s = watch(protocol, {}, owner.headers, app);
      await streamIsLive(s, project.id, oc, undefined);
      const started = Date.now();
      const stopping = app.app.stop();
      const err = await s.ended;
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toContain('after_event_id');
      await stopping;
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await app.stop();
    }
  });
});
