/**
 * Migrations with node-pg-migrate, run over a client of the service's own pool (in embedded mode
 * that pool has the only connection pglite-socket can serve safely).
 *
 * Two sets of files: `migrations/shared` (the tenant registry) and `migrations/tenant` (every
 * tenant-owned table). In `row` mode both run in `public` as one ordered list; in `schema` mode
 * the shared set runs in `public` and the tenant set once in each tenant's schema.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Database } from './database.js';

export const MIGRATIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../migrations');
const SHARED_DIR = join(MIGRATIONS_DIR, 'shared');
const TENANT_DIR = join(MIGRATIONS_DIR, 'tenant');
const MIGRATIONS_TABLE = 'pgmigrations';

export type TenancyMode = 'row' | 'schema';

/** The PostgreSQL schema of a tenant in schema mode (an identifier; quote it with quoteIdent). */
export function tenantSchema(tenantId: bigint): string {
  return `tenant_${tenantId.toString()}`;
}

export const quoteIdent = (name: string): string => pg.escapeIdentifier(name);

function migrationNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.(sql|js|ts)$/.test(f))
    .map((f) => f.replace(/\.(sql|js|ts)$/, ''))
    .sort();
}

interface RunOptions {
  readonly direction: 'up' | 'down';
  /** How many migrations; Infinity means all of them (node-pg-migrate's `down 0`). */
  readonly count?: number;
}

export class Migrator {
  constructor(
    private readonly db: Database,
    private readonly mode: TenancyMode,
    private readonly logger: Logger,
  ) {}

  /**
   * Applies (or reverts) migrations. Concurrent runs serialize on node-pg-migrate's advisory
   * lock: the second waits for the first and then finds nothing left to do.
   * @throws Error from node-pg-migrate when a migration fails (its transaction is rolled back).
   */
  async run(options: RunOptions): Promise<string[]> {
    if (this.mode === 'row') {
      return this.runSet([`${SHARED_DIR}/*.sql`, `${TENANT_DIR}/*.sql`], 'public', options);
    }
    const applied: string[] = [];
    if (options.direction === 'up') {
      applied.push(...(await this.runSet([`${SHARED_DIR}/*.sql`], 'public', options)));
      for (const id of await this.tenantIds()) applied.push(...(await this.migrateTenant(id, options)));
    } else {
      // Down steps through the tenant set in every tenant schema (their tables point at
      // public.tenants); the shared set is reverted only by `down all`, once no tenant table
      // is left to depend on it.
      for (const id of await this.tenantIds()) applied.push(...(await this.migrateTenant(id, options)));
      if (options.count === Infinity) applied.push(...(await this.runSet([`${SHARED_DIR}/*.sql`], 'public', options)));
    }
    return applied;
  }

  /** Creates a tenant's schema (schema mode) and applies the tenant migrations to it. */
  async migrateTenant(tenantId: bigint, options: RunOptions = { direction: 'up' }): Promise<string[]> {
    const names = await this.runSet([`${TENANT_DIR}/*.sql`], tenantSchema(tenantId), options);
    return names.map((n) => `${tenantSchema(tenantId)}.${n}`);
  }

  /** Drops a tenant's schema and everything in it (schema mode; undoes migrateTenant). */
  async dropTenantSchema(tenantId: bigint): Promise<void> {
    await this.db.withClient((client) =>
      client.query(`drop schema if exists ${quoteIdent(tenantSchema(tenantId))} cascade`),
    );
  }

  /** Applied and pending migrations per schema, like `alembic current` plus what is left. */
  async status(): Promise<{ schema: string; applied: string[]; pending: string[] }[]> {
    const shared = migrationNames(SHARED_DIR);
    const tenant = migrationNames(TENANT_DIR);
    // One list in row mode, in the order node-pg-migrate runs it (by timestamp prefix).
    if (this.mode === 'row') return [await this.statusOf('public', [...shared, ...tenant].sort())];
    const result = [await this.statusOf('public', shared)];
    for (const id of await this.tenantIds()) result.push(await this.statusOf(tenantSchema(id), tenant));
    return result;
  }

  private async statusOf(schema: string, all: string[]) {
    const applied = await this.db.withClient(async (client) => {
      const exists = await client.query<{ ok: boolean }>(`select to_regclass($1) is not null as ok`, [
        `${quoteIdent(schema)}.${MIGRATIONS_TABLE}`,
      ]);
      if (!exists.rows[0]?.ok) return [];
      const rows = await client.query<{ name: string }>(
        `select name from ${quoteIdent(schema)}.${MIGRATIONS_TABLE} order by run_on, id`,
      );
      return rows.rows.map((r) => r.name);
    });
    return { schema, applied, pending: all.filter((n) => !applied.includes(n)) };
  }

  private async tenantIds(): Promise<bigint[]> {
    return this.db.withClient(async (client) => {
      const exists = await client.query<{ ok: boolean }>(`select to_regclass('public.tenants') is not null as ok`);
      if (!exists.rows[0]?.ok) return [];
      const rows = await client.query<{ id: string }>('select id from public.tenants order by id');
      return rows.rows.map((r) => BigInt(r.id));
    });
  }

  private async runSet(dir: string[], schema: string, options: RunOptions): Promise<string[]> {
    const count = options.count ?? (options.direction === 'up' ? Infinity : 1);
    const done = await this.db.withClient((client) =>
      // node-pg-migrate sets search_path for the whole session (a tenant's schema in schema
      // mode): reset it so that the pooled connection does not keep pointing at that schema.
      runner({
        dbClient: client,
        dir,
        useGlob: true,
        schema,
        createSchema: schema !== 'public',
        migrationsSchema: schema,
        migrationsTable: MIGRATIONS_TABLE,
        direction: options.direction,
        count,
        checkOrder: true,
        singleTransaction: true,
        advisoryLockMode: 'wait',
        logger: {
          debug: (msg: string) => this.logger.debug(msg),
          info: (msg: string) => this.logger.debug(msg),
          warn: (msg: string) => this.logger.warn(msg),
          error: (msg: string) => this.logger.error(msg),
        },
      }).finally(() => client.query('reset search_path').catch(() => {})),
    );
    return done.map((m) => m.name);
  }
}
