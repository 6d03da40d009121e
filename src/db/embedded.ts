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
import { mkdirSync } from 'node:fs';
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
  if (dataDir !== null) {
    dir = resolve(dataDir);
    // PGlite creates its directory but not the parents.
    mkdirSync(dirname(dir), { recursive: true });
  }
  const db = await PGlite.create({ dataDir: dir, extensions: { btree_gin } });
  // A few connections are allowed so that a reconnect never waits for the old socket to close;
  // the pool keeps only one in use (see above).
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
  await server.start();
  return {
    url: `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`,
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
