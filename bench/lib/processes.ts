/**
 * Child processes of the benchmark: started with a chosen Node binary, remembered, and always
 * stopped — on a normal end, on an error, on SIGINT/SIGTERM — so that no server outlives a run.
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];

/** Work to do on every way out (dropping the database); runs after the children are stopped. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops one child: SIGTERM (the service drains), SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

let cleaning: Promise<void> | undefined;
/** Stops every child still running, then runs the cleanups. Safe to call more than once. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

let interruptedBy: string | undefined;
/** The signal that stopped the run, if one did (its children's deaths are no failure then). */
export const interrupted = () => interruptedBy;

/** Ctrl-C or a kill of the benchmark still stops its servers and drops its database. */
export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interruptedBy = signal;
      process.stderr.write(`\n${signal}: stopping the benchmark's processes\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  // A crash of the orchestrator itself must not orphan a server either.
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    process.once(event, (err: unknown) => {
      process.stderr.write(`benchmark crashed: ${(err as Error)?.stack ?? String(err)}\n`);
      void cleanupAll().finally(() => process.exit(1));
    });
  }
}

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last lines the process wrote, for error messages. */
  tail(): string;
  /** Calls `fn` with every further line of output; returns the unsubscribe. */
  onLine(fn: (line: string) => void): () => void;
}

/**
 * Runs `node --import tsx <script>` as `npm start` does (one process, so signals reach it), with
 * the given Node binary. stderr is kept (the last lines) and scanned by `onLine`.
 */
export function startNode(
  nodeBin: string,
  script: string,
  env: Record<string, string>,
  options: { ipc?: boolean; onLine?: (line: string) => void; nodeArgs?: readonly string[] } = {},
): NodeProcess {
  const fullEnv = { ...process.env, ...env };
  const nodeArgs = [...(options.nodeArgs ?? []), '--import', 'tsx'];
  const child = track(
    options.ipc
      ? fork(script, [], {
          execPath: nodeBin,
          execArgv: nodeArgs,
          env: fullEnv,
          stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
        })
      : spawn(nodeBin, [...nodeArgs, script], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  if (options.onLine) listeners.add(options.onLine);
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 40) lines.shift();
    for (const fn of listeners) fn(line);
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  if (child.stdout) createInterface({ input: child.stdout }).on('line', keep);
  if (child.pid === undefined) throw new Error(`could not start ${nodeBin} ${script}`);
  return {
    child,
    pid: child.pid,
    tail: () => lines.join('\n'),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/** Resolves with the first value `pick` finds in the process's output; rejects if it exits first. */
export function waitForLine<T>(
  proc: NodeProcess,
  pick: (line: string) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`${what}: nothing after ${timeoutMs} ms\n${proc.tail()}`)),
      timeoutMs,
    );
    const onExit = (code: number | null) => done(new Error(`${what}: the process exited (${code})\n${proc.tail()}`));
    const off = proc.onLine((line) => {
      const v = pick(line);
      if (v !== undefined) done(undefined, v);
    });
    proc.child.once('exit', onExit);
    function done(err?: Error, value?: T) {
      clearTimeout(timer);
      off();
      proc.child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value as T);
    }
  });
}

/** Kernel clock ticks per second (utime/stime in /proc are counted in these). */
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
