/**
 * A frozen PostgreSQL (SIGSTOP to the postmaster and every backend: a hung host, a stalled
 * disk, a network partition that drops packets). Nothing answers and nothing refuses, so only
 * deadlines end the calls: each must end promptly with DEADLINE_EXCEEDED or UNAVAILABLE, and
 * never hang. The Connect client only sends `connect-timeout-ms` and does not enforce it
 * itself (ServiceProcess.client): its calls show the SERVER ending them at their deadline.
 * After SIGCONT the service serves again.
 *
 * Where the next person trips: connect-node does not end a call at its deadline on its own; it
 * aborts the handler's signal and waits for the handler (connect-es PR #591: "It is up to the
 * implementation to honor the AbortSignal"). `statement_timeout` runs on the server, which is
 * frozen, and TCP keepalive sees a live kernel socket; so a statement already sent is bounded
 * by nothing unless the service cancels it when the signal fires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../helpers/clients.js';
import { PostgresCluster } from './support/postgres-cluster.js';
import { waitFor } from './support/processes.js';
import { codeOf, ServiceProcess, type ServiceTenant } from './support/service.js';

const DB = 'taskapi';
const DEADLINE_MS = 1_000;
/** How late past its deadline a call may end (a loaded 2-core machine). */
const SLACK_MS = 1_500;
let cluster: PostgresCluster;
let service: ServiceProcess;
let frozen: number[] = [];

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  await cluster.query(`create database ${DB}`);
  service = await ServiceProcess.start(cluster.url(DB), { DB_POOL_MAX: '4' });
});

afterAll(async () => {
  cluster?.thaw(frozen);
  service?.kill();
  cluster?.destroy();
});

async function timed(client: ApiClient, tenant: ServiceTenant, method: 'GetTask' | 'CreateTask', n: number) {
  const started = Date.now();
  // The abort only keeps a hung server from hanging the suite; it shows up as CANCELLED.
  const options = { timeoutMs: DEADLINE_MS, signal: AbortSignal.timeout(DEADLINE_MS + 5_000) };
  const call =
    method === 'GetTask'
      ? client.TaskService.getTask({ id: 1n }, options)
      : client.TaskService.createTask(
          { projectId: tenant.projectId, title: `frozen ${n}`, createdById: tenant.workerId, requestId: `frozen-${n}` },
          options,
        );
  const outcome = await call.then(
    () => 'succeeded',
    (err: unknown) => codeOf(err),
  );
  return { outcome, ms: Date.now() - started };
}

describe('PostgreSQL frozen (SIGSTOP)', () => {
  it('ends every call by its deadline with DEADLINE_EXCEEDED or UNAVAILABLE, and recovers after SIGCONT', async () => {
    const tenant = await service.tenant('frozen');
    const grpc = service.client('grpc', tenant.headers);
    const connect = service.client('connect', tenant.headers);
    // Warm pooled connections, so that some calls meet a frozen backend mid-statement and
    // others wait for the pool or a new connection.
    await Promise.all([0, 1, 2, 3].map(() => connect.TaskService.listTasks({ projectId: tenant.projectId })));

    frozen = cluster.freeze();
    let results: { outcome: string; ms: number }[];
    let health: string;
    try {
      const calls = [];
      for (let n = 0; n < 8; n++)
        calls.push(timed(n % 2 ? grpc : connect, tenant, n % 4 < 2 ? 'GetTask' : 'CreateTask', n));
      const healthStarted = Date.now();
      health = await service.health(DEADLINE_MS);
      const healthMs = Date.now() - healthStarted;
      results = await Promise.all(calls);
      console.log(`frozen: ${JSON.stringify(results)}; health ${health} in ${healthMs} ms`);
      expect(healthMs).toBeLessThan(DEADLINE_MS + SLACK_MS);
    } finally {
      cluster.thaw(frozen);
      frozen = [];
    }
    // Soft: a hung call is reported, and the recovery below is still checked.
    results.forEach((r, n) => {
      expect.soft(r.outcome, `call ${n} (${n % 2 ? 'gRPC' : 'Connect'})`).toMatch(/^(DEADLINE_EXCEEDED|UNAVAILABLE)$/);
      expect.soft(r.ms, `call ${n} (${n % 2 ? 'gRPC' : 'Connect'}) took`).toBeLessThan(DEADLINE_MS + SLACK_MS);
    });
    expect.soft(['NOT_SERVING', 'DEADLINE_EXCEEDED', 'UNAVAILABLE']).toContain(health);

    const thawed = Date.now();
    await waitFor(
      'a write after SIGCONT',
      () =>
        connect.TaskService.createTask(
          { projectId: tenant.projectId, title: 'thawed', createdById: tenant.workerId },
          { timeoutMs: 2_000 },
        ),
      15_000,
    );
    console.log(`frozen: first write ${Date.now() - thawed} ms after SIGCONT`);
    await waitFor('health SERVING', async () => (await service.health()) === 'SERVING', 10_000);
    // Writes that timed out did not land half-way: each is there with its event, or not at all.
    const halfWritten = await cluster.query<{ n: number }>(
      `select count(*)::int as n from tasks t
        where t.tenant_id = $1::bigint
          and not exists (select 1 from task_events e where e.tenant_id = t.tenant_id and e.task_id = t.id)`,
      [tenant.id],
      DB,
    );
    expect(halfWritten[0]!.n).toBe(0);
    expect(service.crashes()).toEqual([]);
  });
});
