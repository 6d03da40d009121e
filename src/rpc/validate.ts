/**
 * Input checks at the RPC boundary, with zod: every rule names the request field it is about,
 * so a client reads "title: must be 1 to 500 characters", never a database error. What passes
 * here is turned into the services' typed inputs.
 */
import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import { z } from 'zod';
import { type JsonObject, snakeCase } from '../domain.js';
import { AppError } from '../errors.js';
import { describeLimit, LIMITS } from '../limits.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../services/page-token.js';

export { LIMITS } from '../limits.js';

const chars = (s: string) => [...s].length;
const noNul = (s: string) => !s.includes('\u0000');

export const text = (max: number, unit: 'chars' | 'bytes' = 'chars') =>
  z
    .string()
    .refine(noNul, 'must not contain NUL characters')
    .refine(
      (s) => (unit === 'chars' ? chars(s) : Buffer.byteLength(s)) <= max,
      unit === 'chars' ? describeLimit.chars(max) : describeLimit.bytes(max),
    );

export const requiredText = (max: number) =>
  text(max).refine((s) => s.trim().length > 0, `is required (1 to ${max} characters)`);

export const title = requiredText(LIMITS.titleChars);
export const description = text(LIMITS.textBytes, 'bytes');

export const tags = z
  .array(
    z
      .string()
      .refine(noNul, 'must not contain NUL characters')
      .refine(
        (s) => s.trim().length > 0 && chars(s) <= LIMITS.tagChars,
        `each ${describeLimit.chars(LIMITS.tagChars, 1)}`,
      ),
  )
  .max(LIMITS.tags, describeLimit.items(LIMITS.tags, 'tags'))
  // A tag set: repeating a tag adds nothing.
  .transform((list) => [...new Set(list)]);

export const capabilities = z
  .array(
    z
      .string()
      .refine(
        (s) => noNul(s) && s.trim().length > 0 && chars(s) <= LIMITS.tagChars,
        `each ${describeLimit.chars(LIMITS.tagChars, 1)}`,
      ),
  )
  .max(LIMITS.capabilities, describeLimit.items(LIMITS.capabilities, 'capabilities'))
  .transform((list) => [...new Set(list)]);

export const handle = z
  .string()
  .regex(
    new RegExp(`^@[A-Za-z0-9_][A-Za-z0-9_.-]{0,${LIMITS.handleChars - 1}}$`),
    `must look like @name (letters, digits, _ . -; at most ${LIMITS.handleChars} after the @)`,
  );

export const email = z
  .string()
  .transform((s) => s.trim())
  .pipe(z.union([z.literal(''), z.email('is not an email address').max(LIMITS.emailChars, 'is not an email address')]))
  .transform((s) => (s === '' ? null : s));

export const subdomain = z
  .string()
  // DNS names are case-insensitive: Acme and acme are one tenant.
  .transform((s) => s.trim().toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
        'must be a DNS label: lowercase letters, digits and inner hyphens, at most 63',
      ),
  );

export const metadata = z
  .custom<JsonObject>()
  .optional()
  .transform((v) => v ?? {})
  .refine(
    (v) => Buffer.byteLength(JSON.stringify(v)) <= LIMITS.metadataBytes,
    `${describeLimit.bytes(LIMITS.metadataBytes)} as JSON`,
  )
  // A NUL in any key or string value (JSON text would also flag a literal backslash-u0000).
  .refine((v) => !containsNul(v), 'must not contain NUL characters')
  // NaN and Infinity have no JSON form: they would be stored as null without a word.
  .refine((v) => !containsNonFinite(v), 'numbers must be finite (no NaN or Infinity)');

function containsNonFinite(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (Array.isArray(v)) return v.some(containsNonFinite);
  if (v !== null && typeof v === 'object') return Object.values(v).some(containsNonFinite);
  return false;
}

function containsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(containsNul);
  if (v !== null && typeof v === 'object')
    return Object.entries(v).some(([k, x]) => k.includes('\u0000') || containsNul(x));
  return false;
}

