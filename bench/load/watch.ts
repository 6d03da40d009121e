/**
 * The WatchTasks run, in the load generator: one stream per protocol watches the watched project
 * (each on a connection of its own), while a writer on another connection updates the project's
 * tasks (UpdateTask over gRPC, the title) at a fixed rate, on schedule whether or not the last
 * write has answered. Each update's event is recognized on every stream by (task, version after
 * the write), so its delay is known from just before the write was sent and from its
 * acknowledgement to its arrival on the stream (timestamped as the stream's message is decoded).
 *
 * A run: the streams open; the writer writes until every stream has delivered one event (the
 * streams are live); then writes for the warm-up, then for the timed window; then waits up to
 * `graceMs` for the timed writes' events still on their way. An acknowledged timed write whose
 * event a stream never delivered is missed there; an event id a stream delivered twice is a
 * duplicate. The server's and the database's CPU are read around the timed window and that wait.
 */
import { TaskService } from '../../src/gen/taskapi/v1/task_pb.js';
import { grpcClient, type OpenStream, openServerStream } from '../lib/clients.js';
import type { TenantData, WatchData } from '../lib/data.js';
import { cpuSeconds } from '../lib/processes.js';
import type { Protocol } from '../lib/scenarios.js';

export interface WatchSpec {
  readonly protocols: readonly ('grpc' | 'connect-json' | 'connect-binary' | 'connect-h2')[];
  readonly writesPerSecond: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Longest wait after the last write for events still on their way (then they are missed). */
  readonly graceMs: number;
  /** Whose CPU to read around the timed window: the service and the database's backends. */
  readonly servicePid: number;
  readonly dbPids: readonly number[];
}

export interface WatchStreamFigures {
  readonly protocol: Protocol;
  /** Timed writes acknowledged: the events this stream had to deliver. */
  readonly expected: number;
  readonly received: number;
  readonly missed: number;
  /** Event ids delivered more than once (warm-up included). */
  readonly duplicates: number;
  /** The stream failed or ended. */
  readonly errors: number;
  readonly firstError?: string;
  /** Milliseconds from the write's acknowledgement to the event's arrival. */
  readonly fromAckP50: number;
  readonly fromAckP99: number;
  /** Milliseconds from just before the write was sent to the event's arrival. */
  readonly fromSendP50: number;
  readonly fromSendP99: number;
}

