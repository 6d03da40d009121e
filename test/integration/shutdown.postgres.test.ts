/**
 * Graceful stop: a call that is running when the stop begins finishes normally; new
 * connections are refused; a call still running after the grace period ends with UNAVAILABLE,
 * also when it is blocked inside PostgreSQL (its statement is cancelled on the server) and the
 * client set no deadline. A lock held from another connection keeps calls running as long as
 * the test wants.
 */
import { spawn } from 'node:child_process';
import * as grpcJs from '@grpc/grpc-js';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type TestApp, startTestApp } from '../helpers/app.js';
import { RpcError, connectClient, grpcClient } from '../helpers/clients.js';
import { createTestDatabase } from '../helpers/database.js';
import { ADMIN_TOKEN } from '../helpers/env.js';

const apps: TestApp[] = [];
afterAll(async () => {
  for (const t of apps) await t.stop().catch(() => {});
});

async function lockTasks(url: string): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query('lock table tasks in access exclusive mode');
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}

describe('graceful stop', () => {
  it('lets an in-flight call finish within the grace period', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '5000' } });
    apps.push(t);
    const tenant = await t.tenant();
    const client = t.client('grpc', tenant.headers);
    const { project } = await client.call('ProjectService', 'CreateProject', { name: 'p' });
    const unlock = await lockTasks(t.db.url);
    const call = client.call('TaskService', 'ListTasks', { projectId: project.id });
    await new Promise((r) => setTimeout(r, 300)); // the call is now waiting on the lock
    const stopped = t.app.stop();
    await new Promise((r) => setTimeout(r, 300));
    await unlock();
    await expect(call).resolves.toBeDefined();
    await stopped;
    // The port is closed now.
    await expect(fetch(`http://127.0.0.1:${t.port}/grpc.health.v1.Health/Check`, { method: 'POST', body: '{}' })).rejects.toThrow();
  });

  it('ends a call that outlives the grace period with UNAVAILABLE', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '300' } });
    apps.push(t);
    const tenant = await t.tenant();
    const client = t.client('grpc', tenant.headers);
    const { project } = await client.call('ProjectService', 'CreateProject', { name: 'p' });
    const unlock = await lockTasks(t.db.url);
    try {
      const call = client.call('TaskService', 'ListTasks', { projectId: project.id }).catch((e) => e);
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const stopping = t.app.stop();
      const err = await call;
      expect(err).toBeInstanceOf(RpcError);
      expect(err.code).toBe('UNAVAILABLE');
      await unlock();
      await stopping;
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await unlock().catch(() => {});
    }
  });
});

/** Polls `condition` until it holds; fails after `timeoutMs`. */
async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Holds `select … for update` on one task from outside the service, as psql would. */
async function lockTaskRow(url: string, taskId: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  await client.query('select id from tasks where id = $1 for update', [taskId]);
  // pg_stat_activity is a snapshot taken once per transaction: watch from outside the one above.
  const monitor = new pg.Client({ connectionString: url });
  await monitor.connect();
  const database = new URL(url).pathname.slice(1);
  return {
    /** Service backends waiting on a lock in this database. */
    async waiting(): Promise<number> {
      const { rows } = await monitor.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where datname = $1 and application_name = 'task-api' and wait_event_type = 'Lock'`,
        [database],
      );
      return rows[0]!.n;
    },
    /** Service backends running anything at all in this database. */
    async busy(): Promise<number> {
      const { rows } = await monitor.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where datname = $1 and application_name = 'task-api' and state <> 'idle'`,
        [database],
      );
      return rows[0]!.n;
    },
    async release() {
      await client.query('rollback').catch(() => {});
      await client.end();
      await monitor.end();
    },
  };
}

describe('a stop with calls blocked on a row lock and no client deadline', () => {
  it('cancels their statements after the grace period: every call gets UNAVAILABLE, over gRPC and Connect, in about the grace period', async () => {
    const graceMs = 800;
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: String(graceMs), DB_POOL_MAX: '10' } });
    apps.push(t);
    const tenant = await t.tenant({ withWorker: true });
    const grpc = t.client('grpc', tenant.headers);
    const connect = t.client('connect', tenant.headers);
    const { project } = await grpc.call('ProjectService', 'CreateProject', { name: 'p' });
    const { task } = await grpc.call('TaskService', 'CreateTask', { projectId: project.id, title: 'held' });
    const lock = await lockTaskRow(t.db.url, task.id);
    try {
      const update = (client: typeof grpc, i: number) =>
        client.call('TaskService', 'UpdateTask', { task: { id: task.id, title: `t${i}` }, updateMask: 'title' }).then(
          () => 'OK',
          (err: RpcError) => err,
        );
      const calls = [...[0, 1, 2, 3, 4].map((i) => update(grpc, i)), ...[5, 6, 7, 8, 9].map((i) => update(connect, i))];
      await waitFor('10 calls blocked on the row lock', async () => (await lock.waiting()) === 10);

      const started = Date.now();
      await t.app.stop();
      const took = Date.now() - started;
      const outcomes = await Promise.all(calls);
      for (const outcome of outcomes) {
        expect(outcome).toBeInstanceOf(RpcError);
        expect((outcome as RpcError).code, (outcome as RpcError).message).toBe('UNAVAILABLE');
        expect((outcome as RpcError).message).toContain('shutting down');
      }
      // The lock is still held: the calls ended because their statements were cancelled.
      expect(took).toBeGreaterThanOrEqual(graceMs);
      expect(took).toBeLessThan(graceMs + 2_000);
      expect(await lock.busy()).toBe(0);
    } finally {
      await lock.release();
    }
  });
});

