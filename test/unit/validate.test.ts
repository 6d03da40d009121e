import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../src/errors.js';
import { taskStatus } from '../../src/rpc/convert.js';
import { fieldsToWrite } from '../../src/rpc/handlers/update-mask.js';
import * as v from '../../src/rpc/validate.js';

const ok = (schema: z.ZodType, input: unknown) => schema.safeParse(input).success;

/** The AppError `fn` throws; fails the test when it throws nothing or something else. */
function appError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError, nothing was thrown');
}

describe('title', () => {
  it('1 to 500 characters, counted in code points', () => {
    expect(ok(v.title, 'a')).toBe(true);
    expect(ok(v.title, 'a'.repeat(500))).toBe(true);
    expect(ok(v.title, 'a'.repeat(501))).toBe(false);
    const emoji = '😀';
    expect(emoji.length).toBe(2); // UTF-16 units: a length check would halve the limit
    expect(ok(v.title, emoji.repeat(500))).toBe(true);
    expect(ok(v.title, emoji.repeat(501))).toBe(false);
    expect(ok(v.title, 'é'.repeat(500))).toBe(true);
  });

  it.each(['', ' ', '   ', '\t\n'])('blank %j fails', (t) => {
    expect(ok(v.title, t)).toBe(false);
  });

  it('NUL characters are rejected', () => {
    expect(ok(v.title, 'a\u0000b')).toBe(false);
  });

  it('check names the field in the message and in .field', () => {
    const err = appError(() => v.check(z.object({ title: v.title }), { title: '' }, 'task'));
    expect(err.code).toBe('invalid_argument');
    expect(err.field).toBe('task.title');
    expect(err.message).toMatch(/^task\.title: /);
  });
});

describe('tags', () => {
  it('at most 50', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
    expect(v.check(v.tags, many(50))).toHaveLength(50);
    expect(ok(v.tags, many(51))).toBe(false);
    expect(v.check(v.tags, [])).toEqual([]);
  });

  it('each 1 to 64 characters (code points)', () => {
    expect(ok(v.tags, ['a'.repeat(64)])).toBe(true);
    expect(ok(v.tags, ['😀'.repeat(64)])).toBe(true);
    expect(ok(v.tags, ['a'.repeat(65)])).toBe(false);
    expect(ok(v.tags, [''])).toBe(false);
    expect(ok(v.tags, ['  '])).toBe(false);
    expect(ok(v.tags, ['ok', 'a\u0000'])).toBe(false);
  });

  it('deduplicated, first occurrence order kept', () => {
    expect(v.check(v.tags, ['b', 'a', 'b', 'c', 'a'])).toEqual(['b', 'a', 'c']);
  });

  it('a bad tag is named with its index', () => {
    const err = appError(() => v.check(z.object({ tags: v.tags }), { tags: ['ok', ''] }, 'task'));
    expect(err.field).toBe('task.tags[1]');
    expect(err.message).toContain('task.tags[1]');
  });
});

describe('description', () => {
  it('at most 64 KiB in UTF-8 bytes', () => {
    expect(ok(v.description, '')).toBe(true);
    expect(ok(v.description, 'a'.repeat(65536))).toBe(true);
    expect(ok(v.description, 'a'.repeat(65537))).toBe(false);
    // 2 bytes each: counted in characters this would pass
    expect(ok(v.description, 'é'.repeat(32768))).toBe(true);
    expect(ok(v.description, 'é'.repeat(32769))).toBe(false);
  });

  it('NUL characters are rejected', () => {
    expect(ok(v.description, 'line\u0000')).toBe(false);
  });
});

