/**
 * The transaction runner against a real database: commit and rollback, retries of
 * serialization failures and deadlocks, deadlines, cancellation, error classification, and
 * recovery after PostgreSQL drops the pool's connections.
 */
import { describe, expect, it } from 'vitest';
import type { Tx } from '../../src/db/index.js';
import { DbError, TransactionCancelledError } from '../../src/db/index.js';
import { apiKeyPrologue, insertApiKey, revokeApiKey } from '../../src/repositories/api-keys.js';
import { useTenantDatabase } from '../helpers/database.js';

const t = useTenantDatabase();

const countWorkers = () => t.countWorkers();

const insertWorker = (tx: Tx, handle: string) =>
  tx.exec(`insert into workers (tenant_id, handle) values ($1::bigint, $2)`, [t.tenantId.toString(), handle]);

describe('transactions', () => {
  it('commits what the callback wrote', async () => {
    const before = await countWorkers();
    await t.open.db.withTenantTransaction(t.tenantId, (tx) => insertWorker(tx, '@commit'));
    expect(await countWorkers()).toBe(before + 1);
  });

  it('rolls back everything when the callback throws', async () => {
    const before = await countWorkers();
    await expect(
      t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
        await insertWorker(tx, '@rolledback1');
        await insertWorker(tx, '@rolledback2');
        throw new Error('fault after two writes');
      }),
    ).rejects.toThrow('fault after two writes');
    expect(await countWorkers()).toBe(before);
  });

  it('classifies a unique violation and names the constraint', async () => {
    await t.open.db.withTenantTransaction(t.tenantId, (tx) => insertWorker(tx, '@unique'));
    const err = await t.open.db.withTenantTransaction(t.tenantId, (tx) => insertWorker(tx, '@UNIQUE')).catch((e) => e);
    expect(err).toBeInstanceOf(DbError);
    expect(err).toMatchObject({ kind: 'unique', code: '23505', constraint: 'workers_handle_key' });
  });

  it('classifies check and foreign key violations', async () => {
    const check = await t.open.db
      .withTenantTransaction(t.tenantId, (tx) => insertWorker(tx, 'no-at-sign'))
      .catch((e) => e);
    expect(check).toMatchObject({ kind: 'check', constraint: 'workers_handle_format' });
    const fk = await t.open.db
      .withTenantTransaction(t.tenantId, (tx) =>
        tx.exec(`insert into projects (tenant_id, name) values ($1::bigint + 1000, 'x')`, [t.tenantId.toString()]),
      )
      .catch((e) => e);
    // Row-level security rejects the foreign tenant before the foreign key is checked.
    expect(fk).toBeInstanceOf(DbError);
    expect(['permission', 'foreign_key']).toContain(fk.kind);
  });

  it.each([
    ['40001', 'serialization'],
    ['40P01', 'deadlock'],
  ])('retries the whole callback after SQLSTATE %s (%s)', async (sqlstate) => {
    const before = await countWorkers();
    let attempts = 0;
    await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
      attempts++;
      await insertWorker(tx, `@retry${sqlstate}`);
      if (attempts < 3) {
        await tx.exec(`do $$ begin raise exception 'conflict' using errcode = '${sqlstate}'; end $$`);
      }
    });
    expect(attempts).toBe(3);
    // The failed attempts were rolled back: exactly one row.
    expect(await countWorkers()).toBe(before + 1);
  });

  it('gives up after the bounded number of attempts', async () => {
    let attempts = 0;
    const err = await t.open.db
      .withTenantTransaction(t.tenantId, async (tx) => {
        attempts++;
        await tx.exec(`do $$ begin raise exception 'conflict' using errcode = '40001'; end $$`);
      })
      .catch((e) => e);
    expect(err).toMatchObject({ kind: 'serialization' });
    expect(attempts).toBe(4);
  });

  it('rolls back and reports cancellation when the signal fires', async () => {
    const before = await countWorkers();
    const controller = new AbortController();
    const err = await t.open.db
      .withTenantTransaction(
        t.tenantId,
        async (tx) => {
          await insertWorker(tx, '@cancelled');
          controller.abort();
        },
        { signal: controller.signal },
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(TransactionCancelledError);
    expect(await countWorkers()).toBe(before);
  });
});

