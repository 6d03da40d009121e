/**
 * `npm run bench`: the service measured from outside, as clients see it.
 *
 *   the service      its own process, started as `npm start` starts it, on a fresh PostgreSQL
 *                    database (row tenancy), seeded set-based with realistic volume;
 *   load generator   another process: a fixed number of callers per protocol (grpc-js, Connect
 *                    JSON / binary over HTTP/1.1, Connect binary over HTTP/2);
 *   baselines        in the same run, on the same data: (a) the floor — the service layer in a
 *                    process of its own, no RPC; (b) a bare grpc-js server with hand-written SQL;
 *                    (c) an empty RPC (Health/Check) on every protocol; for the contended claim,
 *                    a raw claim-and-release loop on a plain pg pool (in the floor's process).
 *   streams          WatchTasks on every protocol while another connection writes at a fixed
 *                    rate: the delay from each write to its event on each stream.
 *
 * Every figure is the median of several runs; server CPU per call comes from /proc/<pid>/stat.
 * See bench/README.md for the options and what each number means.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Health } from '../src/gen/grpc/health/v1/health_pb.js';
import { connectClient, grpcClient } from './lib/clients.js';
import type { BenchData } from './lib/data.js';
import {
  cleanupAll,
  cpuSeconds,
  installSignalHandlers,
  interrupted,
  type NodeProcess,
  onCleanup,
  startNode,
  stopChild,
  waitForLine,
} from './lib/processes.js';
import {
  addRatios,
  markdown,
  median,
  type Report,
  type Row,
  type RunFigures,
  type Section,
  summarize,
  summarizeWatch,
  type Target,
  type WatchRow,
  type WatchRunFigures,
} from './lib/report.js';
import {
  CREATE_WITH_TASKS_ID,
  type Protocol,
  RAW_INSERT_ID,
  SCENARIOS,
  type Scenario,
  scenarioById,
  TITLES_PER_PROJECT,
  WATCH,
} from './lib/scenarios.js';
import {
  claimQueue,
  createTenants,
  FULL_SEED,
  projectOfPendingTasks,
  QUICK_SEED,
  type SeedSize,
  type Sql,
  sampleData,
  seedRows,
  watchProject,
} from './lib/seed.js';
import type { FromWorker, RunResult, RunSpec, Targets, ToWorker } from './load/messages.js';
import type { WatchResult, WatchSpec } from './load/watch.js';

const ROOT = resolve(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench/results');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    callers: { type: 'string' },
    runs: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'complete-reps': { type: 'string' },
    pairs: { type: 'string' },
    'watch-rate': { type: 'string' },
    'watch-duration': { type: 'string' },
    node: { type: 'string' },
    keep: { type: 'boolean', default: false },
    pglite: { type: 'boolean', default: false },
    'no-postgres': { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'string' },
    protocols: { type: 'string' },
    database: {
      type: 'string',
      default: process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    },
    'db-name': { type: 'string', default: 'taskapi_bench' },
    pool: { type: 'string', default: '10' },
    unprepared: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  process.stdout.write(
    `npm run bench -- [--quick] [--callers 8] [--runs 3] [--duration 2.5] [--warmup 0.5] [--complete-reps 2] [--pairs 40]
                  [--watch-rate 20] [--watch-duration 8]
                  [--node /usr/bin/node] [--keep] [--pglite] [--no-postgres] [--only GetTask,ListTasks] [--profile DIR] [--protocols grpc,bare]
                  [--database postgresql://postgres@127.0.0.1:5432/postgres] [--db-name taskapi_bench]
                  [--pool 10] [--unprepared]
See bench/README.md.\n`,
  );
  process.exit(0);
}

const quick = args.quick;
const num = (v: string | undefined, fallback: number) => {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${v}`);
  return n;
};
const opts = {
  callers: num(args.callers, 8),
  runs: num(args.runs, quick ? 1 : 3),
  durationMs: num(args.duration, quick ? 0.5 : 2.5) * 1000,
  warmupMs: num(args.warmup, quick ? 0.2 : 0.5) * 1000,
  completeReps: num(args['complete-reps'], quick ? 1 : 2),
  pairs: Math.ceil(num(args.pairs, quick ? 6 : 40)),
  watchRate: num(args['watch-rate'], WATCH.writesPerSecond),
  watchMs: num(args['watch-duration'], quick ? 3 : 8) * 1000,
  nodeBin: args.node ? resolve(args.node) : process.execPath,
  seed: quick ? QUICK_SEED : FULL_SEED,
  profileDir: args.profile,
  only: args.only
    ?.toLowerCase()
    .split(',')
    .map((o) => o.trim()),
  protocols: args.protocols?.split(',').map((p) => p.trim()) as Protocol[] | undefined,
};
const ADMIN_TOKEN = randomBytes(24).toString('base64url');
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Environment shared by the service, the floor and the bare server. */
function dbEnv(databaseUrl: string): Record<string, string> {
  return { DATABASE_URL: databaseUrl, DB_POOL_MAX: args.pool!, DB_PREPARED_STATEMENTS: String(!args.unprepared) };
}

