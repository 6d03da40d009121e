/**
 * What only a PostgreSQL server can show about WatchTasks: concurrent transactions that commit
 * their events out of id order, a bulk write that waited for a task's row lock, several service
 * instances on one database, a lost LISTEN connection, and polling without LISTEN. Transactions
 * are held open from a separate connection (as the superuser) for as long as the test needs.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../src/app.js';
import type { Task, TaskEvent } from '../../src/gen/taskapi/v1/resources_pb.js';
import { silentLogger } from '../../src/logger.js';
import { startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import { type ApiClient, connectClient, grpcClient } from '../helpers/clients.js';
import { mask } from '../helpers/expect-rpc.js';
import { collect, type ServerStream } from '../helpers/streams.js';
import { waitFor, waitForLockWaiters } from '../helpers/wait.js';

type Message = { event: TaskEvent };

// Notifications must do the waking here: the re-check timer would only fire after 10 minutes.
const NO_TIMER = { WATCH_POLL_INTERVAL_MS: '600000' };

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let workerId: bigint;
const streams: ServerStream<Message>[] = [];
const apis: ApiClient[] = [];
const clients: pg.Client[] = [];

beforeAll(async () => {
  t = await startTestApp({ env: NO_TIMER });
  tenant = await t.tenant();
  c = t.client('grpc', tenant.headers);
  workerId = (await c.WorkerService.createWorker({ handle: '@racer' })).worker.id;
});
afterAll(async () => {
  for (const s of streams) s.cancel();
  for (const api of apis) api.close();
  for (const client of clients) await client.end().catch(() => {});
  await t?.stop();
});

async function superuser(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: t.db.url });
  await client.connect();
  clients.push(client);
  return client;
}

/** A typed client of the instance on `port`, closed after the file. */
function client(protocol: 'grpc' | 'connect', port: number): ApiClient {
  const api = protocol === 'grpc' ? grpcClient(port, tenant.headers) : connectClient(port, tenant.headers);
  apis.push(api);
  return api;
}

function watch(request: { projectId: bigint; afterEventId: bigint }, port = t.port): ServerStream<Message> {
  const api = port === t.port ? c : client('grpc', port);
  const s = collect((options) => api.TaskService.watchTasks(request, options));
  streams.push(s);
  return s;
}
const has = (id: bigint) => (messages: readonly Message[]) => messages.some((m) => m.event.id === id);
const eventsOf = (messages: readonly Message[]) => messages.map((m) => m.event);

async function setup(name: string, titles: string[]) {
  const { project } = await c.ProjectService.createProject({ name });
  const tasks = [];
  for (const title of titles)
    tasks.push((await c.TaskService.createTask({ projectId: project.id, title, createdById: workerId })).task);
  const admin = await superuser();
  const { rows } = await admin.query<{ id: string }>(
    `select max(id)::text as id from task_events where tenant_id = $1`,
    [tenant.id],
  );
  return { project, tasks, lastEventId: BigInt(rows[0]!.id), admin };
}

/** Waits until `n` statements of the service wait for a lock (blocked writers). */
const untilSomeoneWaitsForALock = (n = 1) => waitForLockWaiters(t.db.url, n);

