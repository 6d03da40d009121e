import { randomBytes } from 'node:crypto';
import type { Database, Migrator, Tx } from '../db/index.js';
import type { Tenant } from '../domain.js';
import { notFound } from '../errors.js';
import type { Logger } from '../logger.js';
import * as apiKeys from '../repositories/api-keys.js';
import * as tenants from '../repositories/tenants.js';
import { explainDbError } from './constraint-errors.js';
import type { Page, PageTokens } from './page-token.js';
import { sha256 } from './sha256.js';
import { inTenant } from './tenant-transaction.js';

/** API key secrets: `tk_<tenant id>_<43 random characters>`. The tenant id lets a key of another tenant be told apart. */
export function hashSecret(secret: string): Buffer {
  return sha256(secret);
}

export function parseApiKey(secret: string): { tenantId: bigint } | null {
  const m = /^tk_([1-9]\d{0,18})_[A-Za-z0-9_-]{43}$/.exec(secret);
  // An id beyond bigint is no tenant's: it must be "invalid API key", not a database error.
  return m && BigInt(m[1]!) <= 9223372036854775807n ? { tenantId: BigInt(m[1]!) } : null;
}

export class TenantService {
  constructor(
    private readonly db: Database,
    private readonly migrator: Migrator,
    private readonly mode: 'row' | 'schema',
    private readonly logger: Logger,
    private readonly pageTokens: PageTokens,
  ) {}

  /**
   * Registers a tenant; in schema mode also creates and migrates its schema (and removes the
   * tenant again if that fails, so that no half-made tenant remains).
   * @throws AppError already_exists (subdomain).
   */
  async create(input: { name: string; subdomain: string }): Promise<Tenant> {
    const tenant = await this.system((tx) => tenants.insertTenant(tx, input));
    if (this.mode === 'schema') {
      try {
        await this.migrator.migrateTenant(tenant.id);
      } catch (err) {
        this.logger.error('migrating the new tenant schema failed; removing the tenant', { tenantId: tenant.id, err });
        await this.migrator.dropTenantSchema(tenant.id);
        await this.system((tx) => tenants.deleteTenant(tx, tenant.id));
        throw err;
      }
    }
    return tenant;
  }

  /** @throws AppError not_found. */
  async get(id: bigint): Promise<Tenant> {
    const tenant = await this.system((tx) => tenants.findTenantById(tx, id));
    if (!tenant) throw notFound('tenant');
    return tenant;
  }

  list(input: { pageSize: number; pageToken: string }): Promise<Page<Tenant>> {
    const paging = this.pageTokens.byId({ list: 'tenants' }, input);
    return this.system(async (tx) => paging.page(await tenants.listTenants(tx, paging)));
  }

  /**
   * A new key for the tenant, optionally bound to one of its workers. The secret is returned
   * here and never again; only its SHA-256 is stored.
   * @throws AppError not_found (tenant), failed_precondition (worker_id).
   */
  async createApiKey(input: {
    tenantId: bigint;
    workerId: bigint | null;
    name: string;
  }): Promise<{ id: bigint; secret: string }> {
    await this.get(input.tenantId);
    const secret = `tk_${input.tenantId}_${randomBytes(32).toString('base64url')}`;
    const id = await inTenant(this.db, { tenantId: input.tenantId }, (tx) =>
      apiKeys.insertApiKey(tx, { name: input.name, workerId: input.workerId, secretHash: hashSecret(secret) }),
    );
    return { id, secret };
  }

  /** @throws AppError not_found (tenant or key). */
  async revokeApiKey(input: { tenantId: bigint; apiKeyId: bigint }): Promise<void> {
    await this.get(input.tenantId);
    const found = await inTenant(this.db, { tenantId: input.tenantId }, (tx) =>
      apiKeys.revokeApiKey(tx, input.apiKeyId),
    );
    if (!found) throw notFound('api key');
  }

  private async system<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await this.db.withTransaction(fn);
    } catch (err) {
      throw explainDbError(err);
    }
  }
}
