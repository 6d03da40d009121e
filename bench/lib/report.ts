/** Medians over runs, ratios to the baselines, targets, and the Markdown/JSON output. */
import type { WatchStreamFigures } from '../load/watch.js';
import type { Protocol } from './scenarios.js';

/** One timed run of one scenario on one protocol. */
export interface RunFigures {
  readonly ops: number;
  readonly p50: number;
  readonly p99: number;
  readonly ok: number;
  readonly errors: number;
  /** Server process CPU (user + system) per call, microseconds. */
  readonly cpuUs: number;
  /** CPU of the database server's backends per call, microseconds (NaN when not measured). */
  readonly dbCpuUs: number;
  /** CPU of the load generator per call (JSON only): shows when the client is the bottleneck. */
  readonly clientCpuUs?: number;
  readonly firstError?: string;
}

export interface Row {
  readonly scenario: string;
  readonly protocol: Protocol;
  readonly callers: number;
  readonly runs: readonly RunFigures[];
  /** Medians over the runs (errors: the sum). */
  readonly ops: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly cpuUs: number;
  readonly dbCpuUs: number;
  /** The load generator's CPU per call (NaN for per-call-setup rows and the floor's own process). */
  readonly clientCpuUs: number;
  readonly firstError?: string;
  vsFloor?: Ratio;
  vsBare?: Ratio;
  /** Against the raw claim loop (claim table). */
  vsRaw?: Ratio & { readonly p50: number; readonly dbCpu: number };
}

export interface Ratio {
  /** Throughput of this row ÷ throughput of the baseline (higher is better). */
  readonly ops: number;
  /** CPU per call of this row ÷ CPU per call of the baseline (lower is better). */
  readonly cpu: number;
}

export interface Target {
  readonly name: string;
  readonly measured: number;
  readonly limit: string;
  readonly pass: boolean | null;
  readonly note?: string;
}

/** One WatchTasks run as one stream saw it, with the run's write-side figures. */
export interface WatchRunFigures extends WatchStreamFigures {
  /** Timed writes per second, as sent. */
  readonly writesPerSecond: number;
  readonly writeErrors: number;
  readonly firstWriteError?: string;
  /** The writes' own p50 (send to acknowledgement). */
  readonly writeP50: number;
  readonly cpuUs: number;
  readonly dbCpuUs: number;
}

export interface WatchRow {
  readonly scenario: string;
  readonly protocol: Protocol;
  readonly runs: readonly WatchRunFigures[];
  /** Medians over the runs. */
  readonly writesPerSecond: number;
  readonly fromAckP50: number;
  readonly fromAckP99: number;
  readonly fromSendP50: number;
  readonly fromSendP99: number;
  readonly cpuUs: number;
  readonly dbCpuUs: number;
  /** Sums over the runs. */
  readonly expected: number;
  readonly received: number;
  readonly missed: number;
  readonly duplicates: number;
  /** Stream failures plus failed writes. */
  readonly errors: number;
  readonly firstError?: string;
}

export interface Section {
  readonly title: string;
  readonly rows: Row[];
  /** The contended claim queue, the raw baseline and the floor beside the service. */
  readonly claims?: Row[];
  readonly watch?: WatchRow[];
  readonly targets: Target[];
  readonly notes: string[];
}

