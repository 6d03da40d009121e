/**
 * Prometheus metrics (prom-client): the registry and every metric definition, with the small
 * functions the call path and the database layer call. `GET /metrics` on the service port serves
 * `metricsText()`. Every metric is listed in the README (Operations).
 *
 * Labels are kept bounded: service, method, code and error kind come from fixed sets; tenants
 * are never a label (there may be thousands).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const calls = new Counter({
  name: 'taskapi_rpc_calls_total',
  help: 'Finished RPCs by service, method and gRPC status code.',
  labelNames: ['service', 'method', 'code'] as const,
  registers: [registry],
});

const callSeconds = new Histogram({
  name: 'taskapi_rpc_duration_seconds',
  help: 'RPC latency from request to the end of the response, by service and method.',
  labelNames: ['service', 'method'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

const inFlight = new Gauge({
  name: 'taskapi_rpc_in_flight',
  help: 'RPCs being served (requests received, responses not finished).',
  registers: [registry],
});

const openStreams = new Gauge({
  name: 'taskapi_rpc_open_streams',
  help: 'Streaming RPCs open now (WatchTasks, Health/Watch, reflection).',
  registers: [registry],
});

const openConnections = new Gauge({
  name: 'taskapi_open_connections',
  help: 'Client TCP connections open on the service port.',
  registers: [registry],
});

const statementsPerCall = new Histogram({
  name: 'taskapi_db_statements_per_call',
  help: 'SQL statements sent to the database per RPC (BEGIN and COMMIT included).',
  labelNames: ['service', 'method'] as const,
  buckets: [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50],
  registers: [registry],
});

const dbErrors = new Counter({
  name: 'taskapi_db_errors_total',
  help: 'Errors raised by the database or its driver, by class (unique, serialization, timeout, connection, pool_busy, ...). Retried ones count too.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export type LimiterOutcome = 'acquired' | 'cancelled' | 'deadline' | 'busy';

const tenantWaits = new Counter({
  name: 'taskapi_db_tenant_waits_total',
  help: 'Transactions that had to wait because their tenant already held its share of the pool (DB_POOL_TENANT_MAX), by outcome: acquired, cancelled, deadline, busy (gave up with RESOURCE_EXHAUSTED).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const tenantWaitSeconds = new Histogram({
  name: 'taskapi_db_tenant_wait_seconds',
  help: "Time spent waiting for the tenant's share of the pool, by those that waited.",
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/** What the pool gauges read at scrape time; pg.Pool fits. */
export interface PoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { readonly max?: number };
}

export interface LimiterLike {
  stats(): { active: number; waiting: number; tenantsAtLimit: number };
}

// Sets, not single values: tests run several services in one process.
const pools = new Set<PoolLike>();
const limiters = new Set<LimiterLike>();
const sum = <T>(items: Iterable<T>, f: (item: T) => number) => [...items].reduce((acc, item) => acc + f(item), 0);

new Gauge({
  name: 'taskapi_db_pool_connections',
  help: 'Pooled database connections by state: total (open), idle, max (the pool size).',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    this.set(
      { state: 'total' },
      sum(pools, (p) => p.totalCount),
    );
    this.set(
      { state: 'idle' },
      sum(pools, (p) => p.idleCount),
    );
    this.set(
      { state: 'max' },
      sum(pools, (p) => p.options.max ?? 10),
    );
  },
});

new Gauge({
  name: 'taskapi_db_pool_waiting',
  help: 'Transactions waiting for a pooled connection (the pool is fully in use).',
  registers: [registry],
  collect() {
    this.set(sum(pools, (p) => p.waitingCount));
  },
});

new Gauge({
  name: 'taskapi_db_tenant_queued',
  help: "Transactions queued behind their own tenant's share of the pool.",
  registers: [registry],
  collect() {
    this.set(sum(limiters, (l) => l.stats().waiting));
  },
});

new Gauge({
  name: 'taskapi_db_tenants_at_limit',
  help: 'Tenants holding their whole share of the pool right now.',
  registers: [registry],
  collect() {
    this.set(sum(limiters, (l) => l.stats().tenantsAtLimit));
  },
});

/** Makes the pool (and its tenant limiter) visible in the gauges; the returned function stops that. */
export function watchPool(pool: PoolLike, limiter?: LimiterLike | null): () => void {
  pools.add(pool);
  if (limiter) limiters.add(limiter);
  return () => {
    pools.delete(pool);
    if (limiter) limiters.delete(limiter);
  };
}

/** Per-call counters the database layer adds to while it works for the call. */
export interface CallStats {
  statements: number;
}

const callScope = new AsyncLocalStorage<CallStats>();

/** Runs `fn` (the whole call) with `stats` as the call's counters. */
export function withCallStats<T>(stats: CallStats, fn: () => T): T {
  return callScope.run(stats, fn);
}

/** The counters of the call being served here, if any (the object given to withCallStats). */
export function currentCallStats(): CallStats | undefined {
  return callScope.getStore();
}

/** One statement sent on behalf of the current call (if any). */
export function countStatement(): void {
  const stats = callScope.getStore();
  if (stats) stats.statements++;
}

export function countDbError(kind: string): void {
  dbErrors.inc({ kind });
}

export function observeTenantWait(outcome: LimiterOutcome, seconds: number): void {
  tenantWaits.inc({ outcome });
  tenantWaitSeconds.observe(seconds);
}

/** Counts a call as in flight until the returned function is called (once). */
export function callStarted(): () => void {
  inFlight.inc();
  let done = false;
  return () => {
    if (!done) inFlight.dec();
    done = true;
  };
}

export function streamOpened(): () => void {
  openStreams.inc();
  let closed = false;
  return () => {
    if (!closed) openStreams.dec();
    closed = true;
  };
}

/** Counts a client connection until it closes. */
export function trackConnection(socket: { once(event: 'close', listener: () => void): unknown }): void {
  openConnections.inc();
  socket.once('close', () => openConnections.dec());
}

export interface FinishedCall {
  readonly service: string;
  readonly method: string;
  /** gRPC status code name as grpc-go's metrics spell it: `OK`, `NotFound`, `Unavailable`, ... */
  readonly code: string;
  readonly durationMs: number;
  readonly statements?: number;
}

export function callFinished(call: FinishedCall): void {
  calls.inc({ service: call.service, method: call.method, code: call.code });
  callSeconds.observe({ service: call.service, method: call.method }, call.durationMs / 1000);
  if (call.statements !== undefined)
    statementsPerCall.observe({ service: call.service, method: call.method }, call.statements);
}

export const METRICS_CONTENT_TYPE = registry.contentType;

export function metricsText(): Promise<string> {
  return registry.metrics();
}