describe('handle and email', () => {
  it.each(['@alice', '@a', '@A_b.c-d', `@${'a'.repeat(64)}`, '@_bot', '@0'])('handle %j passes', (h) => {
    expect(ok(v.handle, h)).toBe(true);
  });

  it.each(['alice', '@', '@-x', '@.x', `@${'a'.repeat(65)}`, '@a b', '@a@b', '@ä', '', ' @alice'])(
    'handle %j fails',
    (h) => {
      expect(ok(v.handle, h)).toBe(false);
    },
  );

  it('email: trimmed, empty is none, malformed fails', () => {
    expect(v.check(v.email, 'ada@example.com')).toBe('ada@example.com');
    expect(v.check(v.email, '  ada@example.com ')).toBe('ada@example.com');
    expect(v.check(v.email, '')).toBeNull();
    expect(v.check(v.email, '   ')).toBeNull();
    for (const bad of [
      'ada',
      'ada@',
      '@example.com',
      'ada@@example.com',
      'a da@example.com',
      `${'a'.repeat(250)}@example.com`,
    ]) {
      expect(ok(v.email, bad), bad).toBe(false);
    }
  });

  it('a bad email is named', () => {
    const err = appError(() => v.check(z.object({ email: v.email }), { email: 'nope' }, 'worker'));
    expect(err.field).toBe('worker.email');
  });
});

describe('subdomain', () => {
  it('a DNS label, lowercased (Acme and acme are one tenant)', () => {
    expect(v.check(v.subdomain, 'Acme')).toBe('acme');
    expect(v.check(v.subdomain, 'a-1')).toBe('a-1');
    for (const bad of ['', '-a', 'a-', 'a.b', 'a_b', 'x'.repeat(64)])
      expect(() => v.check(v.subdomain, bad)).toThrow(/DNS label/);
  });
});

describe('page_size', () => {
  it('0 → the default of 50; 1..500 as given', () => {
    expect(v.check(v.pageSize, 0)).toBe(50);
    expect(v.check(v.pageSize, 1)).toBe(1);
    expect(v.check(v.pageSize, 500)).toBe(500);
  });

  it.each([501, -1, 1.5, Number.NaN])('%s is rejected as invalid_argument on page_size', (n) => {
    const err = appError(() => v.check(z.object({ pageSize: v.pageSize }), { pageSize: n }));
    expect(err.code).toBe('invalid_argument');
    expect(err.field).toBe('page_size');
    expect(err.message).toMatch(/^page_size: /);
  });
});

describe('enums', () => {
  const status = v.enumOf(taskStatus.toDomain, 'pending');
  const optionalStatus = v.enumOf(taskStatus.toDomain, null);

  it('zero → the default', () => {
    expect(v.check(status, 0)).toBe('pending');
    expect(v.check(optionalStatus, 0)).toBeNull();
  });

  it('known numbers map to the domain value', () => {
    expect(v.check(status, 2)).toBe('in_progress');
    expect(v.check(optionalStatus, 1)).toBe('pending');
  });

  it.each([99, -1, 1.5])('unknown enum number %s is rejected', (n) => {
    const err = appError(() => v.check(z.object({ status }), { status: n }, 'task'));
    expect(err.code).toBe('invalid_argument');
    expect(err.field).toBe('task.status');
  });
});

describe('ids', () => {
  it('optionalId: 0 or absent → null; positive as given; negative or beyond int64 rejected', () => {
    expect(v.check(v.optionalId, 0n)).toBeNull();
    expect(v.check(v.optionalId, undefined)).toBeNull();
    expect(v.check(v.optionalId, 7n)).toBe(7n);
    expect(v.check(v.optionalId, 9223372036854775807n)).toBe(9223372036854775807n);
    expect(ok(v.optionalId, -1n)).toBe(false);
    expect(ok(v.optionalId, 9223372036854775808n)).toBe(false);
  });

  it('id: required and positive', () => {
    expect(v.check(v.id, 1n)).toBe(1n);
    expect(ok(v.id, 0n)).toBe(false);
    expect(ok(v.id, -5n)).toBe(false);
    expect(ok(v.id, 9223372036854775808n)).toBe(false);
  });
});

