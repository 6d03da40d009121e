import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../src/domain.js';
import { fromTaggedJson, toTaggedJson } from '../../src/services/tagged-json.js';

/** Through JSON text, as idempotency records and page tokens are stored. */
const roundTrip = <T>(value: T): T => fromTaggedJson<T>(JSON.parse(JSON.stringify(toTaggedJson(value))) as JsonValue);

describe('tagged JSON', () => {
  it('keeps bigints, beyond Number.MAX_SAFE_INTEGER and negative', () => {
    for (const v of [0n, 1n, -1n, 9007199254740993n, 9223372036854775807n, -9223372036854775808n]) {
      const back = roundTrip(v);
      expect(typeof back).toBe('bigint');
      expect(back).toBe(v);
    }
  });

  it('keeps Dates to the millisecond', () => {
    const d = new Date('2024-02-29T23:59:59.999Z');
    const back = roundTrip(d);
    expect(back).toBeInstanceOf(Date);
    expect(back.getTime()).toBe(d.getTime());
  });

  it('keeps plain JSON values as they are', () => {
    for (const v of [null, true, false, 0, 1.5, -3, '', 'text', '$bigint', [], {}]) expect(roundTrip(v)).toEqual(v);
  });

  it('keeps nested objects and arrays', () => {
    const value = {
      id: 5n,
      createdAt: new Date('2024-01-01T00:00:00.000Z'),
      dueDate: null,
      tags: ['a', 'b'],
      matrix: [[1n, 2n], [new Date(0)], [], [[3n]]],
      nested: { deeper: { version: 2n, list: [{ at: new Date(1000) }] } },
      metadata: { k: 'v', n: 1, flag: true, none: null },
    };
    const back = roundTrip(value);
    expect(back).toEqual(value);
    expect(typeof back.matrix[0]![0]).toBe('bigint');
    expect(back.matrix[1]![0]).toBeInstanceOf(Date);
    expect(typeof (back.matrix[3]![0] as bigint[])[0]).toBe('bigint');
    expect(back.nested.deeper.list[0]!.at).toBeInstanceOf(Date);
  });

  it('drops undefined properties', () => {
    expect(roundTrip({ a: 1, b: undefined })).toEqual({ a: 1 });
    expect(Object.keys(roundTrip({ a: 1, b: undefined }))).toEqual(['a']);
  });

  it('produces plain JSON', () => {
    const tagged = toTaggedJson({ id: 1n, at: new Date(0) });
    expect(JSON.parse(JSON.stringify(tagged))).toEqual(tagged);
  });

  // User data (task and project metadata) is arbitrary JSON: an object that merely looks like
  // a tag must come back as that object, not as a bigint or a Date (or an exception).
  it.each([
    [{ $bigint: '5' }],
    [{ $bigint: 'not a number' }],
    [{ $date: '2024-01-01T00:00:00.000Z' }],
    [{ $date: 'whenever' }],
    [{ $object: { a: 1 } }],
    [{ $object: { $bigint: '1' } }],
  ])('an object that looks like a tag, %j, round trips unchanged', (lookalike) => {
    expect(roundTrip(lookalike)).toEqual(lookalike);
    expect(roundTrip({ metadata: lookalike, id: 1n })).toEqual({ metadata: lookalike, id: 1n });
    expect(roundTrip([lookalike])).toEqual([lookalike]);
  });

  it('an object that looks like a tag does not collide with the value it looks like', () => {
    expect(JSON.stringify(toTaggedJson({ $bigint: '5' }))).not.toBe(JSON.stringify(toTaggedJson(5n)));
    expect(JSON.stringify(toTaggedJson({ $date: '1970-01-01T00:00:00.000Z' }))).not.toBe(
      JSON.stringify(toTaggedJson(new Date(0))),
    );
  });
});
