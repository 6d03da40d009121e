/** Two `migrate up` runs at once on a fresh PostgreSQL database (two processes' worth of pools). */
import { afterAll, expect, it } from 'vitest';
import type { OpenDatabase } from '../../src/db/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const opened: OpenDatabase[] = [];
let tdb: TestDatabase | undefined;

afterAll(async () => {
  for (const o of opened) await o.close();
  await tdb?.drop();
});

it('serializes concurrent up runs: one applies, the other waits and finds nothing to do', async () => {
  tdb = await createTestDatabase({ migrated: false, tenancy: 'row' });
  const a = await tdb.open({ TENANCY_MODE: 'row' });
  const b = await tdb.open({ TENANCY_MODE: 'row' });
  opened.push(a, b);
  const [ra, rb] = await Promise.all([a.migrator.run({ direction: 'up' }), b.migrator.run({ direction: 'up' })]);
  const all = (await a.migrator.status())[0]!;
  expect(all.pending).toEqual([]);
  // Every migration was applied exactly once, by one of the two runs.
  expect([...ra, ...rb].sort()).toEqual([...all.applied].sort());
  const count = await a.db.withClient(
    async (c) => (await c.query<{ n: string }>('select count(*) as n from pgmigrations')).rows[0]!.n,
  );
  expect(Number(count)).toBe(all.applied.length);
});
