/**
 * Idempotency records are kept for a while (IDEMPOTENCY_TTL_SECONDS, a day by default), long
 * enough for any sane retry, and then deleted so that the table does not grow forever. Row-level
 * security binds even the table owner, so the purge runs tenant by tenant, each in its own short
 * transaction. Every replica may run it: deleting what another replica already deleted is a no-op.
 */
import type { Database } from '../db/index.js';
import type { Logger } from '../logger.js';
import { deleteExpiredRecords } from '../repositories/idempotency.js';
import { everyTenant } from './every-tenant.js';

export class IdempotencyJanitor {
  constructor(
    private readonly db: Database,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {}

  /** Deletes every expired record of every tenant; returns how many. */
  async purge(): Promise<number> {
    let deleted = 0;
    for await (const tenant of everyTenant(this.db)) {
      deleted += await this.db.withTenantTransaction(tenant.id, (tx) => deleteExpiredRecords(tx, this.ttlSeconds));
    }
    if (deleted > 0) this.logger.info('expired idempotency records deleted', { deleted });
    return deleted;
  }

  /** Purges every `intervalMs` until the returned function is called. Failures are logged. */
  start(intervalMs: number): () => void {
    const timer = setInterval(() => {
      this.purge().catch((err) => this.logger.warn('purging idempotency records failed', { err }));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
