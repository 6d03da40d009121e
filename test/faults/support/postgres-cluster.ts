/**
 * A throwaway PostgreSQL server of its own for the fault suite: initdb in a temporary directory,
 * a free port, started with pg_ctl. Restarting, stopping or freezing it never disturbs the
 * shared server other tests use. PostgreSQL refuses to run as root, so when the suite runs as
 * root (CI) every command runs as the `postgres` OS user, who must own the directory.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { forget, freePort, killOnExit, RUN_AS, runAsDbUser } from './processes.js';

/** The server binaries: PG_BIN, else the newest of Debian's /usr/lib/postgresql/<major>/bin. */
export const PG_BIN = process.env.PG_BIN ?? debianBinDir() ?? '/usr/lib/postgresql/15/bin';

function debianBinDir(): string | undefined {
  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v) && existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    return majors[0] === undefined ? undefined : join('/usr/lib/postgresql', majors[0], 'bin');
  } catch {
    return undefined;
  }
}

/** A directory the database's OS user owns. */
export function ownedTempDir(prefix: string): string {
  // Under the run's own directory when the global setup made one, so its teardown can sweep up.
  const dir = mkdtempSync(join(process.env.TASKAPI_FAULTS_TMP ?? tmpdir(), prefix));
  if (RUN_AS) {
    const uid = Number(execFileSync('id', ['-u', RUN_AS]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', RUN_AS]).toString().trim());
    chownSync(dir, uid, gid);
  }
  return dir;
}

/** The children of `pid`, from /proc (no dependency on procps). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the fields after it are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export class PostgresCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  /** initdb (trust authentication, user postgres) and start. */
  static async create(): Promise<PostgresCluster> {
    const dir = ownedTempDir('taskapi-faults-pg-');
    const port = await freePort();
    const cluster = new PostgresCluster(dir, port);
    await runAsDbUser(join(PG_BIN, 'initdb'), [
      '-D',
      cluster.dataDir,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    // The server keeps fsync on: "every acknowledged write survives an immediate shutdown" should
    // be shown with the durability settings production runs with.
    appendFileSync(
      join(cluster.dataDir, 'postgresql.conf'),
      [
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${dir}'`,
        'max_connections = 60',
        'shared_buffers = 32MB',
        'log_min_messages = warning',
        '',
      ].join('\n'),
    );
    await cluster.start();
    return cluster;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  url(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** The postmaster's pid while it runs. */
  postmasterPid(): number | undefined {
    const file = join(this.dataDir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  async start(): Promise<void> {
    await runAsDbUser(join(PG_BIN, 'pg_ctl'), [
      'start',
      '-w',
      '-t',
      '60',
      '-D',
      this.dataDir,
      '-l',
      join(this.dir, 'server.log'),
    ]);
    const pid = this.postmasterPid();
    if (pid) killOnExit(pid);
  }

  /** pg_ctl stop: `fast` rolls back open transactions and disconnects; `immediate` is a crash. */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    const pid = this.postmasterPid();
    await runAsDbUser(join(PG_BIN, 'pg_ctl'), ['stop', '-w', '-t', '60', '-m', mode, '-D', this.dataDir]);
    if (pid) forget(pid);
  }

  async restart(mode: 'fast' | 'immediate'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /** SIGSTOP to the postmaster, then to every process it forked: the server freezes mid-answer. */
  freeze(): number[] {
    const pid = this.postmasterPid();
    if (!pid) throw new Error('PostgreSQL is not running');
    process.kill(pid, 'SIGSTOP');
    const children = childPids(pid);
    for (const child of children) process.kill(child, 'SIGSTOP');
    return [pid, ...children];
  }

  thaw(pids: number[]): void {
    for (const pid of [...pids].reverse()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
  }

  /** A query on the server as the superuser, over a fresh connection. */
  async query<R extends pg.QueryResultRow>(sql: string, values: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database), connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query<R>(sql, values)).rows;
    } finally {
      await client.end();
    }
  }

  /** Kills the server outright (whatever state it is in) and removes its directory. */
  destroy(): void {
    const pid = this.postmasterPid();
    if (pid) {
      const all = [pid, ...childPids(pid)];
      for (const p of all) {
        try {
          process.kill(p, 'SIGCONT');
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      forget(pid);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
