/**
 * Races a reviewer found, replayed with a third connection holding a lock to fix the timing.
 * (PostgreSQL only: on PGlite transactions never overlap.)
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { Code, expectRpcError, mask } from '../helpers/expect-rpc.js';
import { healthStatus, ServingStatus } from '../helpers/health.js';
import { holdLock } from '../helpers/wait.js';

let t: TestApp;
let c: ApiClient;
let projectId: bigint;
let workerId: bigint;

beforeAll(async () => {
  t = await startTestApp();
  c = t.client('connect', (await t.tenant()).headers);
  projectId = (await c.ProjectService.createProject({ name: 'races' })).project.id;
  workerId = (await c.WorkerService.createWorker({ handle: '@boss' })).worker.id;
});
afterAll(async () => {
  await t?.stop();
});

const task = async (title: string, parentTaskId?: bigint) =>
  (await c.TaskService.createTask({ projectId, title, parentTaskId, createdById: workerId })).task;

describe('races', () => {
  it('two concurrent moves cannot close a parent cycle', async () => {
    const y = await task('Y');
    const z = await task('Z', y.id);
    const x = await task('X');
    // B (X under Z) passes its cycle check, then waits on Z's row for its foreign key check;
    // meanwhile A (Y under X) would pass its own check on a snapshot without B's move.
    const lock = await holdLock(t.db.url, 'select 1 from tasks where id = $1::bigint for update', [z.id]);
    try {
      const b = c.TaskService.updateTask({ task: { id: x.id, parentTaskId: z.id }, updateMask: mask('parentTaskId') });
      await lock.waiters(1);
      const a = c.TaskService.updateTask({ task: { id: y.id, parentTaskId: x.id }, updateMask: mask('parentTaskId') });
      // Handled from now on: A may be refused before B's answer is read below.
      const aRefused = expectRpcError(a, Code.FailedPrecondition, 'parent_task_id');
      // A waits for B's advisory lock on the project's tree.
      await lock.waiters(2);
      await lock.release();
      expect((await b).task.parentTaskId).toBe(z.id);
      await aRefused;
    } finally {
      await lock.release();
    }
    const { task: yAfter } = await c.TaskService.getTask({ id: y.id });
    expect(yAfter.parentTaskId).toBeUndefined();
  });

  it('an assignment racing the delete of its worker is undone visibly: new version and event', async () => {
    const { worker } = await c.WorkerService.createWorker({ handle: '@leaver' });
    const victim = await task('assigned while its worker leaves');
    // The delete waits for the worker's row; the assignment (key-share on the worker) goes first.
    const lock = await holdLock(t.db.url, 'select 1 from workers where id = $1::bigint for key share', [worker.id]);
    try {
      const deleting = c.WorkerService.deleteWorker({ id: worker.id });
      await lock.waiters(1);
      const { task: assigned } = await c.TaskService.assignTask({ id: victim.id, workerId: worker.id });
      expect(assigned.version).toBe(2n);
      await lock.release();
      await deleting;
    } finally {
      await lock.release();
    }
    const { task: after } = await c.TaskService.getTask({ id: victim.id });
    expect(after.assigneeId).toBeUndefined();
    expect(after.version).toBe(3n);
  });
});

describe('connection routing', () => {
  it.each([['P'], ['PRI * HTTP/2.0\r\n'], ['PRI * HTTP/2.0\r\n\r\nSM']])(
    'a connection that sent only part of the HTTP/2 preface (%j) does not stall the server',
    async (partial) => {
      const socket = net.connect(t.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      await new Promise((r) => socket.write(partial, r));
      try {
        // A stalled event loop answers nothing: the probe's bound fails the test.
        expect(await healthStatus('connect', t.port)).toBe(ServingStatus.SERVING);
      } finally {
        socket.destroy();
      }
    },
  );
});