describe('health during a stop', () => {
  it('an open health watch hears NOT_SERVING as soon as the stop begins, then ends, while a call still runs', async () => {
    const t = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '5000' } });
    apps.push(t);
    const tenant = await t.tenant({ withWorker: true });
    const api = t.client('grpc', tenant.headers);
    const { project } = await api.call('ProjectService', 'CreateProject', { name: 'p' });
    const { task } = await api.call('TaskService', 'CreateTask', { projectId: project.id, title: 'held' });
    const lock = await lockTaskRow(t.db.url, task.id);
    const health = new grpcJs.Client(`127.0.0.1:${t.port}`, grpcJs.credentials.createInsecure());
    try {
      const blocked = api.call('TaskService', 'UpdateTask', { task: { id: task.id, title: 'x' }, updateMask: 'title' }).catch((e: RpcError) => e);
      await waitFor('the call to block on the row lock', async () => (await lock.waiting()) === 1);
      // HealthCheckResponse.status is field 1: [0x08, status]; SERVING = 1, NOT_SERVING = 2.
      const statuses: number[] = [];
      const watch = health.makeServerStreamRequest('/grpc.health.v1.Health/Watch', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0));
      watch.on('data', (b: Buffer) => statuses.push(b[1] ?? 0));
      const ended = new Promise<number>((resolve) => {
        watch.on('status', (status: grpcJs.StatusObject) => resolve(status.code));
        watch.on('error', () => {});
      });
      await waitFor('SERVING', async () => statuses.length === 1);
      expect(statuses).toEqual([1]);

      const stopping = t.app.stop();
      expect(await ended).toBe(grpcJs.status.OK);
      expect(statuses).toEqual([1, 2]);
      // The watch ended within the grace period: the blocked call is still running.
      expect(await lock.waiting()).toBe(1);
      await lock.release();
      await expect(blocked).resolves.toBeDefined();
      await stopping;
    } finally {
      health.close();
      await lock.release().catch(() => {});
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
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (b) => (output += b));
    child.stderr!.on('data', (b) => (output += b));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let lock: Awaited<ReturnType<typeof lockTaskRow>> | undefined;
    try {
      let port = 0;
      await waitFor('the service to listen', async () => {
        if (child.exitCode !== null) throw new Error(`exited early:\n${output}`);
        port = Number(/"msg":"listening","port":(\d+)/.exec(output)?.[1] ?? 0);
        return port > 0;
      }, 30_000);
      const admin = connectClient(port, { authorization: `Bearer ${ADMIN_TOKEN}` });
      const { tenant } = await admin.call('TenantService', 'CreateTenant', { name: 'Sig', subdomain: 'sigterm' });
      const { secret } = await admin.call('TenantService', 'CreateApiKey', { tenantId: tenant.id });
      const headers = { 'x-tenant-id': tenant.id, authorization: `Bearer ${secret}` };
      const grpc = grpcClient(port, headers);
      const connect = connectClient(port, headers);
      const { worker } = await connect.call('WorkerService', 'CreateWorker', { handle: '@w', type: 'WORKER_TYPE_HUMAN' });
      const { project } = await connect.call('ProjectService', 'CreateProject', { name: 'p' });
      const { task } = await connect.call('TaskService', 'CreateTask', { projectId: project.id, title: 'held', createdById: worker.id });
      lock = await lockTaskRow(tdb.url, task.id);
      const update = (client: typeof grpc, i: number) =>
        client.call('TaskService', 'UpdateTask', { task: { id: task.id, title: `t${i}` }, updateMask: 'title' }).then(
          () => 'OK',
          (err: RpcError) => err.code,
        );
      const calls = [...[0, 1, 2, 3, 4].map((i) => update(grpc, i)), ...[5, 6, 7, 8, 9].map((i) => update(connect, i))];
      const held = lock;
      await waitFor('10 calls blocked on the row lock', async () => (await held.waiting()) === 10);

      const started = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(graceMs + 2_000);
      expect(await Promise.all(calls)).toEqual(Array(10).fill('UNAVAILABLE'));
      grpc.close();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await lock?.release();
      await tdb.drop();
    }
  });
});
