/**
 * A load generator process, driven by the orchestrator over IPC: it keeps a fixed number of
 * callers busy (each sends its next call when the previous one answered) for a duration or a
 * count, and reports throughput, latency percentiles and errors. The orchestrator reads the
 * server's CPU before and after each run; a run returns only once its last call has answered,
 * so every counted call's server work falls inside that window.
 *
 * The same script is the floor (baseline a) when its targets name `floorEnv`: it then calls
 * the service layer in process, and its own CPU is the "server" CPU.
 */
import { type DescMethodUnary, equals, toJson } from '@bufbuild/protobuf';
import { openRawClaims } from '../baselines/raw-claim.js';
import { type Floor, openFloor } from '../baselines/service-floor.js';
import { connectClient, grpcClient, plainJsonClient, type RpcClient } from '../lib/clients.js';
import { type BenchData, prng } from '../lib/data.js';
import { type Protocol, type Scenario, scenarioById } from '../lib/scenarios.js';
import type { FromWorker, RunResult, RunSpec, Targets, ToWorker } from './messages.js';
import { watchRun } from './watch.js';

let data: BenchData;
let targets: Targets;
let floor: Floor | undefined;
const clients = new Map<Protocol, RpcClient>();

const send = (msg: FromWorker) => process.send!(msg);

function clientFor(protocol: Protocol): RpcClient {
  let c = clients.get(protocol);
  if (c) return c;
  const port = (p: number | undefined) => {
    if (p === undefined) throw new Error(`no server for ${protocol}`);
    return p;
  };
  switch (protocol) {
    case 'grpc':
      c = grpcClient(port(targets.service));
      break;
    case 'bare':
      c = grpcClient(port(targets.bare));
      break;
    case 'connect-json':
      c = connectClient(port(targets.service), { httpVersion: '1.1', binary: false });
      break;
    case 'connect-binary':
      c = connectClient(port(targets.service), { httpVersion: '1.1', binary: true });
      break;
    case 'connect-h2':
      c = connectClient(port(targets.service), { httpVersion: '2', binary: true });
      break;
    case 'plain-json':
      c = plainJsonClient(port(targets.service));
      break;
    case 'floor': {
      const f = floor;
      if (!f) throw new Error('this process is not the floor');
      c = { call: (method, request, tenant) => f.call(method, request, tenant!), close() {} };
      break;
    }
    case 'raw':
      // In the floor's process, on a pool of its own of the service's size.
      if (!targets.floorEnv || !data.claim) throw new Error('the raw claim loop needs the floor and the claim queue');
      c = openRawClaims(targets.floorEnv, data.claim);
      break;
  }
  clients.set(protocol, c);
  return c;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function run(spec: RunSpec): Promise<RunResult> {
  const scenario: Scenario = scenarioById(spec.scenario);
  const client = clientFor(spec.protocol);
  const method = scenario.method as DescMethodUnary;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let remaining = spec.count ?? Number.POSITIVE_INFINITY;
  const started = performance.now();
  const until = spec.durationMs === undefined ? Number.POSITIVE_INFINITY : started + spec.durationMs;
  await Promise.all(
    Array.from({ length: spec.callers }, async (_, w) => {
      const rnd = prng(spec.seed * 1000 + w);
      while (remaining > 0 && performance.now() < until) {
        remaining--;
        const req = scenario.request(data, rnd, spec.params, w);
        const t0 = performance.now();
        try {
          const res = await client.call(method, req.request, req.tenant);
          const bad = scenario.check?.(res, req);
          if (bad === undefined) latencies.push(performance.now() - t0);
          else {
            errors++;
            firstError ??= `wrong response: ${bad}`;
            continue;
          }
          const failed = await scenario.after?.(client, res, req);
          if (failed !== undefined) {
            errors++;
            firstError ??= failed;
          }
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    ok: latencies.length,
    errors,
    firstError,
    elapsedMs,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    mean: latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1),
  };
}

/**
 * The same requests to two servers, answers compared as messages. Page tokens are opaque and
 * differ by design, so they are left out.
 */
async function compare(scenarioId: string, a: Protocol, b: Protocol, count: number): Promise<FromWorker> {
  const scenario = scenarioById(scenarioId);
  const method = scenario.method as DescMethodUnary;
  const rnd = prng(4242);
  let mismatches = 0;
  let first: string | undefined;
  for (let i = 0; i < count; i++) {
    const req = scenario.request(data, rnd, undefined, i);
    const [ra, rb] = await Promise.all([a, b].map((p) => clientFor(p).call(method, req.request, req.tenant)));
    for (const r of [ra, rb]) if ('nextPageToken' in r) r.nextPageToken = '';
    if (!equals(method.output, ra, rb)) {
      mismatches++;
      first ??= `${a}: ${JSON.stringify(toJson(method.output, ra)).slice(0, 600)}\n${b}: ${JSON.stringify(toJson(method.output, rb)).slice(0, 600)}`;
    }
  }
  return { type: 'compared', compared: count, mismatches, first };
}

process.on('message', (msg: ToWorker) => {
  void (async () => {
    try {
      switch (msg.type) {
        case 'setup':
          data = msg.data;
          targets = msg.targets;
          if (targets.floorEnv) floor = await openFloor(targets.floorEnv);
          send({ type: 'ready' });
          break;
        case 'run':
          send({ type: 'result', result: await run(msg.spec) });
          break;
        case 'compare':
          send(await compare(msg.scenario, msg.a, msg.b, msg.count));
          break;
        case 'watch':
          if (targets.service === undefined || !data.watch) throw new Error('no service or no watched project');
          send({ type: 'watched', result: await watchRun(targets.service, data.watch, msg.spec) });
          break;
        case 'exit':
          for (const c of clients.values()) c.close();
          await floor?.close();
          process.exit(0);
      }
    } catch (err) {
      send({ type: 'failed', error: (err as Error).stack ?? String(err) });
    }
  })();
});
// Orphaned (the orchestrator died without telling us): do not linger.
process.on('disconnect', () => process.exit(0));
// An exit rather than death by signal, so that `--cpu-prof` (`--profile`) writes its profile.
process.on('SIGTERM', () => process.exit(0));
