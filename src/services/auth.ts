/**
 * Who may call: the admin token for TenantService, an API key of the tenant for everything
 * else (SPEC §5). Everything here is decided before any tenant data is read, and nothing here
 * knows about HTTP or gRPC: the RPC layer hands in header values.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/index.js';
import { AppError, invalidArgument, notFound } from '../errors.js';
import { findApiKeyByHash } from '../repositories/api-keys.js';
import { findTenantById, findTenantBySubdomain } from '../repositories/tenants.js';
import { sha256 } from './sha256.js';
import { hashSecret, parseApiKey } from './tenants.js';

export interface CallHeaders {
  /** `x-tenant-id` */
  readonly tenantId: string | null;
  /** `:authority` or `host` */
  readonly host: string | null;
  /** `authorization` */
  readonly authorization: string | null;
}

export interface Principal {
  readonly tenantId: bigint;
  /** SHA-256 of the API key, verified by the first statement of the call's transaction. */
  readonly apiKeyHash: Buffer;
}

const unauthenticated = (message: string) => new AppError('unauthenticated', message);

/** The token of `Authorization: Bearer <token>`, or null. */
function bearer(authorization: string | null): string | null {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return m ? m[1]! : null;
}

/** `acme.tasks.example.com` → `acme`; `acme.localhost` → `acme`; bare hosts and IPs → null. */
export function subdomainOf(host: string | null): string | null {
  if (!host) return null;
  const name = host.trim().toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  if (name.startsWith('[') || /^[\d.]+$/.test(name)) return null;
  const labels = name.split('.');
  if (labels.length >= 3 || (labels.length === 2 && labels[1] === 'localhost')) return labels[0] || null;
  return null;
}

export class AuthService {
  /** Tenants never change id or subdomain, so positive lookups are cached briefly. */
  private readonly tenantCache = new Map<string, { id: bigint; until: number }>();

  constructor(
    private readonly db: Database,
    private readonly adminToken: string | undefined,
    private readonly cacheTtlMs = 30_000,
  ) {}

  /**
   * @throws AppError unauthenticated when the admin token is missing, wrong, or not configured.
   */
  requireAdmin(authorization: string | null): void {
    if (this.adminToken === undefined) {
      throw unauthenticated('TenantService is disabled: the server has no ADMIN_TOKEN');
    }
    const token = bearer(authorization);
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    if (token === null || !timingSafeEqual(sha256(token), sha256(this.adminToken))) {
      throw unauthenticated('the admin token is missing or wrong');
    }
  }

  /**
   * The tenant a call is for and the API key that authorizes it. What can be decided without
   * the database is decided here; whether a key of the call's own tenant exists and is not
   * revoked is checked by the first statement of the call's transaction (services/tenant-transaction.ts),
   * which saves a transaction per call. A key of another tenant is looked up here, in its own
   * tenant, to tell PERMISSION_DENIED (a real key) from UNAUTHENTICATED.
   * @throws AppError unauthenticated (no tenant, missing/invalid/revoked key), not_found (unknown
   *   tenant), permission_denied (a key of another tenant), invalid_argument (malformed x-tenant-id).
   */
  async authenticate(headers: CallHeaders, signal?: AbortSignal): Promise<Principal> {
    const tenantId = await this.resolveTenant(headers);
    const secret = bearer(headers.authorization);
    if (secret === null) throw unauthenticated('missing API key: send authorization: Bearer <key>');
    const parsed = parseApiKey(secret);
    if (parsed === null) throw unauthenticated('invalid API key');
    const apiKeyHash = hashSecret(secret);
    if (parsed.tenantId !== tenantId) {
      // Its tenant must exist: in schema mode a missing tenant has no tables to look in.
      const key = (await this.tenantExists(parsed.tenantId))
        ? await this.findKey(parsed.tenantId, apiKeyHash, signal)
        : undefined;
      if (key === undefined) throw unauthenticated('invalid API key');
      if (key.revoked) throw unauthenticated('the API key was revoked');
      throw new AppError('permission_denied', 'the API key belongs to another tenant');
    }
    return { tenantId, apiKeyHash };
  }

  private async findKey(tenantId: bigint, apiKeyHash: Buffer, signal?: AbortSignal) {
    return this.db.withTenantTransaction(tenantId, (tx) => findApiKeyByHash(tx, apiKeyHash), {
      readOnly: true,
      signal,
    });
  }

  /** @throws AppError not_found. */
  private tenantById(id: bigint): Promise<bigint> {
    return this.cached(
      `id:${id}`,
      async () => (await this.db.withTransaction((tx) => findTenantById(tx, id), { readOnly: true }))?.id,
    );
  }

  private async tenantExists(id: bigint): Promise<boolean> {
    try {
      await this.tenantById(id);
      return true;
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') return false;
      throw err;
    }
  }

  private async cached(cacheKey: string, lookup: () => Promise<bigint | undefined>): Promise<bigint> {
    const hit = this.tenantCache.get(cacheKey);
    if (hit && hit.until > Date.now()) return hit.id;
    const id = await lookup();
    if (id === undefined) throw notFound('tenant');
    if (this.tenantCache.size > 10_000) this.tenantCache.clear();
    this.tenantCache.set(cacheKey, { id, until: Date.now() + this.cacheTtlMs });
    return id;
  }

  private async resolveTenant(headers: CallHeaders): Promise<bigint> {
    const raw = headers.tenantId?.trim() ?? '';
    if (raw !== '') {
      if (!/^[1-9]\d{0,18}$/.test(raw) || BigInt(raw) > 9223372036854775807n) {
        throw invalidArgument('x-tenant-id', 'must be a positive integer tenant id');
      }
      return this.tenantById(BigInt(raw));
    }
    const subdomain = subdomainOf(headers.host);
    if (subdomain === null) {
      throw unauthenticated('no tenant: send x-tenant-id, or call <tenant subdomain>.<host>');
    }
    return this.cached(
      `sub:${subdomain}`,
      async () => (await this.db.withTransaction((tx) => findTenantBySubdomain(tx, subdomain), { readOnly: true }))?.id,
    );
  }
}
