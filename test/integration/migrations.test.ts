/** node-pg-migrate migrations on a fresh database: up, down, up again; status; schema mode. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OpenDatabase } from '../../src/db/index.js';
import { MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/** The newest tenant migration: the one a single step down reverts. */
const LAST_TENANT_MIGRATION = readdirSync(join(MIGRATIONS_DIR, 'tenant'))
  .sort()
  .at(-1)!
  .replace(/\.sql$/, '');
const TABLES = ['tenants', 'workers', 'projects', 'tasks', 'task_events', 'api_keys', 'idempotency_records'];
let tdb: TestDatabase | undefined;
let open: OpenDatabase | undefined;

afterEach(async () => {
  await open?.close();
  await tdb?.drop();
  open = tdb = undefined;
});

async function tablesIn(db: OpenDatabase, schema: string): Promise<string[]> {
  const rows = await db.db.withClient(
    async (c) =>
      (
        await c.query<{ t: string }>(
          `select table_name as t from information_schema.tables where table_schema = $1 and table_name <> 'pgmigrations'`,
          [schema],
        )
      ).rows,
  );
  return rows.map((r) => r.t).sort();
}

describe('row mode', () => {
  it('goes up, all the way down, and up again on a fresh database', async () => {
    tdb = await createTestDatabase({ migrated: false, tenancy: 'row' });
    open = await tdb.open({ TENANCY_MODE: 'row' });
    const [before] = await open.migrator.status();
    expect(before!.applied).toEqual([]);
    expect(before!.pending.length).toBeGreaterThanOrEqual(3);

    const applied = await open.migrator.run({ direction: 'up' });
    expect(applied).toEqual(before!.pending);
    expect(await tablesIn(open, 'public')).toEqual([...TABLES].sort());
    expect((await open.migrator.status())[0]).toMatchObject({ applied, pending: [] });
    // Nothing left to do.
    expect(await open.migrator.run({ direction: 'up' })).toEqual([]);

    // One step down reverts only the last migration.
    expect(await open.migrator.run({ direction: 'down' })).toEqual([applied.at(-1)]);
    expect((await open.migrator.status())[0]!.pending).toEqual([applied.at(-1)]);

    const reverted = await open.migrator.run({ direction: 'down', count: Infinity });
    expect(reverted).toEqual(applied.slice(0, -1).reverse());
    expect(await tablesIn(open, 'public')).toEqual([]);

    expect(await open.migrator.run({ direction: 'up' })).toEqual(applied);
    expect(await tablesIn(open, 'public')).toEqual([...TABLES].sort());
  });
});

describe('schema mode', () => {
  it("keeps tenant tables in each tenant's schema and migrates every schema", async () => {
    tdb = await createTestDatabase({ migrated: false, tenancy: 'schema' });
    open = await tdb.open({ TENANCY_MODE: 'schema' });
    await open.migrator.run({ direction: 'up' });
    expect(await tablesIn(open, 'public')).toEqual(['tenants']);

    const ids = await open.db.withTransaction(async (tx) =>
      tx.many<{ id: string }>(`insert into tenants (name, subdomain) values ('A', 'a'), ('B', 'b') returning id`),
    );
    for (const { id } of ids) await open.migrator.migrateTenant(BigInt(id));
    for (const { id } of ids) {
      expect(await tablesIn(open, `tenant_${id}`)).toEqual(TABLES.filter((t) => t !== 'tenants').sort());
    }
    const status = await open.migrator.status();
    expect(status.map((s) => s.schema)).toEqual(['public', ...ids.map((r) => `tenant_${r.id}`)]);
    expect(status.every((s) => s.pending.length === 0)).toBe(true);

    // One step down: the last tenant migration in every tenant schema; the shared set stays.
    const stepped = await open.migrator.run({ direction: 'down' });
    expect(stepped).toEqual(ids.map((r) => `tenant_${r.id}.${LAST_TENANT_MIGRATION}`));
    const afterStep = await open.migrator.status();
    expect(afterStep[0]!.pending).toEqual([]);
    for (const s of afterStep.slice(1)) expect(s.pending).toEqual([LAST_TENANT_MIGRATION]);
    expect(await open.migrator.run({ direction: 'up' })).toEqual(stepped);

    // Down all reverts every tenant schema, then the shared one.
    await open.migrator.run({ direction: 'down', count: Infinity });
    for (const { id } of ids) expect(await tablesIn(open, `tenant_${id}`)).toEqual([]);
    expect(await tablesIn(open, 'public')).toEqual([]);
  });
});
