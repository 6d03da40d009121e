/**
 * Fair use of the pool between tenants: no tenant's transactions hold more than `maxPerTenant`
 * pooled connections at once. A tenant's further transactions wait in its own FIFO queue —
 * bounded by their deadline, their cancellation and `maxWaitMs` — while other tenants go on
 * being served. Without it, ten calls of one tenant waiting on a row lock held all ten
 * connections, and every other tenant's calls failed after the pool's connection timeout.
 *
 * Slots are taken before `pool.connect()` and given back with the client. System transactions
 * (no tenant) are not limited.
 */
import { AppError } from '../errors.js';
import { type LimiterOutcome, observeTenantWait } from '../metrics.js';
import { TransactionCancelledError } from './database.js';
import { DbError } from './errors.js';

interface Waiter {
  grant(): void;
}

interface TenantSlots {
  active: number;
  readonly queue: Waiter[];
}

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void;

export interface TenantLimiterStats {
  /** Slots held, over all tenants. */
  readonly active: number;
  /** Transactions waiting for their tenant's slot. */
  readonly waiting: number;
  /** Tenants using their whole share right now. */
  readonly tenantsAtLimit: number;
}

export class TenantLimiter {
  private readonly tenants = new Map<string, TenantSlots>();

  constructor(
    readonly maxPerTenant: number,
    /** The longest a transaction waits for its tenant's slot (the pool's connection timeout). */
    readonly maxWaitMs: number,
  ) {}

  /**
   * A slot of the tenant's share, as soon as one is free (first come, first served).
   * @throws TransactionCancelledError when `signal` fires first; DbError timeout when the call's
   *   deadline (`timeoutMs`) passes first; AppError resource_exhausted after `maxWaitMs`.
   */
  acquire(tenant: string, signal?: AbortSignal, timeoutMs?: number): Promise<Release> {
    let slots = this.tenants.get(tenant);
    if (!slots) {
      slots = { active: 0, queue: [] };
      this.tenants.set(tenant, slots);
    }
    if (slots.active < this.maxPerTenant) {
      slots.active++;
      return Promise.resolve(this.releaser(tenant, slots));
    }
    if (signal?.aborted) return Promise.reject(new TransactionCancelledError(signal.reason));
    const queued = slots;
    const started = performance.now();
    return new Promise<Release>((resolve, reject) => {
      const settle = (outcome: LimiterOutcome) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        observeTenantWait(outcome, (performance.now() - started) / 1000);
      };
      const fail = (outcome: LimiterOutcome, err: Error) => {
        const at = queued.queue.indexOf(waiter);
        if (at >= 0) queued.queue.splice(at, 1);
        settle(outcome);
        reject(err);
      };
      const waiter: Waiter = {
        grant: () => {
          settle('acquired');
          resolve(this.releaser(tenant, queued));
        },
      };
      const onAbort = () => fail('cancelled', new TransactionCancelledError(signal?.reason));
      const byDeadline = timeoutMs !== undefined && timeoutMs <= this.maxWaitMs;
      const timer = setTimeout(
        () =>
          byDeadline
            ? fail(
                'deadline',
                new DbError('timeout', undefined, undefined, 'no database connection before the deadline'),
              )
            : fail(
                'busy',
                new AppError(
                  'resource_exhausted',
                  `this tenant's share of database connections (${this.maxPerTenant}) stayed busy for ${this.maxWaitMs} ms; retry later`,
                ),
              ),
        byDeadline ? timeoutMs : this.maxWaitMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      queued.queue.push(waiter);
    });
  }

  stats(): TenantLimiterStats {
    let active = 0;
    let waiting = 0;
    let tenantsAtLimit = 0;
    for (const slots of this.tenants.values()) {
      active += slots.active;
      waiting += slots.queue.length;
      if (slots.active >= this.maxPerTenant) tenantsAtLimit++;
    }
    return { active, waiting, tenantsAtLimit };
  }

  private releaser(tenant: string, slots: TenantSlots): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the next waiter of the same tenant, so a newcomer can never
      // overtake the queue.
      const next = slots.queue.shift();
      if (next) {
        next.grant();
        return;
      }
      slots.active--;
      if (slots.active === 0 && this.tenants.get(tenant) === slots) this.tenants.delete(tenant);
    };
  }
}
