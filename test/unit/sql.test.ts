import { describe, expect, it } from 'vitest';
import { TASKS } from '../../src/repositories/rows.js';
import { Params } from '../../src/repositories/sql.js';

describe('Params', () => {
  it('numbers placeholders in the order values are bound, with their casts', () => {
    const q = new Params();
    expect(q.bind('a', 'text')).toBe('$1::text');
    expect(q.id(7n)).toBe('$2::bigint');
    expect(q.id(null)).toBe('$3::bigint');
    expect(q.values).toEqual(['a', '7', null]);
  });
});

describe('a table from a field map', () => {
  it('selects every field by its snake_case column, plain or aliased', () => {
    expect(TASKS.columns()).toMatch(
      /^id, title, description, status, .*parent_task_id, .*lease_expires_at, lease_end$/,
    );
    expect(TASKS.columns('t')).toContain('t.assignee_id, t.created_by_id');
  });

  it('reads a row as one JSON array of text: ids as text, timestamps as whole epoch milliseconds', () => {
    const row = TASKS.row('c', 'before');
    expect(row).toMatch(/^array_to_json\(array\[c\.id::text, c\.title, .*\]::text\[\]\) as before$/);
    expect(row).toContain('floor(extract(epoch from c.due_date) * 1000)::int8::text');
    expect(row).toContain('c.tags::text, ');
    expect(TASKS.row()).toMatch(/^array_to_json\(array\[id::text, .* as row$/);
  });

  it('parses that array: int8 to bigint, int to number, epoch ms to Date, JSON text to values, nulls kept', () => {
    const values: unknown[] = TASKS.columns()
      .split(', ')
      .map(() => null);
    const at = (column: string) => TASKS.columns().split(', ').indexOf(column);
    values[at('id')] = '9007199254740993';
    values[at('version')] = '2';
    values[at('attempts')] = '3';
    values[at('tags')] = '["x"]';
    values[at('title')] = 't';
    values[at('due_date')] = '-1';
    const task = TASKS.parse({ row: values });
    expect(task.id).toBe(9007199254740993n);
    expect(task.version).toBe(2n);
    expect(task.assigneeId).toBeNull();
    expect(task.attempts).toBe(3);
    expect(task.tags).toEqual(['x']);
    expect(task.dueDate).toEqual(new Date(-1));
    expect(TASKS.parseAs({ before: values }, 'before').id).toBe(9007199254740993n);
    expect(TASKS.parseOptional({ before: values.map(() => null) }, 'before')).toBeNull();
    expect(TASKS.parseOptional({ before: null }, 'before')).toBeNull();
    expect(() => TASKS.parse({ id: '1' })).toThrow(/no row column/);
  });

  it('inserts and updates only the fields given; null clears, undefined keeps', () => {
    const q = new Params();
    const insert = TASKS.insert(q, { title: 'a', tags: ['x'], assigneeId: null, dueDate: undefined } as never);
    expect(insert.columns).toEqual(['title', 'tags', 'assignee_id']);
    expect(insert.placeholders).toEqual(['$1::text', '$2::jsonb', '$3::bigint']);
    expect(q.values).toEqual(['a', '["x"]', null]);
    const u = new Params();
    expect(TASKS.assignments(u, { maxAttempts: 3, notBefore: null, title: undefined })).toEqual([
      'max_attempts = $1::int',
      'not_before = $2::timestamptz',
    ]);
  });

  it('refuses to write a field the service maintains itself', () => {
    expect(() => TASKS.assignments(new Params(), { attempts: 1 } as never)).toThrow(/tasks.attempts is not writable/);
    expect(() => TASKS.assignments(new Params(), { projectId: 1n } as never)).toThrow(
      /tasks.projectId is not writable/,
    );
  });
});