// ---------------------------------------------------------------------------------------------
// Processes

async function startService(env: Record<string, string>): Promise<{ proc: NodeProcess; port: number }> {
  let shown = 0;
  const proc = startNode(
    opts.nodeBin,
    join(ROOT, 'src/main.ts'),
    {
      ...env,
      ADMIN_TOKEN,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      MIGRATE_ON_START: 'true',
      TENANCY_MODE: 'row',
      SHUTDOWN_GRACE_MS: '2000',
    },
    {
      // A CPU profile of the service, written when it stops (`--profile DIR`).
      nodeArgs: profileArgs(opts.profileDir, 'service'),
      onLine: (line) => {
        // The service's warnings and errors are worth seeing; a flood of them is not.
        if (/"level":"(warn|error)"/.test(line) && shown++ < 10) log(`  service: ${line}`);
      },
    },
  );
  const port = await waitForLine(
    proc,
    (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        return entry.msg === 'listening' ? entry.port : undefined;
      } catch {
        return undefined;
      }
    },
    180_000,
    'the service did not start',
  );
  await waitServing(port, proc);
  return { proc, port };
}

/** Health/Check until SERVING (the database answers). */
async function waitServing(port: number, proc: NodeProcess): Promise<void> {
  const client = grpcClient(port);
  try {
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        const res = await client.call(Health.method.check, {}, null);
        if (res.status === 1) return;
      } catch {
        // not yet
      }
      if (Date.now() > until || proc.child.exitCode !== null)
        throw new Error(`the service never became SERVING\n${proc.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

async function startBare(env: Record<string, string>): Promise<{ proc: NodeProcess; port: number }> {
  const proc = startNode(
    opts.nodeBin,
    join(ROOT, 'bench/baselines/bare-grpc-server.ts'),
    { ...env, PORT: '0' },
    { nodeArgs: profileArgs(opts.profileDir, 'bare') },
  );
  const port = await waitForLine(
    proc,
    (line) => (line.startsWith('{"listening"') ? (JSON.parse(line) as { listening: number }).listening : undefined),
    60_000,
    'the bare server did not start',
  );
  return { proc, port };
}

/** `node --cpu-prof` into DIR/<who> (`--profile DIR`): written when the process stops. */
function profileArgs(dir: string | undefined, who: 'service' | 'bare' | 'load'): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(dir), who)}`] : [];
}

/** A load generator process and its one outstanding request. */
class LoadProcess {
  readonly proc: NodeProcess;
  private waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;

