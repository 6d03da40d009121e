import { describe, expect, it } from 'vitest';
import { TransactionCancelledError } from '../../src/db/database.js';
import { DbError } from '../../src/db/errors.js';
import { type Release, TenantLimiter } from '../../src/db/tenant-limiter.js';
import { AppError } from '../../src/errors.js';

const settledWithin = async <T>(p: Promise<T>): Promise<'pending' | 'settled'> =>
  Promise.race([
    p.then(
      () => 'settled' as const,
      () => 'settled' as const,
    ),
    new Promise<'pending'>((r) => setImmediate(() => r('pending'))),
  ]);

describe('TenantLimiter', () => {
  it('lends up to the share at once; the next waits until one is given back', async () => {
    const limiter = new TenantLimiter(2, 10_000);
    const a1 = await limiter.acquire('a');
    await limiter.acquire('a');
    const a3 = limiter.acquire('a');
    expect(await settledWithin(a3)).toBe('pending');
    expect(limiter.stats()).toEqual({ active: 2, waiting: 1, tenantsAtLimit: 1 });
    a1();
    a1(); // a second release of the same slot changes nothing
    await a3;
    expect(limiter.stats()).toEqual({ active: 2, waiting: 0, tenantsAtLimit: 1 });
  });

  it('other tenants are not held up by a tenant at its share', async () => {
    const limiter = new TenantLimiter(1, 10_000);
    await limiter.acquire('a');
    const queued = limiter.acquire('a');
    expect(await settledWithin(limiter.acquire('b'))).toBe('settled');
    expect(await settledWithin(queued)).toBe('pending');
  });

  it('serves a tenant queue first come, first served', async () => {
    const limiter = new TenantLimiter(1, 10_000);
    const first = await limiter.acquire('a');
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) =>
      limiter.acquire('a').then((release) => {
        order.push(n);
        return release;
      }),
    );
    let release: Release = first;
    for (const w of waiting) {
      release();
      release = await w;
    }
    release();
    expect(order).toEqual([1, 2, 3]);
    expect(limiter.stats()).toEqual({ active: 0, waiting: 0, tenantsAtLimit: 0 });
  });

  it('a waiter gives up with RESOURCE_EXHAUSTED after the wait limit, and leaves the queue', async () => {
    const limiter = new TenantLimiter(1, 50);
    const held = await limiter.acquire('a');
    const err = await limiter.acquire('a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('resource_exhausted');
    expect((err as AppError).message).toMatch(/share of database connections \(1\) stayed busy/);
    expect(limiter.stats().waiting).toBe(0);
    held();
    expect(limiter.stats().active).toBe(0);
  });

  it('a deadline shorter than the wait limit ends the wait as a deadline (DbError timeout)', async () => {
    const limiter = new TenantLimiter(1, 10_000);
    await limiter.acquire('a');
    const err = await limiter.acquire('a', undefined, 20).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DbError);
    expect((err as DbError).kind).toBe('timeout');
  });

  it('a cancelled waiter leaves the queue; the slot goes to the next one', async () => {
    const limiter = new TenantLimiter(1, 10_000);
    const held = await limiter.acquire('a');
    const controller = new AbortController();
    const cancelled = limiter.acquire('a', controller.signal).catch((e: unknown) => e);
    const next = limiter.acquire('a');
    controller.abort('client went away');
    const err = await cancelled;
    expect(err).toBeInstanceOf(TransactionCancelledError);
    expect((err as Error).cause).toBe('client went away');
    expect(limiter.stats().waiting).toBe(1);
    held();
    await next;
    // An already-aborted signal does not even queue.
    const aborted = AbortSignal.abort('gone');
    await expect(limiter.acquire('a', aborted)).rejects.toBeInstanceOf(TransactionCancelledError);
    expect(limiter.stats().waiting).toBe(0);
  });
});
