/**
 * Graceful stop: a call that is running when the stop begins finishes normally; new
 * connections are refused; a call still running after the grace period ends with UNAVAILABLE,
 * also when its statement completes afterwards, and also when it is blocked inside PostgreSQL
 * with no client deadline (its statement is cancelled on the server). A lock held from another
 * connection keeps calls running as long as the test wants.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ConnectError } from '@connectrpc/connect';
import { afterAll, describe, expect, it } from 'vitest';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { type ApiClient, connectClient, grpcClient, serviceClient, WorkerType } from '../helpers/clients.js';
import { createTestDatabase } from '../helpers/database.js';
import { ADMIN_TOKEN } from '../helpers/env.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';
import { healthStatus, ServingStatus } from '../helpers/health.js';
import { holdLock, type LockHolder, lockWaiters, waitFor, waitForServiceIdle } from '../helpers/wait.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const t of apps) await t.stop().catch(() => {});
});

async function appWithProject(grace: string) {
  const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: grace } });
  apps.push(t);
  const client = t.client('grpc', (await t.tenant()).headers);
  const { project } = await client.ProjectService.createProject({ name: 'p' });
  return { t, client, project };
}

const portOpen = (port: number) =>
  healthStatus('connect', port).then(
    () => true,
    () => false,
  );

describe('graceful stop', () => {
  it('lets an in-flight call finish within the grace period, and refuses new connections', async () => {
    const { t, client, project } = await appWithProject('30000');
    const lock = await holdLock(t.db.url, 'lock table tasks in access exclusive mode');
    try {
      const call = client.TaskService.listTasks({ projectId: project.id });
      await lock.waiters(1);
      const stopped = t.app.stop();
      await waitFor(async () => !(await portOpen(t.port)), 'the port to close');
      await lock.release();
      const { tasks } = await call;
      expect(tasks).toEqual([]);
      await stopped;
    } finally {
      await lock.release();
    }
  });

  it('ends a call that outlives the grace period with UNAVAILABLE, before its statement completes', async () => {
    const { t, client, project } = await appWithProject('300');
    const lock = await holdLock(t.db.url, 'lock table tasks in access exclusive mode');
    try {
      const call = client.TaskService.listTasks({ projectId: project.id });
      await lock.waiters(1);
      const stopping = t.app.stop();
      // Still locked: the answer cannot come from the statement.
      await expectRpcError(call, Code.Unavailable);
      // The statement now completes; the call's abort was seen first, so nothing else is sent.
      await lock.release();
      await stopping;
    } finally {
      await lock.release();
    }
  });
});

/** The port of the 'listening' log line (JSON; field order is the logger's business), or 0. */
function listeningPort(output: string): number {
  for (const line of output.split('\n')) {
    if (!line.includes('"listening"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === 'listening' && entry.port) return entry.port;
    } catch {
      // a partial line: the rest is still coming
    }
  }
  return 0;
}

/** Ten UpdateTask calls on one task, five over gRPC and five over Connect, no deadline; their codes. */
function updateTenTimes(grpc: ApiClient, connect: ApiClient, taskId: bigint): Promise<(Code | 'OK')[]> {
  const update = (client: ApiClient, i: number) =>
    client.TaskService.updateTask({ task: { id: taskId, title: `t${i}` }, updateMask: { paths: ['title'] } }).then(
      () => 'OK' as const,
      (err: unknown) => ConnectError.from(err).code,
    );
  return Promise.all([
    ...[0, 1, 2, 3, 4].map((i) => update(grpc, i)),
    ...[5, 6, 7, 8, 9].map((i) => update(connect, i)),
  ]);
}

const forUpdate = 'select id from tasks where id = $1 for update';

describe('a stop with calls blocked on a row lock and no client deadline', () => {
  it('cancels their statements after the grace period: every call gets UNAVAILABLE, over gRPC and Connect, in about the grace period', async () => {
    const graceMs = 800;
    // One tenant may hold five of the ten pooled connections: five calls block on the lock, five
    // wait in the tenant's queue. Both kinds must end with UNAVAILABLE.
    const t = await startTestApp({
      env: { SHUTDOWN_GRACE_MS: String(graceMs), DB_POOL_MAX: '10', DB_POOL_TENANT_MAX: '5' },
    });
    apps.push(t);
    const tenant = await t.tenant({ withWorker: true });
    const grpc = t.client('grpc', tenant.headers);
    const connect = t.client('connect', tenant.headers);
    const { project } = await grpc.ProjectService.createProject({ name: 'p' });
    const { task } = await grpc.TaskService.createTask({ projectId: project.id, title: 'held' });
    const lock = await holdLock(t.db.url, forUpdate, [task.id.toString()]);
    try {
      const calls = updateTenTimes(grpc, connect, task.id);
      await lock.waiters(5);

      const started = Date.now();
      await t.app.stop();
      const took = Date.now() - started;
      expect(await calls).toEqual(Array(10).fill(Code.Unavailable));
      // The lock is still held: the calls ended because their statements were cancelled.
      expect(took).toBeGreaterThanOrEqual(graceMs);
      expect(took).toBeLessThan(graceMs + 2_000);
      await waitForServiceIdle(t.db.url);
    } finally {
      await lock.release();
    }
  });
});

describe('health during a stop', () => {
  it('an open health watch hears NOT_SERVING as soon as the stop begins, then ends, while a call still runs', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '30000' } });
    apps.push(t);
    const api = t.client('grpc', (await t.tenant({ withWorker: true })).headers);
    const { project } = await api.ProjectService.createProject({ name: 'p' });
    const { task } = await api.TaskService.createTask({ projectId: project.id, title: 'held' });
    const lock = await holdLock(t.db.url, forUpdate, [task.id.toString()]);
    const health = serviceClient('grpc', t.port, Health);
    try {
      const blocked = api.TaskService.updateTask({
        task: { id: task.id, title: 'x' },
        updateMask: { paths: ['title'] },
      });
      await lock.waiters(1);
      const statuses: ServingStatus[] = [];
      let stopping: Promise<void> | undefined;
      for await (const { status } of health.watch({ service: '' })) {
        statuses.push(status);
        // The stop begins once the watch has said SERVING; the stream must then end by itself.
        stopping ??= t.app.stop();
      }
      expect(statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      // The watch ended within the grace period: the blocked call is still running.
      expect(await lockWaiters(t.db.url)).toBe(1);
      await lock.release();
      expect((await blocked).task.title).toBe('x');
      await stopping;
    } finally {
      health.close();
      await lock.release();
    }
  });
});