describe('check', () => {
  it('throws invalid_argument whose message and .field name the snake_case field', () => {
    const schema = z.object({ createdById: v.id, title: v.title });
    const err = appError(() => v.check(schema, { createdById: 0n, title: 'fine' }));
    expect(err.code).toBe('invalid_argument');
    expect(err.field).toBe('created_by_id');
    expect(err.message).toMatch(/^created_by_id: /);
    expect(err.message).not.toContain('createdById');
  });

  it('with a prefix, the field is the full path', () => {
    const err = appError(() => v.check(z.object({ parentTaskId: v.optionalId }), { parentTaskId: -1n }, 'task'));
    expect(err.field).toBe('task.parent_task_id');
  });

  it('names every bad field in the message; .field is the first', () => {
    const schema = z.object({ createdById: v.id, title: v.title, dueDate: v.timestamp });
    const err = appError(() =>
      v.check(schema, { createdById: 0n, title: '', dueDate: { seconds: 300000000000n, nanos: 0 } }),
    );
    expect(err.field).toBe('created_by_id');
    expect(err.message).toContain('created_by_id: ');
    expect(err.message).toContain('title: ');
    expect(err.message).toContain('due_date: ');
  });

  it('returns the parsed value when everything is valid', () => {
    expect(v.check(z.object({ title: v.title, tags: v.tags }), { title: 'x', tags: ['a', 'a'] })).toEqual({
      title: 'x',
      tags: ['a'],
    });
  });

  it('snake converts lowerCamelCase', () => {
    expect(v.snake('createdById')).toBe('created_by_id');
    expect(v.snake('title')).toBe('title');
  });
});

describe('fieldsToWrite', () => {
  const UPDATABLE = ['title', 'description', 'status', 'tags', 'assignee_id', 'due_date'] as const;
  const message = {
    id: 1n,
    title: 'New',
    description: '',
    status: 0,
    tags: [] as string[],
    assigneeId: undefined as bigint | undefined,
  };

  it('a mask with snake_case paths: exactly those fields', () => {
    expect(fieldsToWrite(['description', 'assignee_id'], UPDATABLE, message)).toEqual(['description', 'assignee_id']);
  });

  it('a mask with lowerCamelCase paths (proto JSON): the same fields', () => {
    expect(fieldsToWrite(['assigneeId', 'dueDate'], UPDATABLE, message)).toEqual(['assignee_id', 'due_date']);
  });

  it('repeated paths count once', () => {
    expect(fieldsToWrite(['title', 'title', 'assigneeId', 'assignee_id'], UPDATABLE, message)).toEqual([
      'title',
      'assignee_id',
    ]);
  });

  it.each([['id'], ['version'], ['nope'], ['created_by_id'], ['']])(
    'unknown or not updatable path %j → invalid_argument naming update_mask',
    (path) => {
      const err = appError(() => fieldsToWrite(['title', path], UPDATABLE, message));
      expect(err.code).toBe('invalid_argument');
      expect(err.field).toBe('update_mask');
      expect(err.message).toMatch(/^update_mask: /);
    },
  );

  it('an empty mask: only the fields the message sets', () => {
    expect(fieldsToWrite([], UPDATABLE, message)).toEqual(['title']);
    expect(fieldsToWrite([], UPDATABLE, { ...message, status: 3, tags: ['x'], assigneeId: 4n })).toEqual([
      'title',
      'status',
      'tags',
      'assignee_id',
    ]);
    expect(fieldsToWrite([], UPDATABLE, { id: 1n })).toEqual([]);
  });

  it('an empty mask uses a field\'s own "is set" test when given', () => {
    const isSet = { assignee_id: (m: typeof message) => m.assigneeId !== undefined, description: () => true };
    expect(fieldsToWrite([], UPDATABLE, message, isSet)).toEqual(['title', 'description']);
    expect(fieldsToWrite([], UPDATABLE, { ...message, assigneeId: 0n }, isSet)).toEqual([
      'title',
      'description',
      'assignee_id',
    ]);
  });
});