describe('one-statement transactions (oneStatement: BEGIN … COMMIT in one round trip)', () => {
  const hash = (n: number) => Buffer.alloc(32, n);
  const key = (n: number) => apiKeyPrologue(t.tenantId, hash(n));
  const addKey = async (n: number, revoked: boolean) => {
    await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
      const id = await insertApiKey(tx, { name: `one-statement ${n}`, workerId: null, secretHash: hash(n) });
      if (revoked) await revokeApiKey(tx, id);
    });
  };
  const read = (n: number, fn: (tx: Tx) => Promise<unknown>) =>
    t.open.db.withTenantTransaction(t.tenantId, fn, { oneStatement: true, prologue: key(n) });

  it('runs the statement in the tenant transaction the prologue opened, in one round trip', async () => {
    await addKey(1, false);
    const before = t.open.db.statements;
    const row = await read(1, (tx) =>
      tx.one<{ tenant: string; ro: string }>(
        `select current_setting('app.tenant_id') as tenant, current_setting('transaction_read_only') as ro`,
      ),
    );
    expect(row).toEqual({ tenant: t.tenantId.toString(), ro: 'on' });
    expect(t.open.db.statements - before).toBe(1);
  });

  it('runs nothing after a prologue that refuses: the refusal is the error', async () => {
    await addKey(2, true);
    // Were the statement run, its division by zero would be the error.
    const boom = (tx: Tx) => tx.many('select 1 / (select count(*) - count(*) from workers) as x');
    expect(await read(99, boom).catch((e) => e)).toMatchObject({ kind: 'refused', message: 'invalid API key' });
    expect(await read(2, boom).catch((e) => e)).toMatchObject({ kind: 'refused', message: 'the API key was revoked' });
    // The connection is clean afterwards (the aborted transaction was rolled back).
    expect(await read(1, (tx) => tx.one('select 1 as one'))).toEqual({ one: 1 });
  });

  it('checks the prologue even when the callback runs no statement, or fails before it', async () => {
    expect(await read(99, async () => 'no statement').catch((e) => e)).toMatchObject({ kind: 'refused' });
    expect(await read(1, async () => 'no statement')).toBe('no statement');
    const early = async () => {
      throw new Error('before the statement');
    };
    expect(await read(99, early).catch((e) => e)).toMatchObject({ kind: 'refused' });
    expect(await read(1, early).catch((e) => e)).toMatchObject({ message: 'before the statement' });
  });

  it('fails a callback that returns before its statement answered, and leaves the connection clean', async () => {
    const err = await read(99, async (tx) => {
      void tx.many('select 1').catch(() => {});
    }).catch((e) => e);
    expect(String(err)).toContain('ended before its statement');
    // Every pooled connection still works (none went back inside an aborted transaction).
    const rows = await Promise.all(Array.from({ length: 8 }, () => read(1, (tx) => tx.one('select 3 as three'))));
    expect(rows).toEqual(Array(8).fill({ three: 3 }));
  });

  it('refuses a second statement, and writes (the transaction is read only)', async () => {
    const second = await read(1, async (tx) => {
      await tx.many('select 1');
      await tx.many('select 2');
    }).catch((e) => e);
    expect(String(second)).toContain('second statement');
    const before = await countWorkers();
    const write = await read(1, (tx) => insertWorker(tx, '@one-statement-write')).catch((e) => e);
    expect(write).toBeInstanceOf(DbError);
    expect(await countWorkers()).toBe(before);
  });

  it('a statement error after the prologue rolls the whole transaction back', async () => {
    const err = await read(1, (tx) => tx.many(`select 'x'::int`)).catch((e) => e);
    expect(err).toMatchObject({ kind: 'invalid_input' });
    expect(await read(1, (tx) => tx.one('select 2 as two'))).toEqual({ two: 2 });
  });
});