describe('streams during a stop', () => {
  it('WatchTasks streams over gRPC and Connect end with UNAVAILABLE as the stop begins; a running call keeps its grace period', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '30000' } });
    apps.push(t);
    const tenant = await t.tenant({ withWorker: true });
    const grpc = t.client('grpc', tenant.headers);
    const connect = t.client('connect', tenant.headers);
    const { project } = await grpc.ProjectService.createProject({ name: 'p' });
    // The streams are opened before the lock is taken: the feed holds back events while an older
    // transaction (the lock holder's) is still open, so that none is ever skipped.
    let lock: LockHolder | undefined;
    try {
      // Streams resume after an event of the tenant: the anchor's; the held task's comes next.
      const { task: anchor } = await grpc.TaskService.createTask({ projectId: project.id, title: 'anchor' });
      const after = (await grpc.TaskService.listTaskEvents({ taskId: anchor.id })).events[0]!.id;
      const { task } = await grpc.TaskService.createTask({ projectId: project.id, title: 'held' });
      const received = { grpc: 0, connect: 0 };
      const watch = (protocol: 'grpc' | 'connect', client: ApiClient) =>
        (async () => {
          try {
            for await (const _ of client.TaskService.watchTasks({
              projectId: project.id,
              afterEventId: after,
            })) {
              received[protocol]++;
            }
            return 'ended without an error';
          } catch (err) {
            return ConnectError.from(err).code;
          }
        })();
      const streams = [watch('grpc', grpc), watch('connect', connect)];
      // Each stream replays the held task's 'created' event first: then it is surely open.
      await waitFor(() => received.grpc > 0 && received.connect > 0, 'both streams to replay the first event');
      lock = await holdLock(t.db.url, forUpdate, [task.id.toString()]);
      const blocked = grpc.TaskService.updateTask({
        task: { id: task.id, title: 'x' },
        updateMask: { paths: ['title'] },
      });
      await lock.waiters(1);

      const stopping = t.app.stop();
      expect(await Promise.all(streams)).toEqual([Code.Unavailable, Code.Unavailable]);
      // The streams did not wait for the grace period: the call is still blocked.
      expect(await lockWaiters(t.db.url)).toBe(1);
      await lock.release();
      expect((await blocked).task.title).toBe('x');
      await stopping;
    } finally {
      await lock?.release();
    }
  });
});

describe('SIGTERM to the process with calls blocked on a row lock', () => {
  it('exits 0 within the grace period plus 2 s, and every blocked call gets UNAVAILABLE', async () => {
    const graceMs = 1_000;
    const tdb = await createTestDatabase({ tenancy: 'row' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: join(import.meta.dirname, '../..'),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: tdb.url,
        PORT: '0',
        HOST: '127.0.0.1',
        ADMIN_TOKEN,
        SHUTDOWN_GRACE_MS: String(graceMs),
        DB_POOL_MAX: '10',
        DB_POOL_TENANT_MAX: '5',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (b) => (output += b));
    child.stderr!.on('data', (b) => (output += b));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let lock: Awaited<ReturnType<typeof holdLock>> | undefined;
    try {
      let port = 0;
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`exited early:\n${output}`);
          port = listeningPort(output);
          return port > 0;
        },
        'the service to listen',
        60_000,
      );
      const admin = connectClient(port, { authorization: `Bearer ${ADMIN_TOKEN}` });
      const { tenant } = await admin.TenantService.createTenant({ name: 'Sig', subdomain: 'sigterm' });
      const { secret } = await admin.TenantService.createApiKey({ tenantId: tenant.id });
      const headers = { 'x-tenant-id': tenant.id.toString(), authorization: `Bearer ${secret}` };
      const grpc = grpcClient(port, headers);
      const connect = connectClient(port, headers);
      const { worker } = await connect.WorkerService.createWorker({ handle: '@w', type: WorkerType.HUMAN });
      const { project } = await connect.ProjectService.createProject({ name: 'p' });
      const { task } = await connect.TaskService.createTask({
        projectId: project.id,
        title: 'held',
        createdById: worker.id,
      });
      lock = await holdLock(tdb.url, forUpdate, [task.id.toString()]);
      const calls = updateTenTimes(grpc, connect, task.id);
      await lock.waiters(5);

      const started = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(graceMs + 2_000);
      expect(await calls).toEqual(Array(10).fill(Code.Unavailable));
      grpc.close();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await lock?.release();
      await tdb.drop();
    }
  });
});
