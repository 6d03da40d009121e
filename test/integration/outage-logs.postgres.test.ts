/**
 * A database outage seen in the log: every failed call still has its call line, but the
 * repeated error is one line plus a count per interval, not one error line per call (the
 * operations issue counted 3,330 in 21 s). The outage: the service's database stops accepting
 * connections and its sessions are terminated. (PostgreSQL only.)
 */
import { ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../src/app.js';
import { createLogger } from '../../src/logger.js';
import { type ApiClient, connectClient, grpcClient } from '../helpers/clients.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { ADMIN_TOKEN, TEST_DATABASE_URL } from '../helpers/env.js';
import { Code } from '../helpers/expect-rpc.js';
import { waitFor } from '../helpers/wait.js';

const lines: Array<Record<string, unknown>> = [];
let tdb: TestDatabase;
let app: App;
let clients: ApiClient[];

async function admin(sql: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql, values);
  } finally {
    await client.end();
  }
}

const dbName = () => new URL(tdb.url).pathname.slice(1);

const until = (what: string, condition: () => boolean) => waitFor(condition, what);

beforeAll(async () => {
  tdb = await createTestDatabase({ tenancy: 'row' });
  const logger = createLogger('info', { write: (l) => lines.push(JSON.parse(l)), repeatIntervalMs: 300 });
  app = await startApp(tdb.config(), logger);
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  clients = [connectClient(app.port, headers), grpcClient(app.port, headers)];
});
afterAll(async () => {
  for (const c of clients ?? []) c.close();
  await admin(`alter database ${pg.escapeIdentifier(dbName())} with allow_connections true`).catch(() => {});
  await app?.stop();
  await tdb?.drop();
});

describe('during a database outage', () => {
  it('each failed call is UNAVAILABLE with its call line; the repeated error is one line and then a count', async () => {
    await clients[0]!.TenantService.listTenants({});
    await admin(`alter database ${pg.escapeIdentifier(dbName())} with allow_connections false`);
    await admin(
      'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [dbName()],
    );
    const before = lines.length;

    const calls = 40;
    const outcomes = await Promise.all(
      Array.from({ length: calls }, (_, i) =>
        clients[i % 2]!.TenantService.listTenants({}, { headers: { 'x-request-id': `outage-${i}` } }).then(
          () => 'OK',
          (err: unknown) => {
            const e = ConnectError.from(err);
            return `${Code[e.code]}: ${e.rawMessage}`;
          },
        ),
      ),
    );
    for (const o of outcomes) expect(o).toMatch(/^Unavailable: .*database is unavailable/);

    const during = () => lines.slice(before);
    await until(
      'every call has its line',
      () => during().filter((l) => l.msg === 'call' && String(l.requestId).startsWith('outage-')).length === calls,
    );
    for (const l of during().filter((x) => x.msg === 'call'))
      expect(l).toMatchObject({ level: 'info', code: 'Unavailable' });

    const errorLines = () => during().filter((l) => l.level === 'error' || l.level === 'warn');
    const full = errorLines().filter((l) => l.msg === 'database error');
    expect(full).toHaveLength(1);
    expect((full[0]!.err as { stack?: string }).stack).toMatch(/\n\s+at /);
    // Every failure is accounted for: the full line plus the counts of the summary lines.
    const counted = () =>
      errorLines()
        .filter((l) => String(l.msg).startsWith('database error'))
        .reduce((n, l) => n + (typeof l.repeated === 'number' ? l.repeated : 1), 0);
    await until('the repeats are summarized', () => counted() === calls);
    expect(errorLines().filter((l) => typeof l.repeated === 'number').length).toBeGreaterThan(0);
    // Far fewer error lines than failed calls, whatever else (pool warnings) was said.
    expect(errorLines().length).toBeLessThan(10);

    await admin(`alter database ${pg.escapeIdentifier(dbName())} with allow_connections true`);
    // Served again: the call succeeds.
    await clients[1]!.TenantService.listTenants({});
  });
});
