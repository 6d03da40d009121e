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
  it('selects every field by its snake_case column, optionally aliased and prefixed', () => {
    expect(TASKS.columns()).toMatch(
      /^id, title, description, status, .*parent_task_id, .*lease_expires_at, lease_end$/,
    );
    expect(TASKS.columns('t', 'before_')).toContain('t.assignee_id as before_assignee_id');
  });

  it('parses a row: int8 from text to bigint, nulls kept, other kinds as pg returns them', () => {
    const row = Object.fromEntries(
      TASKS.columns()
        .split(', ')
        .map((c) => [c, null]),
    ) as Record<string, unknown>;
    Object.assign(row, { id: '9007199254740993', version: '2', attempts: 3, tags: ['x'], title: 't' });
    const task = TASKS.parse(row);
    expect(task.id).toBe(9007199254740993n);
    expect(task.version).toBe(2n);
    expect(task.assigneeId).toBeNull();
    expect(task.attempts).toBe(3);
    expect(task.tags).toEqual(['x']);
    expect(TASKS.parsePrefixed({ before_id: '5' }, 'before_').id).toBe(5n);
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
