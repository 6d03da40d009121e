/**
 * Idempotent write load: loops that create tasks, each with its own request_id, and retry a
 * failed create with the SAME request_id until it is acknowledged. So every logical write ends
 * acknowledged exactly once, and afterwards the database must hold exactly one task per write
 * (none lost, none doubled), each with its history event (nothing half-written).
 */
import { expect } from 'vitest';
import type { ApiClient } from '../../helpers/clients.js';
import type { PostgresCluster } from './postgres-cluster.js';
import { codeOf, type ServiceProcess, type ServiceTenant } from './service.js';

export interface LoadReport {
  /** request_id → task id, for every acknowledged write. */
  readonly acknowledged: Map<string, bigint>;
  /** Failed attempts by gRPC code. */
  readonly errors: Map<string, number>;
  /** Writes still unacknowledged when the load had to give up. */
  readonly unacknowledged: string[];
  /** When each acknowledgement arrived (ms since epoch). */
  readonly ackTimes: number[];
}

export class WriteLoad {
  private stopping = false;
  private readonly report: LoadReport = {
    acknowledged: new Map(),
    errors: new Map(),
    unacknowledged: [],
    ackTimes: [],
  };
  private readonly loops: Promise<void>[];

  /**
   * @param loops number of concurrent loops (half over gRPC, half over Connect)
   * @param callTimeoutMs each attempt's deadline
   * @param giveUpMs how long after stop() a pending write keeps being retried
   */
  constructor(
    service: ServiceProcess,
    private readonly tenant: ServiceTenant,
    loops: number,
    private readonly label: string,
    private readonly callTimeoutMs = 3_000,
    private readonly giveUpMs = 15_000,
  ) {
    this.loops = Array.from({ length: loops }, (_, i) =>
      this.loop(service.client(i % 2 === 0 ? 'grpc' : 'connect', tenant.headers), i),
    );
  }

  private async loop(client: ApiClient, index: number): Promise<void> {
    for (let n = 0; !this.stopping; n++) {
      const requestId = `${this.label}-${index}-${n}`;
      let giveUpAt = Infinity;
      for (;;) {
        if (this.stopping && giveUpAt === Infinity) giveUpAt = Date.now() + this.giveUpMs;
        try {
          const { task } = await client.TaskService.createTask(
            { projectId: this.tenant.projectId, title: requestId, createdById: this.tenant.workerId, requestId },
            { timeoutMs: this.callTimeoutMs },
          );
          this.report.acknowledged.set(requestId, task.id);
          this.report.ackTimes.push(Date.now());
          break;
        } catch (err) {
          const code = codeOf(err);
          this.report.errors.set(code, (this.report.errors.get(code) ?? 0) + 1);
          if (Date.now() > giveUpAt) {
            this.report.unacknowledged.push(requestId);
            return;
          }
          // A refused connection fails in microseconds: pace the retries so that eight loops
          // do not spin the two cores the database needs to come back.
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  }

  /** Acknowledged writes so far. */
  get acknowledgedCount(): number {
    return this.report.acknowledged.size;
  }

  /** First acknowledgement at or after `since` (ms since epoch), if any. */
  firstAckAfter(since: number): number | undefined {
    return this.report.ackTimes.find((t) => t >= since);
  }

  /** Stops starting new writes, lets every pending one be acknowledged (or give up). */
  async stop(): Promise<LoadReport> {
    this.stopping = true;
    await Promise.all(this.loops);
    return this.report;
  }
}

/**
 * Runs `body` while the load runs, then stops the load and returns its report. When `body`
 * fails, that failure is what the test reports (the load's own check would hide it).
 */
export async function underLoad(load: WriteLoad, label: string, body: () => Promise<void>): Promise<LoadReport> {
  try {
    await body();
  } catch (err) {
    console.log(`${label}: ${summary(await load.stop())}`);
    throw err;
  }
  const report = await load.stop();
  console.log(`${label}: ${summary(report)}`);
  return report;
}

/** Waits until `count` more writes were acknowledged than when it was called. */
export async function acknowledgedMore(load: WriteLoad, count: number, timeoutMs = 30_000): Promise<void> {
  const target = load.acknowledgedCount + count;
  const until = Date.now() + timeoutMs;
  while (load.acknowledgedCount < target) {
    if (Date.now() > until) throw new Error(`fewer than ${count} writes acknowledged in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Every failure was UNAVAILABLE (or, where a deadline could expire, DEADLINE_EXCEEDED); every
 * write ended acknowledged; the database holds exactly one task per write, each with exactly one
 * history event, and the acknowledged ids are the ones stored.
 */
export async function expectLoadIntact(
  cluster: PostgresCluster,
  database: string,
  tenant: ServiceTenant,
  report: LoadReport,
  allowed: readonly string[] = ['UNAVAILABLE'],
): Promise<void> {
  const unexpected = [...report.errors.keys()].filter((code) => !allowed.includes(code));
  expect(unexpected, `error codes other than ${allowed.join('/')}: ${JSON.stringify([...report.errors])}`).toEqual([]);
  expect(report.unacknowledged).toEqual([]);
  const rows = await cluster.query<{ id: string; title: string; events: number }>(
    `select t.id::text as id, t.title, count(e.id)::int as events
       from tasks t
       left join task_events e on e.tenant_id = t.tenant_id and e.task_id = t.id
      where t.tenant_id = $1::bigint and t.project_id = $2::bigint
      group by t.tenant_id, t.id, t.title`,
    [tenant.id, tenant.projectId],
    database,
  );
  const stored = new Map(rows.map((r) => [r.title, r]));
  // Exactly one row per write: none lost, and no retry wrote a second one.
  expect(rows.length).toBe(report.acknowledged.size);
  expect(stored.size).toBe(rows.length);
  for (const [requestId, taskId] of report.acknowledged) {
    const row = stored.get(requestId);
    expect(row, `acknowledged write ${requestId} is missing`).toBeDefined();
    expect(row!.id).toBe(String(taskId));
    expect(row!.events, `task of ${requestId} has no history event`).toBe(1);
  }
}

export function summary(report: LoadReport): string {
  return `${report.acknowledged.size} writes acknowledged, failed attempts: ${JSON.stringify(Object.fromEntries(report.errors))}`;
}
