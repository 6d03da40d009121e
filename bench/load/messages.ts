/** The IPC protocol between the orchestrator and a load generator process. */
import type { BenchData } from '../lib/data.js';
import type { Protocol } from '../lib/scenarios.js';
import type { WatchResult, WatchSpec } from './watch.js';

export interface Targets {
  /** Port of the service under test. */
  readonly service?: number;
  /** Port of the bare grpc-js baseline server. */
  readonly bare?: number;
  /** Environment for the in-process service layer (the floor). */
  readonly floorEnv?: Record<string, string>;
}

export interface RunSpec {
  readonly scenario: string;
  readonly protocol: Protocol;
  readonly callers: number;
  /** Run for this long, or exactly `count` calls. */
  readonly durationMs?: number;
  readonly count?: number;
  readonly seed: number;
  readonly params?: Record<string, string>;
}

export type ToWorker =
  | { readonly type: 'setup'; readonly data: BenchData; readonly targets: Targets }
  | { readonly type: 'run'; readonly spec: RunSpec }
  /** Sends the same `count` requests to two protocols and compares the answers message by message. */
  | {
      readonly type: 'compare';
      readonly scenario: string;
      readonly a: Protocol;
      readonly b: Protocol;
      readonly count: number;
    }
  /** A WatchTasks delivery run (bench/load/watch.ts). */
  | { readonly type: 'watch'; readonly spec: WatchSpec }
  | { readonly type: 'exit' };

export interface RunResult {
  /** Calls that completed with a correct response. */
  readonly ok: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly elapsedMs: number;
  /** Latency of the correct calls, milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'result'; readonly result: RunResult }
  | { readonly type: 'compared'; readonly compared: number; readonly mismatches: number; readonly first?: string }
  | { readonly type: 'watched'; readonly result: WatchResult }
  | { readonly type: 'failed'; readonly error: string };
