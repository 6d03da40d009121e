/**
 * Child processes of the fault suite, and the promise that none outlives it: every process a
 * test starts is registered here and killed (SIGKILL, synchronously) when the test file's
 * worker exits for any reason, even when an afterAll never ran. PostgreSQL daemonizes (pg_ctl),
 * so its postmaster is registered by pid.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const pids = new Set<number>();

/** Kills `pid` when this process exits, unless it was unregistered before. */
export function killOnExit(pid: number): void {
  pids.add(pid);
}

export function forget(pid: number): void {
  pids.delete(pid);
}

/** SIGKILL to every registered process (and, for a postmaster, PostgreSQL kills its backends). */
export function killAll(): void {
  for (const pid of pids) {
    try {
      // A stopped process keeps SIGKILL pending until it runs: continue it too.
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  pids.clear();
}

process.once('exit', killAll);

const run = promisify(execFile);

/** Root cannot run PostgreSQL or PgBouncer: both refuse it. Commands run as `postgres` then. */
export const RUN_AS = process.getuid?.() === 0 ? 'postgres' : null;

/**
 * Runs a command as the database's OS user.
 * @throws Error with the command's output when it fails.
 */
export async function runAsDbUser(file: string, args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const [cmd, argv] = RUN_AS ? ['runuser', ['-u', RUN_AS, '--', file, ...args]] : [file, args];
  try {
    const { stdout, stderr } = await run(cmd, argv, { timeout: options.timeoutMs ?? 60_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Polls `check` until it returns a value other than undefined/false.
 * @throws Error naming `what` after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
