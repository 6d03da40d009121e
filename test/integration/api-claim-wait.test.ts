/**
 * ClaimTask's long poll (wait_seconds, SPEC §6) through real clients, on PostgreSQL and PGlite:
 * woken by a create well within the wait, empty when the wait runs out, woken by time alone
 * for a retry time or a lease end, bounded by the call's deadline, ended by a cancel and by a
 * shutdown. The server's subscriptions (services.feed.size) tell when a claim is waiting.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/app.js';
import type { ApiClient } from '../helpers/clients.js';
import { Code, expectRpcError, ts } from '../helpers/expect-rpc.js';
import { waitFor } from '../helpers/wait.js';

let t: TestApp;
let tenant: TestTenant;
let c: ApiClient;

beforeAll(async () => {
  t = await startTestApp();
  tenant = await t.tenant({ withWorker: true });
  c = t.client('connect', tenant.headers);
});
afterAll(async () => {
  await t?.stop();
});

/** Resolves once `n` calls of the app wait on its change feed. */
const untilWaiting = (app: TestApp, n = 1) =>
  waitFor(() => app.app.services.feed.size >= n, `${n} call(s) waiting on the change feed`);

async function newProject(name: string) {
  return (await c.ProjectService.createProject({ name })).project;
}

describe.each(PROTOCOLS)('ClaimTask with wait_seconds over %s', (protocol) => {
  it('is woken by a create, well within the wait', async () => {
    const project = await newProject(`woken ${protocol}`);
    const client = t.client(protocol, tenant.headers);
    const started = Date.now();
    const claim = client.TaskService.claimTask({ projectId: project.id, waitSeconds: 20 });
    await untilWaiting(t);
    const { task } = await c.TaskService.createTask({ projectId: project.id, title: 'fresh work' });
    const res = await claim;
    expect(res.task?.id).toBe(task.id);
    expect(res.leaseToken).toBeGreaterThan(0n);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers empty once the wait is over', async () => {
    const project = await newProject(`empty ${protocol}`);
    const started = Date.now();
    const res = await t
      .client(protocol, tenant.headers)
      .TaskService.claimTask({ projectId: project.id, waitSeconds: 1 });
    const elapsed = Date.now() - started;
    expect(res.task).toBeUndefined();
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(5_000);
    expect(t.app.services.feed.size).toBe(0);
  });
});

describe('ClaimTask with wait_seconds', () => {
  it('wakes, with no write to wake it, when a task becomes claimable with time (not_before)', async () => {
    const project = await newProject('not before');
    const notBefore = new Date(Date.now() + 1_500);
    const { task } = await c.TaskService.createTask({
      projectId: project.id,
      title: 'later',
      notBefore: ts(notBefore),
    });
    const started = Date.now();
    const res = await c.TaskService.claimTask({ projectId: project.id, waitSeconds: 20 });
    expect(res.task?.id).toBe(task.id);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore.getTime() - 50);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('wakes when another worker’s lease runs out', async () => {
    const project = await newProject('lease ends');
    const { task } = await c.TaskService.createTask({ projectId: project.id, title: 'abandoned' });
    const first = await c.TaskService.claimTask({ projectId: project.id, leaseSeconds: 1 });
    expect(first.task.id).toBe(task.id);
    const started = Date.now();
    const second = await c.TaskService.claimTask({ projectId: project.id, waitSeconds: 20 });
    expect(second.task?.id).toBe(task.id);
    expect(second.leaseToken).toBeGreaterThan(first.leaseToken);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers empty before the call’s deadline rather than waiting past it', async () => {
    const project = await newProject('deadline');
    const started = Date.now();
    const res = await t
      .client('grpc', tenant.headers)
      .TaskService.claimTask({ projectId: project.id, waitSeconds: 30 }, { timeoutMs: 1_500 });
    // An OK answer at all means it came before the deadline (grpc-js enforces it).
    expect(res.task).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThan(800);
  });

  it.each(PROTOCOLS)('stops waiting at once when the %s client cancels', async (protocol) => {
    const project = await newProject(`cancel ${protocol}`);
    const abort = new AbortController();
    const claim = t
      .client(protocol, tenant.headers)
      .TaskService.claimTask({ projectId: project.id, waitSeconds: 30 }, { signal: abort.signal });
    await untilWaiting(t);
    abort.abort();
    await expectRpcError(claim, Code.Canceled);
    // The server let go of the wait too (long before the 30 s).
    await waitFor(() => t.app.services.feed.size === 0, 'the server to stop waiting after the cancel', 10_000);
    // And nothing was claimed behind the client's back.
    const { task } = await c.TaskService.createTask({ projectId: project.id, title: 'after the cancel' });
    expect((await c.TaskService.claimTask({ projectId: project.id })).task?.id).toBe(task.id);
  });

  it('answers empty at once when the server stops', async () => {
    const app = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '30000' } });
    try {
      const owner = await app.tenant({ withWorker: true });
      const client = app.client('grpc', owner.headers);
      const { project } = await client.ProjectService.createProject({ name: 'stopping' });
      const claim = client.TaskService.claimTask({ projectId: project.id, waitSeconds: 60 });
      claim.catch(() => {}); // awaited below, after the stop: a failure must not count as unhandled
      await untilWaiting(app);
      const started = Date.now();
      await app.app.stop();
      // An answer, not an error: empty.
      const res = await claim;
      expect(res.task).toBeUndefined();
      expect(res.leaseToken).toBe(0n);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await app.stop();
    }
  });
});
