/**
 * JSON that keeps bigints and Dates: idempotency records store a create's first response and
 * must hand back exactly the same values on a retry.
 */
import type { JsonValue } from '../domain.js';

export function toTaggedJson(value: unknown): JsonValue {
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (Array.isArray(value)) return value.map(toTaggedJson);
  if (value !== null && typeof value === 'object') {
    const out: { [k: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toTaggedJson(v);
    return out;
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
      return Object.fromEntries(keys.map((k) => [k, walk(v[k] as JsonValue)]));
    }
    return v;
  };
  return walk(value) as T;
}
