/**
 * A PgBouncer of its own: config in a temporary directory, a free port, transaction pooling,
 * trust authentication, every database forwarded to one PostgreSQL server (`* = host port`), so
 * each test database is reachable through it under its own name. PgBouncer refuses to run as
 * root: as root it is started as the `postgres` OS user (spawn's uid/gid, so the child is
 * PgBouncer itself and can be signalled directly).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ownedTempDir } from './postgres-cluster.js';
import { forget, freePort, killOnExit, RUN_AS, waitFor } from './processes.js';

export const PGBOUNCER_BIN =
  process.env.PGBOUNCER_BIN ?? (existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer');

export interface PgBouncerOptions {
  /** The PostgreSQL server behind it. */
  readonly serverHost: string;
  readonly serverPort: number;
  /**
   * Seconds PgBouncer waits before it tries a server again after a failed login (15 by default):
   * after a PostgreSQL restart, calls fail UNAVAILABLE for up to this long.
   */
  readonly serverLoginRetry?: number;
  readonly poolSize?: number;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class PgBouncer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(options: PgBouncerOptions): Promise<PgBouncer> {
    const dir = ownedTempDir('taskapi-pgbouncer-');
    const bouncer = new PgBouncer(dir, await freePort());
    // trust still looks the user up in auth_file: list it, with no password.
    writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n', { mode: 0o644 });
    writeFileSync(
      join(dir, 'pgbouncer.ini'),
      [
        '[databases]',
        `* = host=${options.serverHost} port=${options.serverPort}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${bouncer.port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${join(dir, 'userlist.txt')}`,
        'pool_mode = transaction',
        // The admin console (database `pgbouncer`): SHOW CLIENTS shows who came through it.
        'admin_users = postgres',
        `default_pool_size = ${options.poolSize ?? 20}`,
        'max_client_conn = 1000',
        `server_login_retry = ${options.serverLoginRetry ?? 15}`,
        // Every test file has its own database, so its own pool: idle server connections of files
        // already done must not pile up (600 s by default) towards the server's max_connections.
        'server_idle_timeout = 10',
        // pg sends none of these today; a client that does must not be refused.
        'ignore_startup_parameters = extra_float_digits',
        `logfile = ${join(dir, 'pgbouncer.log')}`,
        `pidfile = ${join(dir, 'pgbouncer.pid')}`,
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    await bouncer.run();
    return bouncer;
  }

  /** postgresql:// URL of `database` through this PgBouncer. */
  url(database: string): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  get log(): string {
    try {
      return readFileSync(join(this.dir, 'pgbouncer.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** The log's errors and warnings (at most `limit` lines): what a failed run needs to show. */
  problems(limit = 30): string[] {
    return (
      this.log
        .split('\n')
        .filter((line) => /\b(ERROR|WARNING|FATAL)\b/.test(line))
        // An idle server connection told it is terminated: each file's database is dropped WITH (FORCE).
        .filter((line) => !line.includes('when not linked'))
        .slice(-limit)
    );
  }

  private async run(): Promise<void> {
    const ids = RUN_AS
      ? {
          uid: Number(execFileSync('id', ['-u', RUN_AS]).toString().trim()),
          gid: Number(execFileSync('id', ['-g', RUN_AS]).toString().trim()),
        }
      : {};
    const child = spawn(PGBOUNCER_BIN, [join(this.dir, 'pgbouncer.ini')], {
      ...ids,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (b) => (stderr += b));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('error', (err) => (stderr += String(err)));
    this.child = child;
    if (child.pid) killOnExit(child.pid);
    await waitFor(
      'PgBouncer to listen',
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`PgBouncer exited: ${stderr}${this.log}`);
        return portOpen(this.port);
      },
      15_000,
    );
  }

  /** Stops it at once (SIGTERM: immediate shutdown, client connections are dropped). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await this.exited;
    if (child.pid) forget(child.pid);
    this.child = undefined;
  }

  /** Stops it and starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.run();
  }

  async destroy(): Promise<void> {
    if (this.child?.pid) {
      this.child.kill('SIGKILL');
      await this.exited;
      forget(this.child.pid);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
