/**
 * Global setup of the fault suite and the PgBouncer run: the tools must be there (a missing one
 * fails the run with a clear message; nothing is skipped), and every temporary server lives
 * under one directory of this run, so the teardown can kill whatever a crashed or timed-out
 * test worker left running, and remove it all; a run interrupted before its teardown is swept
 * up by the next one (its owner pid is gone).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGBOUNCER_BIN } from './pgbouncer.js';
import { childPids, PG_BIN } from './postgres-cluster.js';
import { RUN_AS } from './processes.js';

/**
 * Kills the process a pid file names, if it still is that process: a pid left by a run that
 * died may since belong to something else, so its command line must contain `expected`.
 */
function killPidFile(file: string, expected: string, withChildren: boolean): void {
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(expected)) return;
  } catch {
    return; // gone
  }
  for (const p of withChildren ? [pid, ...childPids(pid)] : [pid]) {
    try {
      process.kill(p, 'SIGCONT');
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills what a run left in `root` and removes it. */
function sweep(root: string): void {
  for (const entry of readdirSync(root)) {
    if (/^service-\d+\.pid$/.test(entry)) killPidFile(join(root, entry), 'src/main.ts', false);
    killPidFile(join(root, entry, 'data', 'postmaster.pid'), join(root, entry, 'data'), true);
    killPidFile(join(root, entry, 'pgbouncer.pid'), 'pgbouncer', false);
  }
  rmSync(root, { recursive: true, force: true });
}

/** Directories of earlier runs whose vitest died without its teardown (Ctrl-C, kill). */
function sweepAbandoned(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(RUN_PREFIX)) continue;
    const root = join(tmpdir(), entry);
    try {
      const owner = Number(readFileSync(join(root, 'owner.pid'), 'utf8'));
      if (owner > 0 && !alive(owner)) sweep(root);
    } catch {
      // not a run directory of ours after all, or removed meanwhile
    }
  }
}

const RUN_PREFIX = 'taskapi-faults-run-';

export function setup(): () => void {
  if (!existsSync(join(PG_BIN, 'initdb'))) {
    throw new Error(`initdb not found in ${PG_BIN} (set PG_BIN to the PostgreSQL server binaries)`);
  }
  try {
    execFileSync(PGBOUNCER_BIN, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`pgbouncer not found (${PGBOUNCER_BIN}): apt-get install pgbouncer, or set PGBOUNCER_BIN`);
  }
  if (RUN_AS) {
    try {
      execFileSync('id', ['-u', RUN_AS], { stdio: 'ignore' });
    } catch {
      throw new Error(
        `running as root, the servers must run as the OS user ${RUN_AS}, which does not exist (install PostgreSQL's package, or run as another user)`,
      );
    }
  }
  sweepAbandoned();
  const root = mkdtempSync(join(tmpdir(), RUN_PREFIX));
  writeFileSync(join(root, 'owner.pid'), String(process.pid));
  // The servers run as the postgres OS user: it must be able to reach its directories in here.
  chmodSync(root, 0o755);
  process.env.TASKAPI_FAULTS_TMP = root;
  return () => sweep(root);
}