export interface Report {
  readonly date: string;
  readonly mode: 'full' | 'quick';
  /** Load averages at the start and at the end: a busy machine shows here. */
  readonly machine: { cores: number; cpuModel: string; loadavg: number[]; loadavgAtEnd?: number[] };
  readonly node: { service: string; loadGenerator: string };
  readonly postgres?: string;
  readonly callers: number;
  readonly runs: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly seed: Record<string, number | string>;
  readonly sections: Section[];
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function summarize(scenario: string, protocol: Protocol, callers: number, runs: RunFigures[]): Row {
  return {
    scenario,
    protocol,
    callers,
    runs,
    ops: median(runs.map((r) => r.ops)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    cpuUs: median(runs.map((r) => r.cpuUs)),
    dbCpuUs: median(runs.map((r) => r.dbCpuUs)),
    clientCpuUs: median(runs.map((r) => r.clientCpuUs ?? Number.NaN)),
    firstError: runs.find((r) => r.firstError)?.firstError,
  };
}

export function summarizeWatch(scenario: string, protocol: Protocol, runs: WatchRunFigures[]): WatchRow {
  const sum = (f: (r: WatchRunFigures) => number) => runs.reduce((a, r) => a + f(r), 0);
  return {
    scenario,
    protocol,
    runs,
    writesPerSecond: median(runs.map((r) => r.writesPerSecond)),
    fromAckP50: median(runs.map((r) => r.fromAckP50)),
    fromAckP99: median(runs.map((r) => r.fromAckP99)),
    fromSendP50: median(runs.map((r) => r.fromSendP50)),
    fromSendP99: median(runs.map((r) => r.fromSendP99)),
    cpuUs: median(runs.map((r) => r.cpuUs)),
    dbCpuUs: median(runs.map((r) => r.dbCpuUs)),
    expected: sum((r) => r.expected),
    received: sum((r) => r.received),
    missed: sum((r) => r.missed),
    duplicates: sum((r) => r.duplicates),
    errors: sum((r) => r.errors + r.writeErrors),
    firstError: runs.find((r) => r.firstError)?.firstError ?? runs.find((r) => r.firstWriteError)?.firstWriteError,
  };
}

/** Each service row against the floor, the bare server and the raw claim loop of the same scenario. */
export function addRatios(rows: Row[]): void {
  const find = (scenario: string, protocol: Protocol) =>
    rows.find((r) => r.scenario === scenario && r.protocol === protocol);
  for (const row of rows) {
    if (row.protocol === 'floor' || row.protocol === 'bare' || row.protocol === 'raw') continue;
    const floor = find(row.scenario, 'floor');
    const bare = find(row.scenario, 'bare');
    const raw = find(row.scenario, 'raw');
    if (floor) row.vsFloor = { ops: row.ops / floor.ops, cpu: row.cpuUs / floor.cpuUs };
    if (bare) row.vsBare = { ops: row.ops / bare.ops, cpu: row.cpuUs / bare.cpuUs };
    if (raw) {
      row.vsRaw = {
        ops: row.ops / raw.ops,
        cpu: row.cpuUs / raw.cpuUs,
        p50: row.p50 / raw.p50,
        dbCpu: row.dbCpuUs / raw.dbCpuUs,
      };
    }
  }
}

const PROTOCOL_NAMES: Record<Protocol, string> = {
  grpc: 'gRPC (grpc-js)',
  'connect-json': 'Connect JSON, HTTP/1.1',
  'connect-binary': 'Connect binary, HTTP/1.1',
  'connect-h2': 'Connect binary, HTTP/2',
  'plain-json': 'Connect JSON, HTTP/1.1, plain `http` client',
  floor: '**floor**: service layer in process',
  bare: '**bare** grpc-js + hand SQL',
  raw: '**raw**: pg pool + hand SQL, no service',
};

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || !Number.isFinite(v)
    ? '–'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (v: number) => (!Number.isFinite(v) ? '–' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

/** The cells every table row starts with: call, protocol, callers, throughput, latency, errors, CPU. */
const measured = (r: Row): string[] => [
  r.scenario,
  PROTOCOL_NAMES[r.protocol],
  String(r.callers),
  fmt(r.ops, r.ops < 100 ? 1 : 0),
  ms(r.p50),
  ms(r.p99),
  String(r.errors),
  fmt(r.cpuUs),
];

export function markdown(report: Report): string {
  const out: string[] = [];
  out.push(`# Task API benchmark (${report.mode} run)`, '');
  out.push(
    `${report.date} · ${report.machine.cores} cores, ${report.machine.cpuModel} (load average ${report.machine.loadavg.map((l) => l.toFixed(2)).join(', ')} at the start, ` +
      `${(report.machine.loadavgAtEnd ?? []).map((l) => l.toFixed(2)).join(', ')} at the end) · ` +
      `service and baselines on Node ${report.node.service}, load generator on Node ${report.node.loadGenerator}` +
      (report.postgres ? ` · ${report.postgres}` : ''),
    '',
    `${report.callers} callers (heavy calls: 1) · median of ${report.runs} run(s) of ${report.durationS} s after ${report.warmupS} s warm-up · ` +
      `seed: ${Object.entries(report.seed)
        .map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`)
        .join(', ')}`,
    '',
  );
  for (const section of report.sections) {
    out.push(`## ${section.title}`, '');
    if (section.rows.length) {
      const withBaselines = section.rows.some((r) => r.protocol === 'floor' || r.protocol === 'bare');
      out.push(
        withBaselines
          ? '| call | protocol | callers | ops/s | p50 ms | p99 ms | errors | server CPU µs/call | DB CPU µs/call | client CPU µs/call | ops × floor | CPU × floor | ops × bare | CPU × bare |'
          : '| call | protocol | callers | ops/s | p50 ms | p99 ms | errors | server CPU µs/call |',
        withBaselines
          ? '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|'
          : '|---|---|--:|--:|--:|--:|--:|--:|',
      );
      for (const r of section.rows) {
        const cells = measured(r);
        if (withBaselines)
          cells.push(
            fmt(r.dbCpuUs),
            r.protocol === 'floor' ? '–' : fmt(r.clientCpuUs),
            fmt(r.vsFloor?.ops, 2),
            fmt(r.vsFloor?.cpu, 2),
            fmt(r.vsBare?.ops, 2),
            fmt(r.vsBare?.cpu, 2),
          );
        out.push(`| ${cells.join(' | ')} |`);
      }
      out.push('');
    }
    if (section.claims?.length) {
      out.push(
        '### Contended claims',
        '',
        'Each claim is followed by the release of its task (given back as pending), not timed; CPU per claim covers both. ' +
          'Ratios: the row ÷ the raw claim loop (same data, same pool size, same run).',
        '',
        '| call | protocol | agents | claims/s | p50 ms | p99 ms | errors | server CPU µs/claim | DB CPU µs/claim | claims/s × raw | p50 × raw | CPU × raw | DB CPU × raw |',
        '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
      );
      for (const r of section.claims) {
        const cells = [
          ...measured(r),
          fmt(r.dbCpuUs),
          fmt(r.vsRaw?.ops, 2),
          fmt(r.vsRaw?.p50, 2),
          fmt(r.vsRaw?.cpu, 2),
          fmt(r.vsRaw?.dbCpu, 2),
        ];
        out.push(`| ${cells.join(' | ')} |`);
      }
      out.push('');
    }
    if (section.watch?.length) {
      out.push(
        '### WatchTasks delivery',
        '',
        'One stream per protocol, all open at once on the same writes (UpdateTask over gRPC from another connection, ' +
          'at a fixed rate). Latency: from the write’s acknowledgement, and from just before it was sent, to the ' +
          'event’s arrival on the stream. CPU per write covers the write and its delivery to every stream.',
        '',
        '| call | stream protocol | writes/s | events expected | received | missed | duplicates | errors | p50 ms from ack | p99 ms from ack | p50 ms from send | p99 ms from send | server CPU µs/write | DB CPU µs/write |',
        '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
      );
      for (const r of section.watch) {
        const cells = [
          r.scenario,
          PROTOCOL_NAMES[r.protocol],
          fmt(r.writesPerSecond, 1),
          String(r.expected),
          String(r.received),
          r.missed ? `**${r.missed}**` : '0',
          String(r.duplicates),
          String(r.errors),
          ms(r.fromAckP50),
          ms(r.fromAckP99),
          ms(r.fromSendP50),
          ms(r.fromSendP99),
          fmt(r.cpuUs),
          fmt(r.dbCpuUs),
        ];
        out.push(`| ${cells.join(' | ')} |`);
      }
      out.push('');
    }
    if (section.targets.length) {
      out.push('| target | measured | limit | result |', '|---|--:|--:|---|');
      for (const t of section.targets) {
        out.push(
          `| ${t.name} | ${fmt(t.measured, 2)} | ${t.limit} | ${t.limit === '–' ? '–' : t.pass === null ? 'n/a' : t.pass ? 'PASS' : '**FAIL**'}${t.note ? ` (${t.note})` : ''} |`,
        );
      }
      out.push('');
    }
    const errors = [...section.rows, ...(section.claims ?? []), ...(section.watch ?? [])].filter((r) => r.firstError);
    for (const r of errors)
      out.push(`- errors in ${r.scenario} / ${r.protocol}: ${r.errors}, first: \`${r.firstError!.slice(0, 200)}\``);
    for (const n of section.notes) out.push(`- ${n}`);
    if (errors.length || section.notes.length) out.push('');
  }
  return out.join('\n');
}
