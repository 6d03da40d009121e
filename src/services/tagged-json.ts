/**
 * JSON that keeps bigints and Dates: idempotency records store a create's first response and
 * must hand back exactly the same values on a retry.
 */
import type { JsonValue } from '../domain.js';

const TAGS = ['$bigint', '$date', '$object'];

export function toTaggedJson(value: unknown): JsonValue {
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (Array.isArray(value)) return value.map(toTaggedJson);
  if (value !== null && typeof value === 'object') {
    const out: { [k: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toTaggedJson(v);
    // User JSON (metadata) that looks like a tag is escaped, so that it comes back as itself.
    const keys = Object.keys(out);
    return keys.length === 1 && TAGS.includes(keys[0]!) ? { $object: out } : out;
  }
  return value as JsonValue;
}

export function fromTaggedJson<T>(value: JsonValue): T {
  const walk = (v: JsonValue): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length === 1 && typeof v.$bigint === 'string') return BigInt(v.$bigint);
      if (keys.length === 1 && typeof v.$date === 'string') return new Date(v.$date);
      if (keys.length === 1 && v.$object !== null && typeof v.$object === 'object' && !Array.isArray(v.$object)) {
        const escaped = v.$object;
        return Object.fromEntries(Object.keys(escaped).map((k) => [k, walk(escaped[k] as JsonValue)]));
      }
      return Object.fromEntries(keys.map((k) => [k, walk(v[k] as JsonValue)]));
    }
    return v;
  };
  return walk(value) as T;
}