describe('WatchTasks on PostgreSQL', () => {
  it('delivers an event whose transaction drew a lower id but committed after a later one', async () => {
    const { project, tasks, lastEventId, admin } = await setup('out of order', ['held', 'quick']);
    const s = watch({ projectId: project.id, afterEventId: lastEventId });

    // A transaction draws event id N and stays open...
    await admin.query('begin');
    let held: bigint;
    let quick: bigint;
    try {
      held = BigInt(
        (
          await admin.query<{ id: string }>(
            `insert into task_events (tenant_id, task_id, project_id, kind, actor_id, data)
           values ($1, $2, $3, 'updated', null, '{"held": true}') returning id::text as id`,
            [tenant.id, tasks[0]!.id, project.id],
          )
        ).rows[0]!.id,
      );
      // ...while a later write (id N+k) commits.
      await c.TaskService.updateTask({
        task: { id: tasks[1]!.id, title: 'quick, renamed' },
        updateMask: mask('title'),
      });
      const observer = await superuser();
      const { rows } = await observer.query<{ id: string }>(
        `select max(id)::text as id from task_events where task_id = $1`,
        [tasks[1]!.id],
      );
      quick = BigInt(rows[0]!.id);
      expect(quick).toBeGreaterThan(held);

      // A feed that resumed at "id > last" would hand out N+k now and never N. This one waits
      // until nothing older can still commit.
      await expect(s.until(has(quick), 1_500)).rejects.toThrow(/not met/);
      await admin.query('commit');
    } catch (err) {
      await admin.query('rollback');
      throw err;
    }
    await s.until((m) => has(held)(m) && has(quick)(m));
    expect(eventsOf(s.messages).map((e) => e.id)).toEqual([held, quick]);
  });

  it('keeps a task’s events in write order when a bulk completion waited for the task’s row lock', async () => {
    // Task ids in lock order: CompleteProjectTasks locks A, waits for C (held below), and
    // reaches B only after an UpdateTask of B, which began later, has committed.
    const { project, tasks, lastEventId, admin } = await setup('race', ['A', 'C', 'B']);
    const [, taskC, taskB] = tasks as [unknown, Task, Task];
    const s = watch({ projectId: project.id, afterEventId: lastEventId });

    await admin.query('begin');
    let completing: ReturnType<ApiClient['ProjectService']['completeProjectTasks']>;
    try {
      await admin.query(`select id from tasks where tenant_id = $1 and id = $2 for update`, [tenant.id, taskC.id]);
      completing = c.ProjectService.completeProjectTasks({ projectId: project.id });
      await untilSomeoneWaitsForALock();
      await c.TaskService.updateTask({ task: { id: taskB.id, title: 'B, renamed' }, updateMask: mask('title') });
    } finally {
      // An open transaction holds every stream back: never leave one behind.
      await admin.query('rollback');
    }
    expect((await completing).completedCount).toBe(3n);

    const { rows } = await admin.query<{ id: string; kind: string; xact_id: string }>(
      `select e.id::text as id, e.kind, e.xact_id::text as xact_id from task_events e where e.task_id = $1 and e.id > $2 order by e.id`,
      [taskB.id, lastEventId],
    );
    const [updated, completed] = rows.map((r) => BigInt(r.id));
    expect(rows.map((r) => r.kind)).toEqual(['updated', 'completed']);
    // The trap really happened: the completion's transaction is the older one.
    expect(BigInt(rows[1]!.xact_id)).toBeLessThan(BigInt(rows[0]!.xact_id));

    await s.until((m) => has(updated!)(m) && has(completed!)(m));
    const ofB = eventsOf(s.messages).filter((e) => e.taskId === taskB.id);
    expect(ofB.map((e) => [e.kind, e.taskVersion])).toEqual([
      ['updated', 2n],
      ['completed', 3n],
    ]);
    // And a client that resumes after the update gets the completion.
    const resumed = watch({ projectId: project.id, afterEventId: updated! });
    await resumed.until(has(completed!));
  });
});