  constructor(nodeBin: string, nodeArgs: readonly string[] = []) {
    this.proc = startNode(nodeBin, join(ROOT, 'bench/load/worker.ts'), {}, { ipc: true, nodeArgs });
    this.proc.child.on('message', (m: FromWorker) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (m.type === 'failed') w?.reject(new Error(m.error));
      else w?.resolve(m);
    });
    this.proc.child.once('exit', (code) =>
      this.waiting?.reject(new Error(`load generator exited (${code})\n${this.proc.tail()}`)),
    );
  }

  get pid(): number {
    return this.proc.pid;
  }

  request(msg: ToWorker): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.proc.child.send(msg);
    });
  }

  async setup(data: BenchData, targets: Targets): Promise<void> {
    await this.request({ type: 'setup', data, targets });
  }

  /** @returns a line for the report. */
  async compare(scenario: string, a: Protocol, b: Protocol, count: number): Promise<string> {
    const m = await this.request({ type: 'compare', scenario, a, b, count });
    if (m.type !== 'compared') throw new Error(`unexpected ${m.type}`);
    return m.mismatches === 0
      ? `${scenario}: the bare server's answers equal the service's (${a}) on ${m.compared} sampled requests`
      : `**${scenario}: ${m.mismatches} of ${m.compared} answers of the bare server differ from the service's**; first:\n\n\`\`\`\n${m.first}\n\`\`\``;
  }

  async run(spec: RunSpec): Promise<RunResult> {
    const m = await this.request({ type: 'run', spec });
    if (m.type !== 'result') throw new Error(`unexpected ${m.type}`);
    return m.result;
  }

  async watch(spec: WatchSpec): Promise<WatchResult> {
    const m = await this.request({ type: 'watch', spec });
    if (m.type !== 'watched') throw new Error(`unexpected ${m.type}`);
    return m.result;
  }

  async stop(): Promise<void> {
    if (this.proc.child.connected) this.proc.child.send({ type: 'exit' } satisfies ToWorker);
    await stopChild(this.proc.child);
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Bench {
  readonly data: BenchData;
  readonly sql: Sql | null;
  /** Backend pids of the benchmark database (not the owner's own), when the server is local. */
  readonly dbPids: (() => Promise<number[]>) | null;
  readonly load: LoadProcess;
  readonly floor: LoadProcess | null;
  readonly servicePid: number;
  readonly barePid: number | null;
}

const wanted = (s: { id: string }, p: Protocol) =>
  (!opts.only || opts.only.some((o) => s.id.toLowerCase().includes(o))) &&
  (!opts.protocols || opts.protocols.includes(p));
const wantedAtAll = (s: { id: string; protocols: readonly Protocol[] }) => s.protocols.some((p) => wanted(s, p));

/**
 * CPU of the database's backends (user + system), summed over the backends seen at both reads.
 * A backend that ends inside the window loses its share, one that starts inside it counts
 * whole; pools are warm and their idle timeout is longer than a run, so few do either.
 */
async function dbCpu(bench: Bench): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (!bench.dbPids) return out;
  for (const pid of await bench.dbPids()) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {
      // ended meanwhile, or not on this machine
    }
  }
  return out;
}
const dbCpuDelta = (before: Map<number, number>, after: Map<number, number>) =>
  [...after].reduce((sum, [pid, cpu]) => sum + cpu - (before.get(pid) ?? 0), 0);

/** One timed run: the server's CPU is read right before and right after the calls. */
async function timedRun(bench: Bench, scenario: Scenario, protocol: Protocol, round: number): Promise<RunFigures> {
  // The raw claim loop runs in the floor's process (on a pool of its own).
  const inFloor = protocol === 'floor' || protocol === 'raw';
  const worker = inFloor ? bench.floor! : bench.load;
  const serverPid = inFloor ? bench.floor!.pid : protocol === 'bare' ? bench.barePid! : bench.servicePid;
  const callers = scenario.callers ?? opts.callers;
  if (scenario.perCallSetup) {
    // Fresh data before each call (untimed); only the call is timed.
    let ok = 0,
      errors = 0,
      cpu = 0,
      db = 0,
      elapsed = 0;
    let firstError: string | undefined;
    const latencies: number[] = [];
    for (let rep = 0; rep < opts.completeReps; rep++) {
      const tenant = bench.data.tenants[(round * opts.completeReps + rep) % bench.data.tenants.length]!;
      const projectId = await projectOfPendingTasks(bench.sql!, tenant);
      const d0 = await dbCpu(bench);
      const c0 = cpuSeconds(serverPid);
      const r = await worker.run({
        scenario: scenario.id,
        protocol,
        callers: 1,
        count: 1,
        seed: round,
        params: { tenantId: tenant.id, projectId },
      });
      cpu += cpuSeconds(serverPid) - c0;
      db += dbCpuDelta(d0, await dbCpu(bench));
      ok += r.ok;
      errors += r.errors;
      elapsed += r.elapsedMs;
      firstError ??= r.firstError;
      if (r.ok) latencies.push(r.p50);
    }
    latencies.sort((a, b) => a - b);
    return {
      ops: ok / (elapsed / 1000),
      p50: latencies[Math.floor((latencies.length - 1) / 2)] ?? Number.NaN,
      p99: latencies[latencies.length - 1] ?? Number.NaN,
      ok,
      errors,
      cpuUs: (cpu / Math.max(1, ok + errors)) * 1e6,
      dbCpuUs: bench.dbPids ? (db / Math.max(1, ok + errors)) * 1e6 : Number.NaN,
      firstError,
    };
  }
  await worker.run({ scenario: scenario.id, protocol, callers, durationMs: opts.warmupMs, seed: 100 + round });
  const d0 = await dbCpu(bench);
  const c0 = cpuSeconds(serverPid);
  const l0 = cpuSeconds(worker.pid);
  const r = await worker.run({ scenario: scenario.id, protocol, callers, durationMs: opts.durationMs, seed: round });
  const cpu = cpuSeconds(serverPid) - c0;
  const client = cpuSeconds(worker.pid) - l0;
  const db = dbCpuDelta(d0, await dbCpu(bench));
  return {
    ops: r.ok / (r.elapsedMs / 1000),
    p50: r.p50,
    p99: r.p99,
    ok: r.ok,
    errors: r.errors,
    cpuUs: (cpu / Math.max(1, r.ok + r.errors)) * 1e6,
    dbCpuUs: bench.dbPids ? (db / Math.max(1, r.ok + r.errors)) * 1e6 : Number.NaN,
    clientCpuUs: (client / Math.max(1, r.ok + r.errors)) * 1e6,
    firstError: r.firstError,
  };
}

