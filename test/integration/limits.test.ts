/**
 * The migrations' CHECK constraints hold exactly the limits of src/limits.ts, which the input
 * validation and its messages use: a value at the limit is stored, one step over it is refused
 * by the named constraint. A limit changed on one side only fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbError } from '../../src/db/index.js';
import { LIMITS } from '../../src/limits.js';
import { openTenantDatabase, type TenantDatabase } from '../helpers/database.js';

let t: TenantDatabase;
let workerId: string;
let projectId: string;

const inTenant = <T>(sql: string, values: unknown[]) =>
  t.open.db.withTenantTransaction(t.tenantId, (tx) => tx.many<T>(sql, values), { asOwner: true });

beforeAll(async () => {
  t = await openTenantDatabase();
  workerId = (
    await inTenant<{ id: string }>(`insert into workers (tenant_id, handle) values ($1, '@limits') returning id`, [
      t.tenantId.toString(),
    ])
  )[0]!.id;
  projectId = (
    await inTenant<{ id: string }>(`insert into projects (tenant_id, name) values ($1, 'limits') returning id`, [
      t.tenantId.toString(),
    ])
  )[0]!.id;
});
afterAll(async () => {
  await t?.close();
});

const strings = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `s${i}`));

interface Case {
  readonly constraint: string;
  /** Inserts one row with the value of size `n`. */
  readonly write: (n: number) => Promise<unknown>;
  readonly limit: number;
}

const task = (column: string, cast: string) => (value: unknown) =>
  inTenant(
    `insert into tasks (tenant_id, project_id, title, created_by_id, ${column === 'title' ? 'description' : column})
     values ($1, $2, ${column === 'title' ? '$4' : "'t'"}, $3, ${column === 'title' ? "''" : `$4::${cast}`})`,
    [t.tenantId.toString(), projectId, workerId, value],
  );

const CASES: Case[] = [
  { constraint: 'tasks_title_length', limit: LIMITS.titleChars, write: (n) => task('title', 'text')('é'.repeat(n)) },
  {
    constraint: 'tasks_description_size',
    limit: LIMITS.textBytes,
    write: (n) => task('description', 'text')('x'.repeat(n)),
  },
  { constraint: 'tasks_tags_count', limit: LIMITS.tags, write: (n) => task('tags', 'jsonb')(strings(n)) },
  {
    constraint: 'tasks_required_capabilities_strings',
    limit: LIMITS.capabilities,
    write: (n) => task('required_capabilities', 'jsonb')(strings(n)),
  },
  { constraint: 'tasks_max_attempts_range', limit: LIMITS.maxAttempts, write: (n) => task('max_attempts', 'int')(n) },
  {
    constraint: 'tasks_last_error_size',
    limit: LIMITS.lastErrorBytes,
    write: (n) => task('last_error', 'text')('x'.repeat(n)),
  },
  {
    constraint: 'projects_name_length',
    limit: LIMITS.nameChars,
    write: (n) =>
      inTenant(`insert into projects (tenant_id, name) values ($1, $2)`, [t.tenantId.toString(), 'é'.repeat(n)]),
  },
  {
    constraint: 'projects_description_size',
    limit: LIMITS.textBytes,
    write: (n) =>
      inTenant(`insert into projects (tenant_id, name, description) values ($1, 'p', $2)`, [
        t.tenantId.toString(),
        'x'.repeat(n),
      ]),
  },
  {
    constraint: 'projects_metadata_object',
    limit: LIMITS.metadataBytes,
    // jsonb's text form of {"a": "…"} is 9 bytes around the string.
    write: (n) =>
      inTenant(`insert into projects (tenant_id, name, metadata) values ($1, 'p', $2::jsonb)`, [
        t.tenantId.toString(),
        JSON.stringify({ a: 'x'.repeat(n - 9) }),
      ]),
  },
  {
    constraint: 'workers_capabilities_count',
    limit: LIMITS.capabilities,
    write: (n) =>
      inTenant(`insert into workers (tenant_id, handle, capabilities) values ($1, $2, $3::jsonb)`, [
        t.tenantId.toString(),
        `@c${n}`,
        strings(n),
      ]),
  },
  {
    constraint: 'workers_handle_format',
    limit: LIMITS.handleChars,
    write: (n) =>
      inTenant(`insert into workers (tenant_id, handle) values ($1, $2)`, [
        t.tenantId.toString(),
        `@${'h'.repeat(n - 1)}${n}`.slice(0, n + 1),
      ]),
  },
  {
    constraint: 'workers_email_format',
    limit: LIMITS.emailChars,
    write: (n) =>
      inTenant(`insert into workers (tenant_id, handle, email) values ($1, $2, $3)`, [
        t.tenantId.toString(),
        `@e${n}`,
        `${'a'.repeat(n - 6)}@b.com`,
      ]),
  },
];

describe('limits and CHECK constraints agree', () => {
  for (const c of CASES) {
    it(`${c.constraint}: ${c.limit} is stored, ${c.limit + 1} is refused`, async () => {
      await c.write(c.limit);
      const err = await c.write(c.limit + 1).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DbError);
      expect((err as DbError).constraint).toBe(c.constraint);
    });
  }
});
