/**
 * Global setup of the fault suite and the PgBouncer run: the tools must be there (a missing one
 * fails the run with a clear message; nothing is skipped), and every temporary server lives
 * under one directory of this run, so the teardown can kill whatever a crashed or timed-out
 * test worker left running, and remove it all.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PG_BIN, childPids } from './postgres-cluster.js';
import { PGBOUNCER_BIN } from './pgbouncer.js';
import { execFileSync } from 'node:child_process';

function killPidFile(file: string, withChildren: boolean): void {
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  for (const p of withChildren ? [pid, ...childPids(pid)] : [pid]) {
    try {
      process.kill(p, 'SIGCONT');
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export function setup(): () => void {
  if (!existsSync(join(PG_BIN, 'initdb'))) {
    throw new Error(`initdb not found in ${PG_BIN} (set PG_BIN to the PostgreSQL server binaries)`);
  }
  try {
    execFileSync(PGBOUNCER_BIN, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`pgbouncer not found (${PGBOUNCER_BIN}): apt-get install pgbouncer, or set PGBOUNCER_BIN`);
  }
  const root = mkdtempSync(join(tmpdir(), 'taskapi-faults-run-'));
  // The servers run as the postgres OS user: it must be able to reach its directories in here.
  chmodSync(root, 0o755);
  process.env.TASKAPI_FAULTS_TMP = root;
  return () => {
    for (const entry of readdirSync(root)) {
      if (/^service-\d+\.pid$/.test(entry)) killPidFile(join(root, entry), false);
      killPidFile(join(root, entry, 'data', 'postmaster.pid'), true);
      killPidFile(join(root, entry, 'pgbouncer.pid'), false);
    }
    rmSync(root, { recursive: true, force: true });
  };
}