/**
 * The plan with each scenario's protocols rotated by the round: what drifts within a scenario's
 * few seconds (a checkpoint, the host) does not always fall on the same protocol.
 */
function rotated<T extends readonly [Scenario, Protocol]>(plan: readonly T[], round: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < plan.length; ) {
    let j = i;
    while (j < plan.length && plan[j]![0] === plan[i]![0]) j++;
    const group = plan.slice(i, j);
    const k = (round - 1) % group.length;
    out.push(...group.slice(k), ...group.slice(0, k));
    i = j;
  }
  return out;
}

/**
 * Untimed, before each round: VACUUM ANALYZE of the tables the writes touch, then a wait (up to
 * 60 s) until no autovacuum worker is busy on the database. One round's writes
 * (CompleteProjectTasks alone updates 40,000 rows) start autovacuum on tasks and task_events, and
 * a worker running during a timed run takes CPU from its calls and is counted in their DB CPU.
 * Since a call's protocols ran in a fixed order, it hit the service's rows and missed the bare
 * server's, which came last (one of the two causes of a ListTasks DB CPU per call 1.7× the bare
 * server's after the first round; docs/performance.md has both).
 */
async function settle(bench: Bench): Promise<void> {
  if (!bench.sql) return;
  const started = Date.now();
  await bench.sql.query('vacuum (analyze) tasks, task_events, projects');
  const busy = async () =>
    (
      await bench.sql!.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and backend_type = 'autovacuum worker'`,
      )
    ).rows[0]!.n > 0;
  while ((await busy()) && Date.now() - started < 60_000) await sleep(250);
  log(`  settled in ${((Date.now() - started) / 1000).toFixed(1)} s (vacuum, no autovacuum worker busy)`);
}

/**
 * Every scenario on every protocol, round after round (so that drift on a shared machine hits
 * every figure alike); the rows hold the medians over the rounds.
 */
async function measureAll(bench: Bench, protocolsAvailable: readonly Protocol[]): Promise<Row[]> {
  const plan = SCENARIOS.flatMap((s) =>
    s.protocols
      .filter(
        (p) =>
          protocolsAvailable.includes(p) &&
          wanted(s, p) &&
          (!s.perCallSetup || bench.sql) &&
          (s.needs !== 'claim' || bench.data.claim),
      )
      .map((p) => [s, p] as const),
  );
  const timed = plan.filter(([s]) => !s.perCallSetup).length;
  const estimate =
    opts.runs * ((timed * (opts.warmupMs + opts.durationMs)) / 1000 + (plan.length - timed) * opts.completeReps * 3);
  log(`  ${plan.length} figures × ${opts.runs} run(s): about ${Math.round(estimate / 60)} min of measuring`);
  const runs = new Map<string, RunFigures[]>();
  for (let round = 1; round <= opts.runs; round++) {
    await settle(bench);
    for (const [scenario, protocol] of rotated(plan, round)) {
      const f = await timedRun(bench, scenario, protocol, round);
      const key = `${scenario.id}\u0000${protocol}`;
      runs.set(key, [...(runs.get(key) ?? []), f]);
      log(
        `  [${round}/${opts.runs}] ${scenario.id} · ${protocol}: ${f.ops.toFixed(f.ops < 100 ? 1 : 0)} ops/s, p50 ${f.p50.toFixed(2)} ms, ` +
          `p99 ${f.p99.toFixed(2)} ms, ${f.cpuUs.toFixed(0)} µs CPU/call${Number.isNaN(f.dbCpuUs) ? '' : `, DB ${f.dbCpuUs.toFixed(0)} µs`}${f.errors ? `, ${f.errors} errors (${f.firstError})` : ''}`,
      );
    }
  }
  const rows = plan.map(([s, p]) => summarize(s.id, p, s.callers ?? opts.callers, runs.get(`${s.id}\u0000${p}`)!));
  addRatios(rows);
  return rows;
}

interface Paired {
  /** Latency of each correct call, ms. */
  readonly service: number[];
  readonly raw: number[];
  readonly errors: number;
  readonly firstError?: string;
}

/**
 * The CreateProjectWithTasks target, measured paired: `--pairs` times one CreateProjectWithTasks
 * over gRPC (load generator → service) and one raw insert (floor), one right after the other,
 * in alternating order. The two rows of the table are measured seconds apart, five service
 * figures first; on this shared VM the database's CPU for the same call moved 1.8× between such
 * windows (a ratio of 1.76 in one full run, 2.40 in the next). Paired, whatever slows the
 * machine slows both sides of the ratio alike.
 */
async function pairedCreateVsRaw(bench: Bench): Promise<Paired | null> {
  const create = scenarioById(CREATE_WITH_TASKS_ID);
  const raw = scenarioById(RAW_INSERT_ID);
  if (!bench.floor || !wanted(create, 'grpc') || !wanted(raw, 'floor')) return null;
  const service: number[] = [];
  const rawMs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < opts.pairs; i++) {
    const one = async (which: 'service' | 'raw') => {
      const r =
        which === 'service'
          ? await bench.load.run({ scenario: create.id, protocol: 'grpc', callers: 1, count: 1, seed: 1_000 + i })
          : await bench.floor!.run({ scenario: raw.id, protocol: 'floor', callers: 1, count: 1, seed: 1_000 + i });
      if (r.ok === 1) (which === 'service' ? service : rawMs).push(r.p50);
      else {
        errors++;
        firstError ??= `${which}: ${r.firstError ?? 'no correct answer'}`;
      }
    };
    for (const which of i % 2 === 0 ? (['service', 'raw'] as const) : (['raw', 'service'] as const)) await one(which);
  }
  log(
    `  paired: CreateProjectWithTasks over gRPC p50 ${median(service).toFixed(1)} ms, raw insert p50 ${median(rawMs).toFixed(1)} ms (${opts.pairs} pairs${errors ? `, ${errors} errors, first: ${firstError}` : ''})`,
  );
  return { service, raw: rawMs, errors, firstError };
}

/**
 * WatchTasks delivery: one run per round (all stream protocols at once, on the same writes),
 * after the calls' rounds. The load generator reads the CPU itself, around the timed writes and
 * the wait for their events.
 */
async function measureWatch(bench: Bench): Promise<WatchRow[]> {
  const protocols = WATCH.protocols.filter((p) => wanted(WATCH, p));
  if (!protocols.length || !bench.data.watch) return [];
  log(`  ${WATCH.id}: ${opts.runs} run(s) of ${opts.watchMs / 1000} s at ${opts.watchRate} writes/s`);
  const runs = new Map<Protocol, WatchRunFigures[]>();
  for (let round = 1; round <= opts.runs; round++) {
    const r = await bench.load.watch({
      protocols,
      writesPerSecond: opts.watchRate,
      durationMs: opts.watchMs,
      warmupMs: opts.warmupMs,
      graceMs: 5_000,
      servicePid: bench.servicePid,
      dbPids: bench.dbPids ? await bench.dbPids() : [],
    });
    for (const s of r.streams) {
      runs.set(s.protocol, [
        ...(runs.get(s.protocol) ?? []),
        {
          ...s,
          writesPerSecond: r.writes / (r.elapsedMs / 1000),
          writeErrors: r.writeErrors,
          firstWriteError: r.firstWriteError,
          writeP50: r.writeP50,
          cpuUs: r.cpuUs,
          dbCpuUs: r.dbCpuUs,
        },
      ]);
      log(
        `  [${round}/${opts.runs}] ${WATCH.id} · ${s.protocol}: ${s.received}/${s.expected} events, p50 ${s.fromAckP50.toFixed(2)} ms ` +
          `(from send ${s.fromSendP50.toFixed(2)}), p99 ${s.fromAckP99.toFixed(2)} ms, missed ${s.missed}, duplicates ${s.duplicates}` +
          `${s.errors ? `, stream failed (${s.firstError})` : ''}; writes p50 ${r.writeP50.toFixed(2)} ms, ` +
          `${r.cpuUs.toFixed(0)} µs CPU/write${r.writeErrors ? `, ${r.writeErrors} failed writes (${r.firstWriteError})` : ''}`,
      );
    }
  }
  return protocols.map((p) => summarizeWatch(WATCH.id, p, runs.get(p) ?? []));
}

/** The judged targets (PostgreSQL, gRPC, the configured callers). */
function targets(rows: Row[], watch: WatchRow[], paired: Paired | null): Target[] {
  const find = (scenario: string, protocol: Protocol) =>
    rows.find((r) => r.scenario === scenario && r.protocol === protocol);
  const out: Target[] = [];
  const ratio = (name: string, a: number | undefined, b: number | undefined, limit: number, atLeast: boolean) => {
    const measured = a !== undefined && b !== undefined ? a / b : Number.NaN;
    out.push({
      name,
      measured,
      limit: `${atLeast ? '≥' : '≤'} ${limit}`,
      pass: Number.isFinite(measured) ? (atLeast ? measured >= limit : measured <= limit) : null,
    });
  };
  for (const call of ['GetTask BASIC', 'ListTasks by project, 50 with relations']) {
    const grpc = find(call, 'grpc');
    const bare = find(call, 'bare');
    ratio(`${call}: gRPC throughput ÷ bare server`, grpc?.ops, bare?.ops, 0.9, true);
    ratio(`${call}: gRPC CPU per call ÷ bare server`, grpc?.cpuUs, bare?.cpuUs, 1.2, false);
    for (const p of ['connect-json', 'connect-binary', 'connect-h2'] as const) {
      ratio(`${call}: ${p} throughput ÷ gRPC`, find(call, p)?.ops, grpc?.ops, 0.9, true);
    }
    // Not a target: the same server path as connect-json, from a client without connect-node's
    // per-call machinery, to tell the server's share of the connect-json ratio from that client's.
    const plain = find(call, 'plain-json');
    out.push({
      name: `${call}: plain-json throughput ÷ gRPC (diagnostic)`,
      measured: plain && grpc ? plain.ops / grpc.ops : Number.NaN,
      limit: '–',
      pass: null,
    });
  }
  ratio(
    `CreateProjectWithTasks(${TITLES_PER_PROJECT}) over gRPC: p50 time ÷ raw set-based insert (${opts.pairs} pairs, alternating)`,
    paired && !paired.errors ? median(paired.service) : undefined,
    paired && !paired.errors ? median(paired.raw) : undefined,
    2,
    false,
  );
  // Delivery is at least once: not one acknowledged write may go without its event.
  const missed = watch.length ? watch.reduce((a, r) => a + r.missed, 0) : Number.NaN;
  const idle = watch.some((r) => r.expected === 0);
  out.push({
    name: 'WatchTasks: events of acknowledged writes missed, all streams',
    measured: missed,
    limit: '= 0',
    pass: Number.isFinite(missed) ? missed === 0 && !idle : null,
    note: idle ? 'a stream had no acknowledged write to deliver' : undefined,
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sections

async function pgClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'taskapi-bench' });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function postgresSection(report: { postgres?: string; seed: Record<string, number | string> }): Promise<Section> {
  const dbName = args['db-name']!;
  if (!/^[a-z_][a-z0-9_]*$/.test(dbName)) throw new Error('--db-name: lowercase letters, digits and _ only');
  const maintenance = await pgClient(args.database!);
  report.postgres = (await maintenance.query<{ v: string }>(`select split_part(version(), ' on ', 1) as v`)).rows[0]!.v;
  await maintenance.query(`drop database if exists ${dbName} with (force)`);
  await maintenance.query(`create database ${dbName}`);
  await maintenance.end();
  if (!args.keep) {
    onCleanup(async () => {
      const c = await pgClient(args.database!);
      await c.query(`drop database if exists ${dbName} with (force)`);
      await c.end();
    });
  }
  const url = new URL(args.database!);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  const env = dbEnv(databaseUrl);

  log(`PostgreSQL: database ${dbName}; starting the service (migrations on start)`);
  const service = await startService(env);
  const owner = await pgClient(databaseUrl);
  onCleanup(async () => {
    await owner.end();
  });
  const t0 = Date.now();
  const admin = connectClient(service.port, { httpVersion: '1.1', binary: false });
  const tenants = await createTenants(admin, ADMIN_TOKEN, opts.seed.tenants);
  const counts = await seedRows(
    owner,
    tenants.map((t) => t.id),
    opts.seed,
  );
  const sampled = await sampleData(owner, tenants, opts.seed);
  // After the sample, so that no other scenario picks these projects. Tenant 1 holds the claim
  // queue, tenant 2 the watched project.
  const claims = SCENARIOS.filter((s) => s.needs === 'claim');
  const data: BenchData = {
    ...sampled,
    claim: claims.some(wantedAtAll)
      ? await claimQueue(admin, ADMIN_TOKEN, owner, sampled.tenants[0]!, opts.seed)
      : undefined,
    watch: wantedAtAll(WATCH) ? await watchProject(owner, sampled.tenants[1]!) : undefined,
  };
  const seedSeconds = (Date.now() - t0) / 1000;
  log(
    `  seeded ${tenants.length} tenants, ${counts.workers} workers, ${counts.projects} projects, ${counts.tasks} tasks in ${seedSeconds.toFixed(1)} s`,
  );
  Object.assign(report.seed, { tenants: tenants.length, ...counts, 'seconds to seed': Number(seedSeconds.toFixed(1)) });

  const local = ['127.0.0.1', 'localhost', '[::1]', ''].includes(url.hostname);
  const dbPids = local
    ? async () =>
        (
          await owner.query<{ pid: number }>(
            'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
          )
        ).rows.map((r) => r.pid)
    : null;
  const bare = await startBare(env);
  const load = new LoadProcess(process.execPath, profileArgs(opts.profileDir, 'load'));
  const floor = new LoadProcess(opts.nodeBin);
  await load.setup(data, { service: service.port, bare: bare.port });
  await floor.setup(data, { floorEnv: env });
  log(
    `  service pid ${service.proc.pid} port ${service.port}, bare server pid ${bare.proc.pid} port ${bare.port}, floor pid ${floor.pid}, load pid ${load.pid}`,
  );
  // A baseline that answered less than the service would flatter it: same requests, same answers.
  const notes: string[] = [];
  for (const scenario of SCENARIOS.filter((s) => s.protocols.includes('bare') && s.method !== Health.method.check)) {
    notes.push(await load.compare(scenario.id, 'grpc', 'bare', 20));
  }
  for (const n of notes) log(`  ${n}`);

  const bench: Bench = { data, sql: owner, dbPids, load, floor, servicePid: service.proc.pid, barePid: bare.proc.pid };
  const all = await measureAll(bench, [
    'grpc',
    'connect-json',
    'connect-binary',
    'connect-h2',
    'plain-json',
    'floor',
    'bare',
    'raw',
  ]);
  const paired = await pairedCreateVsRaw(bench);
  const watch = await measureWatch(bench);
  await Promise.all([load.stop(), floor.stop(), stopChild(bare.proc.child), stopChild(service.proc.child)]);
  const rows = all.filter((r) => scenarioById(r.scenario).table !== 'claims');
  if (paired) {
    const create = rows.find((r) => r.scenario === CREATE_WITH_TASKS_ID && r.protocol === 'grpc');
    const raw = rows.find((r) => r.scenario === RAW_INSERT_ID && r.protocol === 'floor');
    notes.push(
      `CreateProjectWithTasks(${TITLES_PER_PROJECT}) vs the raw insert, paired (${opts.pairs} of each, one right after the other, alternating): ` +
        `p50 ${median(paired.service).toFixed(1)} ms vs ${median(paired.raw).toFixed(1)} ms` +
        (paired.errors ? `, ${paired.errors} errors (no target figure), first: ${paired.firstError}` : '') +
        (create && raw
          ? `; from the table's rows (measured apart): ${create.p50.toFixed(1)} vs ${raw.p50.toFixed(1)} ms, ${(create.p50 / raw.p50).toFixed(2)}×`
          : ''),
    );
  }
  return {
    title: `${report.postgres}, row tenancy, pool ${args.pool}, prepared statements ${args.unprepared ? 'off' : 'on'}`,
    rows,
    claims: all.filter((r) => scenarioById(r.scenario).table === 'claims'),
    watch,
    targets: targets(rows, watch, paired),
    notes,
  };
}

