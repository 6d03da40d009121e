/**
 * Entities read as one JSON array per row (src/repositories/sql.ts) against the real database:
 * every kind of field comes back exactly as stored, timestamps included at the edges where a
 * float conversion would slip by a millisecond.
 */
import { describe, expect, it } from 'vitest';
import { TASKS, WORKERS } from '../../src/repositories/rows.js';
import { useTenantDatabase } from '../helpers/database.js';

const t = useTenantDatabase();

/** Each timestamptz literal stored as a task's due_date, read back through the row and as text. */
function roundTrip(literals: string[]): Promise<{ viaRow: Date | null; viaText: Date }[]> {
  return t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
    const tenant = t.tenantId.toString();
    const worker = await tx.one<{ id: string }>(
      `insert into workers (tenant_id, handle) values ($1::bigint, '@rows') returning id::text`,
      [tenant],
    );
    const project = await tx.one<{ id: string }>(
      `insert into projects (tenant_id, name) values ($1::bigint, 'rows') returning id::text`,
      [tenant],
    );
    const out: { viaRow: Date | null; viaText: Date }[] = [];
    for (const literal of literals) {
      const row = await tx.one<Record<string, unknown> & { due_text: Date }>(
        `insert into tasks (tenant_id, project_id, title, created_by_id, due_date)
         values ($1::bigint, $2::bigint, 'edge', $3::bigint, $4::timestamptz)
         returning ${TASKS.row()}, due_date as due_text`,
        [tenant, project.id, worker.id, literal],
      );
      out.push({ viaRow: TASKS.parse(row).dueDate, viaText: row.due_text });
    }
    return out;
  });
}

describe('rows as JSON arrays', () => {
  it('give every timestamp to the millisecond, as the text form does, around every edge', async () => {
    const literals = [
      '2026-11-30 11:58:10.123999+00',
      '2026-11-30 11:58:10.999999+00',
      '2026-11-30 11:58:10.000001+00',
      '2026-11-30 11:58:10+00',
      '1969-12-31 23:59:59.9995+00',
      '1900-01-01 00:00:00.000001+00',
      '0100-03-01 12:00:00.5+00',
      '9999-12-31 23:59:59.999999+00',
    ];
    for (let i = 0; i < 40; i++) {
      const ms = Date.UTC(1950, 0, 1) + Math.floor(Math.random() * 120 * 365 * 86_400_000);
      const micros = String(Math.floor(Math.random() * 1_000_000)).padStart(6, '0');
      literals.push(`${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.${micros}+00`);
    }
    for (const [i, { viaRow, viaText }] of (await roundTrip(literals)).entries()) {
      expect(viaRow?.getTime(), literals[i]).toBe(viaText.getTime());
    }
  });

  it('keep ids past 2^53, nulls, text, jsonb and ints exactly', async () => {
    const row = await t.open.db.withTransaction((tx) =>
      tx.one<Record<string, unknown>>(
        `select ${WORKERS.row('w', 'assignee')}
           from (select 9007199254740993::bigint as id, $1::text as handle, 'agent' as type, null::text as email,
                        '["a", {"b": [1, 2.5]}]'::jsonb as capabilities, null::timestamptz as created_at) w`,
        [`h"'\n\\ü`],
      ),
    );
    expect(WORKERS.parseAs(row, 'assignee')).toEqual({
      id: 9007199254740993n,
      handle: `h"'\n\\ü`,
      type: 'agent',
      email: null,
      capabilities: ['a', { b: [1, 2.5] }],
      createdAt: null,
    });
  });
});
