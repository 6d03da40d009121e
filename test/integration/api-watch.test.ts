/**
 * WatchTasks (SPEC §6) through real grpc-js and Connect clients, on PostgreSQL and on embedded
 * PGlite, in row and schema tenancy: replay after an event, then live events; reconnecting with
 * the last id seen while writers run misses nothing and keeps each task's order; only the
 * caller's tenant; shutdown ends streams with UNAVAILABLE.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/legacy/app.js';
import type { ApiClient, Json } from '../helpers/legacy/clients.js';
import { type ServerStream, serverStream } from '../helpers/legacy/streams.js';

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let workerId: string;
const streams: ServerStream[] = [];

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  c = t.client('connect', tenant.headers);
  workerId = (await c.call('WorkerService', 'CreateWorker', { handle: '@watcher' })).worker.id;
});
afterAll(async () => {
  for (const s of streams) s.cancel();
  await t?.stop();
});

function watch(
  protocol: (typeof PROTOCOLS)[number],
  request: Json,
  headers = tenant.headers,
  app = t,
  timeoutMs?: number,
): ServerStream {
  const s = serverStream(protocol, app.port, 'TaskService', 'WatchTasks', request, headers, { timeoutMs });
  streams.push(s);
  return s;
}
const eventsOf = (messages: Json[]) => messages.map((m) => m.event);
const has = (id: string) => (messages: Json[]) => messages.some((m) => m.event.id === id);

/** The events of the tenant (of one project, if given) in the table, as the tenant sees them. */
const tableEvents = (tenantId = tenant.id, projectId?: string) =>
  t.app.database.db.withTenantTransaction(BigInt(tenantId), (tx) =>
    projectId === undefined
      ? tx.many<{ id: string; task_id: string }>(`select id, task_id from task_events order by id`)
      : tx.many<{ id: string; task_id: string }>(
          `select id, task_id from task_events where project_id = $1::bigint order by id`,
          [projectId],
        ),
  );

/** For each task, the versions of its events in the order received: must never go down. */
function expectPerTaskOrder(events: Json[]) {
  const last = new Map<string, bigint>();
  for (const e of events) {
    const version = BigInt(e.taskVersion ?? '0');
    const before = last.get(e.taskId);
    if (before !== undefined)
      expect(version, `task ${e.taskId}: version ${version} after ${before}`).toBeGreaterThanOrEqual(before);
    last.set(e.taskId, version);
  }
}

/**
 * Writes markers until the stream shows one: a stream without after_event_id starts at the
 * moment the server reads its position, which the client cannot observe otherwise.
 */
async function streamIsLive(
  s: ServerStream,
  projectId: string,
  client = c,
  createdById: string | undefined = workerId,
) {
  const markers = new Set<string>();
  for (let i = 0; ; i++) {
    const { task } = await client.call('TaskService', 'CreateTask', { projectId, title: `marker ${i}`, createdById });
    markers.add(task.id);
    try {
      return await s.until((m) => m.some((x) => markers.has(x.event.taskId)), 2_000);
    } catch (err) {
      if (i >= 15 || s.done) throw err;
    }
  }
}