/**
 * Embedded PGlite: the service on a data directory seeded beforehand. PGlite allows one
 * process at a time on a directory, so the service is started once (migrations, tenants and
 * keys through the API), stopped, the bulk rows are written by this process through PGlite
 * itself, and the service is started again. No baselines and no targets here.
 */
async function pgliteSection(report: { seed: Record<string, number | string> }): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'taskapi-bench-pglite-'));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const env = { DATABASE_URL: `pglite://${dataDir}` };
  log(`PGlite: ${dataDir}; starting the service (migrations on start)`);
  let service = await startService(env);
  const admin = connectClient(service.port, { httpVersion: '1.1', binary: false });
  const tenants = await createTenants(admin, ADMIN_TOKEN, opts.seed.tenants);
  await stopChild(service.proc.child);

  const { PGlite } = await import('@electric-sql/pglite');
  const { btree_gin } = await import('@electric-sql/pglite/contrib/btree_gin');
  const db = await PGlite.create({ dataDir, extensions: { btree_gin } });
  const sql: Sql = { query: (text, values) => db.query(text, values) as never };
  const t0 = Date.now();
  const counts = await seedRows(
    sql,
    tenants.map((t) => t.id),
    opts.seed,
  );
  const data = await sampleData(sql, tenants, opts.seed);
  await db.close();
  log(`  seeded ${counts.tasks} tasks in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  report.seed['PGlite tasks'] = counts.tasks;

  service = await startService(env);
  const load = new LoadProcess(process.execPath);
  await load.setup(data, { service: service.port });
  const rows = await measureAll(
    { data, sql: null, dbPids: null, load, floor: null, servicePid: service.proc.pid, barePid: null },
    ['grpc', 'connect-json', 'connect-binary'],
  );
  await Promise.all([load.stop(), stopChild(service.proc.child)]);
  return {
    title: 'Embedded PGlite (one connection; no baselines, no targets)',
    rows,
    targets: [],
    notes: [
      `CompleteProjectTasks is not measured on PGlite: its fresh project is made through the database, which the running service holds.`,
      `The contended claim and WatchTasks delivery are measured on PostgreSQL only (their agents, keys and projects are set up there).`,
    ],
  };
}

async function main(): Promise<void> {
  installSignalHandlers();
  const serviceNode = execFileSync(opts.nodeBin, ['--version'], { encoding: 'utf8' }).trim();
  const seed: Record<string, number | string> = {};
  const report: Report & { postgres?: string } = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadavg: loadavg() },
    node: { service: serviceNode, loadGenerator: process.version },
    callers: opts.callers,
    runs: opts.runs,
    durationS: opts.durationMs / 1000,
    warmupS: opts.warmupMs / 1000,
    seed,
    sections: [],
  };
  const sizeNote = (s: SeedSize) =>
    `${s.tasksPerTenant} tasks per tenant (+10 % subtasks), ${s.workersPerTenant} workers per tenant, ${s.tasksPerProject} tasks per project`;
  seed.size = `${quick ? 'quick (smaller) seed' : 'full seed'}: ${sizeNote(opts.seed)}`;
  log(
    `Task API benchmark (${report.mode}): service on Node ${serviceNode}, load on Node ${process.version}, ${opts.callers} callers`,
  );
  if (!args['no-postgres']) report.sections.push(await postgresSection(report));
  if (args.pglite) report.sections.push(await pgliteSection(report));
  report.machine.loadavgAtEnd = loadavg();
  const md = markdown(report);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.md'), md);
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${md}\n`);
  log(`written: bench/results/latest.md, bench/results/latest.json`);
}

main()
  .catch((err: Error) => {
    if (interrupted()) return;
    log(`benchmark failed: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