describe('WatchTasks on PostgreSQL: a forced project delete racing a task write', () => {
  it('records the delete after the write it waited for, with the task’s latest version', async () => {
    const { project, tasks, lastEventId, admin } = await setup('delete race', ['X']);
    const [task] = tasks as [Task];
    const other = (await c.WorkerService.createWorker({ handle: '@other-assignee' })).worker.id;
    const s = watch({ projectId: project.id, afterEventId: lastEventId });
    // The assignment locks the task, then waits (holding that lock) for the worker's row, which
    // the test holds; the forced delete then has to wait for the task.
    await admin.query('begin');
    let assigning: ReturnType<ApiClient['TaskService']['assignTask']>;
    let deleting: ReturnType<ApiClient['ProjectService']['deleteProject']>;
    try {
      await admin.query(`select id from workers where tenant_id = $1 and id = $2 for update`, [tenant.id, other]);
      assigning = c.TaskService.assignTask({ id: task.id, workerId: other });
      await untilSomeoneWaitsForALock();
      deleting = c.ProjectService.deleteProject({ id: project.id, force: true });
      await untilSomeoneWaitsForALock(2);
    } finally {
      await admin.query('rollback');
    }
    const assigned = (await assigning).task;
    await deleting;
    const { rows } = await admin.query<{ id: string }>(
      `select e.id::text as id from task_events e where e.task_id = $1 and e.kind = 'deleted'`,
      [task.id],
    );
    await s.until(has(BigInt(rows[0]!.id)));
    const ofTask = eventsOf(s.messages).filter((e) => e.taskId === task.id);
    expect(ofTask.map((e) => [e.kind, e.taskVersion])).toEqual([
      ['assigned', assigned.version],
      ['deleted', assigned.version],
    ]);
  });
});

describe('several instances, one database', () => {
  let second: App;
  beforeAll(async () => {
    second = await startApp(t.db.config({ ...NO_TIMER, MIGRATE_ON_START: 'false' }), silentLogger);
  });
  afterAll(async () => {
    await second?.stop();
  });

  it('a write through one instance wakes a stream served by another', async () => {
    const { project, lastEventId } = await setup('replicas', ['seed']);
    const s = watch({ projectId: project.id, afterEventId: lastEventId }, second.port);
    const { task } = await c.TaskService.createTask({
      projectId: project.id,
      title: 'via the first',
      createdById: workerId,
    });
    await s.until((m) => m.some((x) => x.event.taskId === task.id), 5_000);
  });

  it('a stream keeps being woken after its instance lost the LISTEN connection', async () => {
    const { project, lastEventId, admin } = await setup('listener lost', ['seed']);
    const s = watch({ projectId: project.id, afterEventId: lastEventId }, second.port);
    const listeners = async () =>
      (
        await admin.query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = current_database() and application_name = 'task-api-listen'`,
        )
      ).rows.map((r) => r.pid);
    const before = await listeners();
    expect(before).toHaveLength(2);
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where pid = any($1::int[])`, [before]);
    // Both instances reconnect on their own.
    await waitFor(async () => {
      const now = await listeners();
      return now.length === 2 && now.every((pid) => !before.includes(pid));
    }, 'both instances to open a new LISTEN connection');
    const { task } = await c.TaskService.createTask({
      projectId: project.id,
      title: 'after the reconnect',
      createdById: workerId,
    });
    await s.until((m) => m.some((x) => x.event.taskId === task.id), 5_000);
  });
});

describe('without LISTEN (DATABASE_LISTEN_URL=off, as behind a transaction-mode PgBouncer)', () => {
  it('streams still get every event, by polling', async () => {
    const polling = await startApp(
      t.db.config({ DATABASE_LISTEN_URL: 'off', WATCH_POLL_INTERVAL_MS: '100', MIGRATE_ON_START: 'false' }),
      silentLogger,
    );
    try {
      const { rows } = await (await superuser()).query(
        `select count(*)::int as n from pg_stat_activity where application_name = 'task-api-listen' and datname = current_database()`,
      );
      const { project, lastEventId } = await setup('polling', ['seed']);
      const s = watch({ projectId: project.id, afterEventId: lastEventId }, polling.port);
      const { task } = await client('connect', polling.port).TaskService.createTask({
        projectId: project.id,
        title: 'polled',
        createdById: workerId,
      });
      await s.until((m) => m.some((x) => x.event.taskId === task.id), 5_000);
      // It opened no LISTEN connection of its own (the other instances' are there).
      const after = await (await superuser()).query(
        `select count(*)::int as n from pg_stat_activity where application_name = 'task-api-listen' and datname = current_database()`,
      );
      expect(after.rows[0].n).toBe(rows[0].n);
    } finally {
      await polling.stop();
    }
  });
});
