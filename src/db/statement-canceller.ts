/**
 * Cancels what the checked-out pool connections are running, on the server. The shutdown needs
 * it once the grace period is over: aborting a call's signal stops it only between statements,
 * so a handler blocked on a row lock would wait for `statement_timeout` (30 s by default), keep
 * its answer from the client, and keep `pool.end()` from finishing.
 *
 * It sends PostgreSQL's cancel request (what psql's Ctrl-C sends: 16 bytes on a short, separate
 * connection, naming the backend's process id and secret key) rather than running
 * `select pg_cancel_backend(pid)`, because the cancel request
 * - needs no free connection slot: at shutdown under load, max_connections may be what is used up;
 * - needs no privilege, and cancels nothing else by mistake: it carries the connection's secret;
 * - works behind PgBouncer, which hands clients its own process ids (pg_cancel_backend would
 *   take one for a real backend's) and forwards cancel requests to the right server connection.
 * pg's own `Client#cancel` writes the request before any TLS negotiation and reports nothing
 * back, so the request is written here. PostgreSQL reads a cancel request before
 * authentication and pg_hba, so it needs no TLS even when sessions use it.
 */
import net from 'node:net';
import type pg from 'pg';
import type { Logger } from '../logger.js';

const CANCEL_REQUEST_CODE = 80877102;

/** What pg keeps of a connection that a cancel request needs (set once the session started). */
interface Cancellable {
  readonly host: string;
  readonly port: number;
  readonly processID: number | null;
  readonly secretKey: number | null;
}

export class StatementCanceller {
  private readonly busy = new Set<pg.PoolClient>();

  /** Watches `pool` from now on: attach before the first connection is checked out. */
  constructor(
    pool: pg.Pool,
    private readonly logger: Logger,
  ) {
    pool.on('acquire', (client) => this.busy.add(client));
    pool.on('release', (_err, client) => this.busy.delete(client));
    pool.on('remove', (client) => this.busy.delete(client));
  }

  /** Connections checked out of the pool right now. */
  get checkedOut(): number {
    return this.busy.size;
  }

  /**
   * Asks the server to cancel the statement `client` is running (a call gave up on it: its
   * deadline passed or its client went away). Never throws; a failure is logged at debug.
   */
  cancel(client: pg.PoolClient, timeoutMs = 1_000): void {
    const target = client as unknown as Cancellable;
    if (target.processID === null || target.secretKey === null) return;
    sendCancelRequest(target, timeoutMs).catch((err: unknown) => this.logger.debug('cancel request failed', { err }));
  }

  /**
   * Asks the server to cancel the statement each checked-out connection is running (one that is
   * between statements is not affected; the caller's aborted signal stops it before the next).
   * Never throws: a request that cannot be delivered is logged.
   * @returns how many cancel requests were delivered.
   */
  async cancelAll(timeoutMs = 1_000): Promise<number> {
    const targets = [...this.busy]
      .map((client) => client as unknown as Cancellable)
      .filter((c) => c.processID !== null && c.secretKey !== null);
    const sent = await Promise.allSettled(targets.map((target) => sendCancelRequest(target, timeoutMs)));
    const failed = sent.filter((r) => r.status === 'rejected');
    if (failed.length > 0) {
      this.logger.warn('could not cancel every running statement', {
        failed: failed.length,
        err: (failed[0] as PromiseRejectedResult).reason,
      });
    }
    return sent.length - failed.length;
  }
}

/** How long a delivered request may wait for the server's close before the socket is dropped. */
const CLOSE_WAIT_MS = 30_000;

/**
 * Resolves once the request is written; @throws Error when the server cannot be reached within
 * `timeoutMs`.
 */
function sendCancelRequest(target: Cancellable, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // A host that is a directory is the unix socket form (postgresql:///db?host=/var/run/postgresql).
    const socket = target.host.startsWith('/')
      ? net.connect(`${target.host}/.s.PGSQL.${target.port}`)
      : net.connect(target.port, target.host);
    let timer = setTimeout(() => socket.destroy(new Error('cancel request timed out')), timeoutMs);
    socket.once('connect', () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      packet.writeInt32BE(target.processID!, 8);
      packet.writeInt32BE(target.secretKey!, 12);
      // The server answers nothing and closes the connection once it has handled the request.
      // Wait for that close, as libpq does, rather than closing first: PgBouncer 1.18 forwards
      // the request on a server connection of its own, and a client that hangs up before that
      // is done makes it free the client twice and exit ("FATAL ... disconnect_client(): bad
      // client state: 0", pgbouncer/pgbouncer#801, fixed in 1.20 by #846). The request counts
      // as delivered once written; the wait for the close goes on in the background, bounded
      // generously so that even a busy pooler has long finished.
      socket.write(packet, () => {
        clearTimeout(timer);
        timer = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
        timer.unref();
        socket.unref();
        resolve();
      });
    });
    // The server's close: ours follows (allowHalfOpen is off, so Node ends our side itself).
    socket.once('end', () => socket.destroy());
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      // No-op once delivered; otherwise the connection ended before the request was written.
      reject(new Error('the connection closed before the cancel request was written'));
    });
  });
}
