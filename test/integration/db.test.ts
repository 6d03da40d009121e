/**
 * The transaction runner against a real database: commit and rollback, retries of
 * serialization failures and deadlocks, deadlines, cancellation, error classification, and
 * recovery after PostgreSQL drops the pool's connections.
 */
import { describe, expect, it } from 'vitest';
import type { Tx } from '../../src/db/index.js';
import { DbError, TransactionCancelledError } from '../../src/db/index.js';
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