async function untilSubscribers(n: number) {
  for (let i = 0; t.app.services.feed.size > n; i++) {
    if (i > 500) throw new Error(`${t.app.services.feed.size} subscriptions left`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function newProject(name: string) {
  return (await c.call('ProjectService', 'CreateProject', { name })).project;
}
async function newTask(projectId: string, title: string) {
  return (await c.call('TaskService', 'CreateTask', { projectId, title, createdById: workerId })).task;
}

describe.each(PROTOCOLS)('WatchTasks over %s', (protocol) => {
  it('replays the events after after_event_id, then streams new ones as they commit', async () => {
    const project = await newProject(`replay ${protocol}`);
    const first = await newTask(project.id, 'first');
    await c.call('TaskService', 'UpdateTask', { task: { id: first.id, title: 'first, renamed' }, updateMask: 'title' });
    const [created, updated] = (await tableEvents()).filter((e) => e.task_id === first.id);

    const s = watch(protocol, { projectId: project.id, afterEventId: created!.id });
    await s.until(has(updated!.id));
    expect(eventsOf(s.messages)[0]).toMatchObject({
      id: updated!.id,
      taskId: first.id,
      projectId: project.id,
      kind: 'updated',
      taskVersion: '2',
    });
    expect(eventsOf(s.messages)[0].data.changes.title).toEqual({ before: 'first', after: 'first, renamed' });

    const second = await newTask(project.id, 'second');
    const live = await s.until((m) => m.some((x) => x.event.taskId === second.id));
    const event = eventsOf(live).find((e) => e.taskId === second.id);
    expect(event).toMatchObject({ kind: 'created', actorId: workerId, taskVersion: '1' });
    expect(Date.parse(event.createdAt)).not.toBeNaN();
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
    const otherWorker = (await oc.call('WorkerService', 'CreateWorker', { handle: '@other' })).worker.id;
    const otherProject = (await oc.call('ProjectService', 'CreateProject', { name: 'theirs' })).project;
    const theirFirst = (
      await oc.call('TaskService', 'CreateTask', {
        projectId: otherProject.id,
        title: 'theirs',
        createdById: otherWorker,
      })
    ).task;
    const theirEvent = (await tableEvents(other.id)).find((e) => e.task_id === theirFirst.id)!;

    // Their event id is no position in this tenant's feed. (In schema mode every tenant numbers
    // its own events, so the same number may well be one of ours: then ask for one nobody has.)
    const ours = new Set((await tableEvents()).map((e) => e.id));
    const foreign = watch(protocol, { afterEventId: ours.has(theirEvent.id) ? '999999999' : theirEvent.id });
    expect((await foreign.ended)?.code).toBe('NOT_FOUND');

    const project = await newProject(`mine ${protocol}`);
    const s = watch(protocol, {});
    await streamIsLive(s, project.id);
    await oc.call('TaskService', 'CreateTask', {
      projectId: otherProject.id,
      title: 'theirs again',
      createdById: otherWorker,
    });
    const mine = await newTask(project.id, 'mine');
    await oc.call('TaskService', 'CreateTask', {
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
    expect((await s.ended)?.code).toBe('DEADLINE_EXCEEDED');
  });

  it('ends with UNAUTHENTICATED at its next read once its API key is revoked', async () => {
    const admin = t.client('connect', { authorization: `Bearer ${t.adminToken}` });
    const key = await admin.call('TenantService', 'CreateApiKey', { tenantId: tenant.id, name: 'short-lived' });
    const project = await newProject(`revoked ${protocol}`);
    const s = watch(
      protocol,
      { projectId: project.id },
      { 'x-tenant-id': tenant.id, authorization: `Bearer ${key.secret}` },
    );
    await streamIsLive(s, project.id);
    await admin.call('TenantService', 'RevokeApiKey', { tenantId: tenant.id, apiKeyId: key.apiKeyId });
    await newTask(project.id, 'after the revocation');
    expect((await s.ended)?.code).toBe('UNAUTHENTICATED');
  });

  it('rejects a malformed request with INVALID_ARGUMENT naming the field', async () => {
    const s = watch(protocol, { projectId: '-1' });
    const err = await s.ended;
    expect(err?.code).toBe('INVALID_ARGUMENT');
    expect(err?.message).toContain('project_id');
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
        await wc.call('TaskService', 'UpdateTask', {
          task: { id: task.id, title: `w${w} n${n}` },
          updateMask: 'title',
        });
        if (n % 5 === 0)
          await wc.call('TaskService', 'CreateTask', {
            projectId: project.id,
            title: `w${w} new ${n}`,
            createdById: workerId,
          });
        n++;
      }
    };
    const writers = [0, 1, 2, 3].map(writer);

    const received: Json[] = [];
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
    const expected: Json[] = [];
    let pageToken = '';
    do {
      const page = await c.call('TaskService', 'ListTaskEvents', { projectId: project.id, pageSize: 500, pageToken });
      expected.push(...(page.events ?? []).filter((e: Json) => BigInt(e.id) > BigInt(start)));
      pageToken = page.nextPageToken ?? '';
    } while (pageToken !== '');
    expect(expected.map((e) => e.id)).toEqual(
      (await tableEvents(tenant.id, project.id)).filter((e) => BigInt(e.id) > BigInt(start)).map((e) => e.id),
    );
    const seenAll = (m: Json[]) => {
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
    // Every event arrived whole, as ListTaskEvents has it. (Times compared as instants: Connect
    // JSON writes a whole second without a fraction, the gRPC helper always with milliseconds.)
    const instant = (e: Json) => ({ ...e, createdAt: Date.parse(e.createdAt) });
    const byId = new Map(received.map((e) => [e.id, instant(e)]));
    for (const e of expected) expect(byId.get(e.id)).toEqual(instant(e));
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
      const { project } = await oc.call('ProjectService', 'CreateProject', { name: 'shutdown' });
      const s = watch(protocol, {}, owner.headers, app);
      await streamIsLive(s, project.id, oc, undefined);
      const started = Date.now();
      const stopping = app.app.stop();
      const err = await s.ended;
      expect(err?.code).toBe('UNAVAILABLE');
      expect(err?.message).toContain('after_event_id');
      await stopping;
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await app.stop();
    }
  });
});
