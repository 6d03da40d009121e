/**
 * ClaimTask's long poll (wait_seconds, SPEC §6) through real clients, on PostgreSQL and PGlite:
 * woken by a create well within the wait, empty when the wait runs out, woken by time alone
 * for a retry time or a lease end, bounded by the call's deadline, ended by a cancel and by a
 * shutdown. The server's subscriptions (services.feed.size) tell when a claim is waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp, type TestTenant } from '../helpers/legacy/app.js';
import { type ApiClient, RpcError } from '../helpers/legacy/clients.js';

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
async function untilWaiting(app: TestApp, n = 1) {
  for (let i = 0; app.app.services.feed.size < n; i++) {
    if (i > 1000) throw new Error(`${app.app.services.feed.size} waiting, expected ${n}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function newProject(name: string) {
  return (await c.call('ProjectService', 'CreateProject', { name })).project;
}

describe.each(PROTOCOLS)('ClaimTask with wait_seconds over %s', (protocol) => {
  it('is woken by a create, well within the wait', async () => {
    const project = await newProject(`woken ${protocol}`);
    const client = t.client(protocol, tenant.headers);
    const started = Date.now();
    const claim = client.call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 20 });
    await untilWaiting(t);
    const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'fresh work' });
    const res = await claim;
    expect(res.task?.id).toBe(task.id);
    expect(res.leaseToken).toBeDefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers empty once the wait is over', async () => {
    const project = await newProject(`empty ${protocol}`);
    const started = Date.now();
    const res = await t
      .client(protocol, tenant.headers)
      .call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 1 });
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
    const notBefore = new Date(Date.now() + 1_500).toISOString();
    const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'later', notBefore });
    const started = Date.now();
    const res = await c.call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 20 });
    expect(res.task?.id).toBe(task.id);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(notBefore) - 50);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('wakes when another worker’s lease runs out', async () => {
    const project = await newProject('lease ends');
    const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'abandoned' });
    const first = await c.call('TaskService', 'ClaimTask', { projectId: project.id, leaseSeconds: 1 });
    expect(first.task.id).toBe(task.id);
    const started = Date.now();
    const second = await c.call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 20 });
    expect(second.task?.id).toBe(task.id);
    expect(BigInt(second.leaseToken)).toBeGreaterThan(BigInt(first.leaseToken));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers empty before the call’s deadline rather than waiting past it', async () => {
    const project = await newProject('deadline');
    const started = Date.now();
    const res = await t
      .client('grpc', tenant.headers)
      .call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 30 }, { timeoutMs: 1_500 });
    // An OK answer at all means it came before the deadline (grpc-js enforces it).
    expect(res.task).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThan(800);
  });

  it.each(PROTOCOLS)('stops waiting at once when the %s client cancels', async (protocol) => {
    const project = await newProject(`cancel ${protocol}`);
    const abort = new AbortController();
    const claim = t
      .client(protocol, tenant.headers)
      .call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 30 }, { signal: abort.signal });
    await untilWaiting(t);
    abort.abort();
    await expect(claim).rejects.toBeInstanceOf(Error);
    // The server let go of the wait too (long before the 30 s).
    for (let i = 0; t.app.services.feed.size > 0; i++) {
      if (i > 300) throw new Error('the server still waits after the cancel');
      await new Promise((r) => setTimeout(r, 10));
    }
    // And nothing was claimed behind the client's back.
    const { task } = await c.call('TaskService', 'CreateTask', { projectId: project.id, title: 'after the cancel' });
    expect((await c.call('TaskService', 'ClaimTask', { projectId: project.id })).task?.id).toBe(task.id);
  });

  it('answers empty at once when the server stops', async () => {
    const app = await startTestApp({ env: { SHUTDOWN_GRACE_MS: '30000' } });
    try {
      const owner = await app.tenant({ withWorker: true });
      const client = app.client('grpc', owner.headers);
      const { project } = await client.call('ProjectService', 'CreateProject', { name: 'stopping' });
      const claim = client
        .call('TaskService', 'ClaimTask', { projectId: project.id, waitSeconds: 60 })
        .catch((err: RpcError) => err);
      await untilWaiting(app);
      const started = Date.now();
      await app.app.stop();
      const res = await claim;
      expect(res).not.toBeInstanceOf(RpcError);
      expect(res.task).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await app.stop();
    }
  });
});
