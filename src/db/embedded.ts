/**
 * The embedded database: PGlite (PostgreSQL in WebAssembly) served in process over the wire
 * protocol by pglite-socket, so that the same `pg` pool, the same SQL and the same migrations
 * run on it as on a PostgreSQL server.
 *
 * pglite-socket runs every connection on ONE database session and, with two connections busy,
 * interleaves their statements and returns wrong rows (open upstream bug, docs/stack-notes.md). The pool
 * is therefore limited to one connection in embedded mode (src/config), and everything that
 * talks to the database (migrations included) borrows that connection.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { btree_gin } from '@electric-sql/pglite/contrib/btree_gin';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedDatabase {
  /** A postgresql:// URL for the pool. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts PGlite on `dataDir` (null: in memory) and serves it on a free loopback port.
 * @throws Error when the data directory cannot be created or opened.
 */
export async function startEmbedded(dataDir: string | null): Promise<EmbeddedDatabase> {
  let dir: string | undefined;
  let lock: DataDirLock | undefined;
  if (dataDir !== null) {
    dir = resolve(dataDir);
    // PGlite creates its directory but not the parents.
    mkdirSync(dirname(dir), { recursive: true });
    lock = lockDataDir(dir);
  }
  try {
    const db = await PGlite.create({ dataDir: dir, extensions: { btree_gin } });
    // A few connections are allowed so that a reconnect never waits for the old socket to close;
    // the pool keeps only one in use (see above).
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
    await server.start().catch(async (err: unknown) => {
      await db.close();
      throw err;
    });
    return {
      url: `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`,
      async close() {
        try {
          await server.stop();
          await db.close();
        } finally {
          lock?.release();
        }
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

interface DataDirLock {
  release(): void;
}

/** Lock files this process holds, so that a lock naming our own pid is known to be stale. */
const held = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite does not lock its data directory, and two processes on one directory (the service and
 * `npm run migrate`, or two services) corrupt it. `<dir>.lock` holds the owner's pid; a lock whose
 * process is gone (a crash, or a container that reuses pid 1) is taken over.
 * @throws Error naming the holder when a live process holds the directory.
 */
function lockDataDir(dir: string): DataDirLock {
  const path = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      held.add(path);
      return {
        release() {
          if (!held.delete(path)) return;
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // Already gone.
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    let pid = Number.NaN;
    try {
      pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    } catch {
      // Removed meanwhile: try again.
    }
    const ours = pid === process.pid && held.has(path);
    if (Number.isInteger(pid) && pid > 0 && (ours || (pid !== process.pid && pidAlive(pid)))) {
      throw new Error(
        `the embedded database ${dir} is in use by process ${pid} (a running service, or npm run migrate): ` +
          `stop that process first, or use another DATABASE_URL. If no such process runs, delete ${path}.`,
      );
    }
    try {
      unlinkSync(path);
    } catch {
      // Someone else took it over first; the next attempt finds out who.
    }
  }
}
