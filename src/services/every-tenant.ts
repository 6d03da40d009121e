import type { Database } from '../db/index.js';
import type { Tenant } from '../domain.js';
import { listTenants } from '../repositories/tenants.js';

const TENANTS_PER_PAGE = 500;

/**
 * Every tenant in id order, for the background passes over all of them (lease reaper,
 * idempotency janitor): a page per short read-only transaction, so that no transaction stays
 * open while the caller works on a tenant.
 */
export async function* everyTenant(db: Database): AsyncGenerator<Tenant> {
  for (let afterId = 0n; ; ) {
    const page = await db.withTransaction((tx) => listTenants(tx, { afterId, limit: TENANTS_PER_PAGE }), {
      readOnly: true,
    });
    yield* page;
    if (page.length < TENANTS_PER_PAGE) return;
    afterId = page[page.length - 1]!.id;
  }
}