export interface WatchResult {
  /** Timed writes sent, and of them failed. */
  readonly writes: number;
  readonly writeErrors: number;
  readonly firstWriteError?: string;
  /** Length of the timed window (writes only). */
  readonly elapsedMs: number;
  /** The writes' own latency (send to acknowledgement). */
  readonly writeP50: number;
  /** Server / database CPU per acknowledged timed write, its delivery to every stream included. */
  readonly cpuUs: number;
  readonly dbCpuUs: number;
  readonly streams: WatchStreamFigures[];
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function cpuOf(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

interface Written {
  readonly key: string;
  readonly sent: number;
  readonly acked: number;
}

export async function watchRun(port: number, data: WatchData, spec: WatchSpec): Promise<WatchResult> {
  const tenant: TenantData = {
    id: data.tenantId,
    key: data.key,
    workerIds: [],
    projectIds: [data.projectId],
    taskIds: data.taskIds,
  };
  const streams = spec.protocols.map((protocol) => ({
    protocol,
    /** `${task}:${version}` of each `updated` event → arrival time. */
    arrivals: new Map<string, number>(),
    ids: new Set<string>(),
    duplicates: 0,
    errors: 0,
    firstError: undefined as string | undefined,
    handle: undefined as OpenStream | undefined,
  }));
  for (const s of streams) {
    s.handle = openServerStream(
      s.protocol,
      port,
      TaskService.method.watchTasks,
      { projectId: BigInt(data.projectId) },
      tenant,
      (m) => {
        const at = performance.now();
        const e = m.event;
        if (!e) return;
        const id = String(e.id);
        if (s.ids.has(id)) {
          s.duplicates++;
          return;
        }
        s.ids.add(id);
        if (e.kind === 'updated') s.arrivals.set(`${e.taskId}:${e.taskVersion}`, at);
      },
      (err) => {
        s.errors++;
        s.firstError ??= err?.message ?? 'the server ended the stream';
      },
    );
  }
  const writer = grpcClient(port);
  let n = 0;
  const write = async (): Promise<Written> => {
    const id = data.taskIds[n++ % data.taskIds.length]!;
    const sent = performance.now();
    const res = await writer.call(
      TaskService.method.updateTask,
      { task: { id: BigInt(id), title: `watched ${process.pid}-${n}` }, updateMask: { paths: ['title'] } },
      tenant,
    );
    return { key: `${id}:${res.task.version}`, sent, acked: performance.now() };
  };
  /** Writes at the fixed rate for `ms`; every write settled. */
  const writeFor = async (ms: number) => {
    const interval = 1000 / spec.writesPerSecond;
    const start = performance.now();
    const out: Promise<Written | { error: string }>[] = [];
    for (let i = 0; start + i * interval < start + ms; i++) {
      await sleep(start + i * interval - performance.now());
      out.push(write().catch((err: Error) => ({ error: err.message })));
    }
    return Promise.all(out);
  };
  const live = () => streams.filter((s) => s.errors === 0);
  try {
    const until = performance.now() + 15_000;
    while (live().some((s) => s.ids.size === 0)) {
      if (performance.now() > until) throw new Error('WatchTasks: a stream delivered nothing for 15 s');
      await write();
      await sleep(100);
    }
    await writeFor(spec.warmupMs);

    const c0 = cpuSeconds(spec.servicePid);
    const d0 = cpuOf(spec.dbPids);
    const t0 = performance.now();
    const results = await writeFor(spec.durationMs);
    const elapsedMs = performance.now() - t0;
    const acked = results.filter((r): r is Written => 'key' in r);
    const waitUntil = performance.now() + spec.graceMs;
    while (performance.now() < waitUntil && live().some((s) => acked.some((w) => !s.arrivals.has(w.key)))) {
      await sleep(5);
    }
    const cpu = cpuSeconds(spec.servicePid) - c0;
    const db = [...cpuOf(spec.dbPids)].reduce((sum, [pid, c]) => sum + c - (d0.get(pid) ?? c), 0);

    const failed = results.filter((r): r is { error: string } => 'error' in r);
    const writeLatencies = acked.map((w) => w.acked - w.sent).sort((a, b) => a - b);
    return {
      writes: results.length,
      writeErrors: failed.length,
      firstWriteError: failed[0]?.error,
      elapsedMs,
      writeP50: percentile(writeLatencies, 0.5),
      cpuUs: (cpu / Math.max(1, acked.length)) * 1e6,
      dbCpuUs: spec.dbPids.length ? (db / Math.max(1, acked.length)) * 1e6 : Number.NaN,
      streams: streams.map((s) => {
        const fromAck: number[] = [];
        const fromSend: number[] = [];
        for (const w of acked) {
          const at = s.arrivals.get(w.key);
          if (at === undefined) continue;
          fromAck.push(at - w.acked);
          fromSend.push(at - w.sent);
        }
        fromAck.sort((a, b) => a - b);
        fromSend.sort((a, b) => a - b);
        return {
          protocol: s.protocol,
          expected: acked.length,
          received: fromAck.length,
          missed: acked.length - fromAck.length,
          duplicates: s.duplicates,
          errors: s.errors,
          firstError: s.firstError,
          fromAckP50: percentile(fromAck, 0.5),
          fromAckP99: percentile(fromAck, 0.99),
          fromSendP50: percentile(fromSend, 0.5),
          fromSendP99: percentile(fromSend, 0.99),
        };
      }),
    };
  } finally {
    for (const s of streams) s.handle?.close();
    writer.close();
  }
}
