/**
 * What only a PostgreSQL server can show (this file is not run against PGlite): deadlines
 * enforced by statement_timeout, and recovery after the server drops the pool's connections.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTenantDatabase } from '../helpers/database.js';
import { TEST_DATABASE_URL } from '../helpers/env.js';

const t = useTenantDatabase();

const countWorkers = () => t.countWorkers();

describe('deadlines', () => {
  // PGlite runs single-threaded in WebAssembly and never fires statement_timeout (README,
  // "Embedded mode"); the deadline is enforced on PostgreSQL.
  it('bounds statements by the deadline (statement_timeout, set locally)', async () => {
    const started = Date.now();
    const err = await t.open.db
      .withTenantTransaction(t.tenantId, (tx) => tx.many('select pg_sleep(5)'), { timeoutMs: 200 })
      .catch((e) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
    expect(Date.now() - started).toBeLessThan(4_000);
    // The timeout was transaction-local: the next transaction runs with the default.
    const setting = await t.open.db.withTransaction((tx) =>
      tx.one<{ v: string }>(`select current_setting('statement_timeout') as v`),
    );
    expect(setting.v).not.toBe('200ms');
  });

  it('bounds the statement of a one-statement transaction too (its setting travels in the same pipeline)', async () => {
    // PostgreSQL arms statement_timeout per protocol message (13+), so the statement after the
    // settings in one pipeline runs under the new value.
    const started = Date.now();
    const err = await t.open.db
      .withTenantTransaction(t.tenantId, (tx) => tx.many('select pg_sleep(5)'), { timeoutMs: 200, oneStatement: true })
      .catch((e) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});

describe('connections dropped by PostgreSQL', () => {
  it('runs a one-statement read cut short by a lost connection once more, not up to the attempt limit', async () => {
    let calls = 0;
    const err = await t.open.db
      .withTransaction(
        async (tx) => {
          calls++;
          await tx.many('select pg_terminate_backend(pg_backend_pid())');
        },
        { oneStatement: true, asOwner: true },
      )
      .catch((e) => e);
    expect(err).toMatchObject({ kind: 'connection' });
    expect(calls).toBe(2);
  });

  it('recovers on the next call after every pooled connection was terminated', async () => {
    const workers = await countWorkers();
    // Fill the pool with idle connections.
    await Promise.all(
      Array.from({ length: 4 }, () => t.open.db.withTransaction((tx) => tx.many('select pg_sleep(0.05)'))),
    );
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const killed = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'task-api'`,
        [new URL(t.tdb.url).pathname.slice(1)],
      );
      expect(killed.rowCount).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    // Immediately, before the pool may have noticed: the call must still succeed.
    expect(await countWorkers()).toBe(workers);
    const results = await Promise.all(Array.from({ length: 6 }, () => countWorkers()));
    expect(results).toEqual(Array(6).fill(workers));
  });
});

describe('named prepared statements', () => {
  it('names a text from its second use, and never more than 256 texts per process', async () => {
    const named = () =>
      t.open.db.withTransaction((tx) => tx.one<{ n: number }>('select count(*)::int as n from pg_prepared_statements'));
    // Used once: not named.
    await t.open.db.withTransaction((tx) => tx.many('select $1::int as once', [1]));
    const once = await t.open.db.withTransaction((tx) =>
      tx.one<{ n: number }>(`select count(*)::int as n from pg_prepared_statements where statement like '%as once%'`),
    );
    expect(once.n).toBe(0);
    // 300 distinct texts, each used twice, one after the other (so on the pool's same connection):
    // the cap names 256 of them at most, whatever came before.
    for (let i = 0; i < 300; i++) {
      for (let use = 0; use < 2; use++)
        await t.open.db.withTransaction((tx) => tx.many(`select $1::int + ${i} as x`, [use]));
    }
    const { n } = await named();
    expect(n).toBeGreaterThan(200);
    expect(n).toBeLessThanOrEqual(256);
  });
});

describe('a call that gives up', () => {
  it('never has its late cancel request cancel the next statement on the same connection', async () => {
    let innocentFailures = 0;
    for (let i = 0; i < 60; i++) {
      const giveUp = new AbortController();
      // The statement may end just before the cancel request reaches the server process.
      setTimeout(() => giveUp.abort(new Error('gave up')), 2 + (i % 5));
      await t.open.db
        .withTenantTransaction(t.tenantId, (tx) => tx.many('select pg_sleep(0.003)'), { signal: giveUp.signal })
        .catch(() => {});
      // The next transaction, most likely on the same pooled connection, must not be cancelled.
      await t.open.db
        .withTenantTransaction(t.tenantId, (tx) => tx.many('select pg_sleep(0.02)'))
        .catch((err) => {
          if ((err as { kind?: string }).kind === 'timeout') innocentFailures++;
          else throw err;
        });
    }
    expect(innocentFailures).toBe(0);
  });
});