export const requestId = text(LIMITS.requestIdChars);

const INT64_MAX = 9223372036854775807n;
/** A required id: positive. */
export const id = z.bigint().refine((v) => v > 0n && v <= INT64_MAX, 'is required (a positive id)');
/** An optional id: 0 (or absent) means none. */
export const optionalId = z
  .bigint()
  .optional()
  .refine((v) => v === undefined || (v >= 0n && v <= INT64_MAX), 'must be a positive id, or 0 for none')
  .transform((v) => (v === undefined || v === 0n ? null : v));
/** expected_version: 0 means no check. */
export const expectedVersion = optionalId;

/** A lease token a caller presents: 0 (or absent) means none. */
export const optionalLeaseToken = optionalId;
/** A lease token that must be given. */
export const leaseToken = z
  .bigint()
  .refine((v) => v > 0n && v <= INT64_MAX, 'is required (the token ClaimTask returned)');

/** A whole number of seconds in [min, max]; 0 means `fallback` when one is given. */
export const seconds = (range: { min?: number; max: number; default?: number }) =>
  z
    .number()
    .int()
    .refine(
      (v) => (range.default !== undefined && v === 0) || (v >= (range.min ?? 0) && v <= range.max),
      describeLimit.range(range.min ?? 0, range.max),
    )
    .transform((v) => (v === 0 && range.default !== undefined ? range.default : v));

export const leaseSeconds = seconds(LIMITS.leaseSeconds);
export const waitSeconds = seconds(LIMITS.waitSeconds);
export const retryAfterSeconds = seconds(LIMITS.retryAfterSeconds);
export const maxAttempts = z
  .number()
  .int()
  .min(0, describeLimit.range(0, LIMITS.maxAttempts))
  .max(LIMITS.maxAttempts, describeLimit.range(0, LIMITS.maxAttempts));
export const lastError = text(LIMITS.lastErrorBytes, 'bytes');

export const pageSize = z
  .number()
  .int()
  .min(0, 'must not be negative')
  .max(MAX_PAGE_SIZE, `must be at most ${MAX_PAGE_SIZE}`)
  .transform((v) => (v === 0 ? DEFAULT_PAGE_SIZE : v));
export const pageToken = z.string().max(4096, 'is not a valid page token');

// 0001-01-01 .. 9999-12-31, the range of google.protobuf.Timestamp.
export const timestamp = z
  .custom<Timestamp>()
  .optional()
  .refine(
    (t) =>
      t === undefined || (t.seconds >= -62135596800n && t.seconds <= 253402300799n && t.nanos >= 0 && t.nanos < 1e9),
    'is out of range',
  )
  .transform((t) => (t === undefined ? null : timestampDate(t)));

/**
 * An enum field: the zero value means `fallback` (null: no value), anything unknown is an error.
 */
export function enumOf<D extends string>(toDomain: (v: number) => D | undefined, fallback: D): z.ZodType<D, number>;
export function enumOf<D extends string>(
  toDomain: (v: number) => D | undefined,
  fallback: null,
): z.ZodType<D | null, number>;
export function enumOf<D extends string>(toDomain: (v: number) => D | undefined, fallback: D | null) {
  return z
    .number()
    .refine((v) => v === 0 || toDomain(v) !== undefined, 'is not a known value')
    .transform((v) => (v === 0 ? fallback : toDomain(v)!));
}

/**
 * Parses `input` with `schema`, or fails with INVALID_ARGUMENT naming every bad field.
 * @throws AppError invalid_argument.
 */
export function check<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => {
    const path = [prefix, ...i.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))]
      .filter(Boolean)
      .join('.')
      .replace(/\.\[/g, '[');
    return { field: snake(path) || 'request', message: i.message };
  });
  const first = issues[0]!;
  throw new AppError('invalid_argument', issues.map((i) => `${i.field}: ${i.message}`).join('; '), first.field);
}

/** createdById → created_by_id, so errors use the .proto field names. */
export const snake = snakeCase;
/** due_date → dueDate. */
export const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
