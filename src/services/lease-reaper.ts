/**
 * Notices leases that ran out while nobody claimed: each becomes expired (its task claimable
 * again) with a `lease_expired` event, or — when the task used up `max_attempts` — the task is
 * blocked, a dead letter a human sees without waiting for the next claim. Claims notice expired
 * leases of their tenant too, so this only makes that prompt.
 *
 * Row-level security binds even the table owner, so the work runs tenant by tenant. To stay
 * cheap with many tenants it visits only the tenants this process handed leases to (a tenant
 * is forgotten once it has no running lease), plus, rarely, every tenant (leases of a replica
 * that went away). Every replica may run it: expiring what another replica already expired is a
 * no-op, and locked rows are skipped.
 */
import type { Database } from '../db/index.js';
import type { Logger } from '../logger.js';
import { hasRunningLeases } from '../repositories/claims.js';
import { everyTenant } from './every-tenant.js';
import { EXPIRE_BATCH, expireLeases } from './task-leases.js';

export class LeaseReaper {
  private readonly watched = new Set<bigint>();

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** A tenant was handed a lease: watch it until it has none running. */
  watch(tenantId: bigint): void {
    this.watched.add(tenantId);
  }

  /** Expires the leases of one tenant that ran out; returns how many. */
  async reapTenant(tenantId: bigint): Promise<number> {
    let total = 0;
    for (;;) {
      const { expired, running } = await this.db.withTenantTransaction(tenantId, async (tx) => ({
        expired: await expireLeases(tx),
        running: await hasRunningLeases(tx),
      }));
      total += expired;
      if (!running) this.watched.delete(tenantId);
      // A full batch may have left more behind.
      if (expired < EXPIRE_BATCH) return total;
    }
  }

  /** One pass over the watched tenants. */
  async reapWatched(): Promise<number> {
    let total = 0;
    for (const tenantId of [...this.watched]) total += await this.reapTenant(tenantId);
    if (total > 0) this.logger.info('expired leases noticed', { expired: total });
    return total;
  }

  /** One pass over every tenant. */
  async reapAll(): Promise<number> {
    let total = 0;
    for await (const tenant of everyTenant(this.db)) total += await this.reapTenant(tenant.id);
    if (total > 0) this.logger.info('expired leases noticed', { expired: total });
    return total;
  }

  /**
   * Reaps the watched tenants every `intervalMs` and every tenant every `fullIntervalMs`, until
   * the returned function is called. Failures are logged; a pass never overlaps the previous one.
   */
  start(intervalMs: number, fullIntervalMs: number): () => void {
    let running = false;
    const run = (pass: () => Promise<number>) => () => {
      if (running) return;
      running = true;
      pass()
        .catch((err) => this.logger.warn('expiring leases failed', { err }))
        .finally(() => {
          running = false;
        });
    };
    const timers = [
      setInterval(
        run(() => this.reapWatched()),
        intervalMs,
      ),
      setInterval(
        run(() => this.reapAll()),
        fullIntervalMs,
      ),
    ];
    for (const t of timers) t.unref();
    return () => {
      for (const t of timers) clearInterval(t);
    };
  }
}
