/**
 * Races a reviewer found, replayed with a third connection holding a lock to fix the timing.
 * (PostgreSQL only: on PGlite transactions never overlap.)
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, type TestTenant, startTestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;
let projectId: string;
let workerId: string;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant();
  c = t.client('connect', tenant.headers);
  projectId = (await c.call('ProjectService', 'CreateProject', { name: 'races' })).project.id;
  workerId = (await c.call('WorkerService', 'CreateWorker', { handle: '@boss' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

async function hold(sql: string, values: unknown[]): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: t.db.url });
  await client.connect();
  await client.query('begin');
  await client.query(sql, values);
  return async () => {
    await client.query('rollback');
    await client.end();
  };
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const task = async (title: string, parentTaskId?: string) =>
  (await c.call('TaskService', 'CreateTask', { projectId, title, parentTaskId, createdById: workerId })).task;

describe('races', () => {
  it('two concurrent moves cannot close a parent cycle', async () => {
    const y = await task('Y');
    const z = await task('Z', y.id);
    const x = await task('X');
    // B (X under Z) passes its cycle check, then waits on Z's row for its foreign key check;
    // meanwhile A (Y under X) would pass its own check on a snapshot without B's move.
    const release = await hold('select 1 from tasks where id = $1::bigint for update', [z.id]);
    const b = c.call('TaskService', 'UpdateTask', { task: { id: x.id, parentTaskId: z.id }, updateMask: 'parentTaskId' });
    await pause(300);
    const a = c.call('TaskService', 'UpdateTask', { task: { id: y.id, parentTaskId: x.id }, updateMask: 'parentTaskId' }).catch((e) => e);
    await pause(300);
    await release();
    await expect(b).resolves.toBeDefined();
    expect((await a).code).toBe('FAILED_PRECONDITION');
    const { task: yAfter } = await c.call('TaskService', 'GetTask', { id: y.id });
    expect(yAfter.parentTaskId).toBeUndefined();
  });

  it('an assignment racing the delete of its worker is undone visibly: new version and event', async () => {
    const { worker } = await c.call('WorkerService', 'CreateWorker', { handle: '@leaver' });
    const victim = await task('assigned while its worker leaves');
    // The delete waits for the worker's row; the assignment (key-share on the worker) goes first.
    const release = await hold('select 1 from workers where id = $1::bigint for key share', [worker.id]);
    const deleting = c.call('WorkerService', 'DeleteWorker', { id: worker.id });
    await pause(300);
    const { task: assigned } = await c.call('TaskService', 'AssignTask', { id: victim.id, workerId: worker.id });
    expect(assigned.version).toBe('2');
    await release();
    await deleting;
    const { task: after } = await c.call('TaskService', 'GetTask', { id: victim.id });
    expect(after.assigneeId).toBeUndefined();
    expect(after.version).toBe('3');
  });

  it('a call still running when the grace period ends gets UNAVAILABLE even if its statement then completes', async () => {
    const own = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '300' } });
    try {
      const ten = await own.tenant();
      const cl = own.client('connect', ten.headers);
      const { project } = await cl.call('ProjectService', 'CreateProject', { name: 'p' });
      const locker = new pg.Client({ connectionString: own.db.url });
      await locker.connect();
      await locker.query('begin');
      await locker.query('lock table tasks in access exclusive mode');
      const call = cl.call('TaskService', 'ListTasks', { projectId: project.id }).catch((e) => e);
      await pause(200);
      const stopping = own.app.stop();
      await pause(350); // past the grace period: the call's signal is aborted
      await locker.query('rollback'); // now its statement completes; the next check sees the abort
      await locker.end();
      expect((await call).code).toBe('UNAVAILABLE');
      await stopping;
    } finally {
      await own.stop().catch(() => {});
    }
  });
});

describe('connection routing', () => {
  it.each([['P'], ['PRI * HTTP/2.0\r\n'], ['PRI * HTTP/2.0\r\n\r\nSM']])(
    'a connection that sent only part of the HTTP/2 preface (%j) does not stall the server',
    async (partial) => {
      const socket = net.connect(t.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(partial);
      await pause(100);
      const started = Date.now();
      const res = await fetch(`http://127.0.0.1:${t.port}/grpc.health.v1.Health/Check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(await res.json()).toEqual({ status: 'SERVING' });
      expect(Date.now() - started).toBeLessThan(2_000);
      socket.destroy();
    },
  );
});
