/**
 * Opaque keyset page tokens: the position after the last row of a page plus a fingerprint of
 * the query it belongs to, with a checksum. A token that was altered, truncated, or used with
 * other filters or another order is rejected as INVALID_ARGUMENT instead of silently paging
 * something else.
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../errors.js';
import { fromTaggedJson, toTaggedJson } from './tagged-json.js';

const DOMAIN = 'taskapi.page-token.v1';

function digest(payload: string): string {
  return createHash('sha256').update(DOMAIN).update(payload).digest('base64url').slice(0, 16);
}

/** A stable fingerprint of the filters and order of a list request. */
export function queryFingerprint(query: unknown): string {
  return digest(JSON.stringify(toTaggedJson(query))).slice(0, 10);
}

export function encodePageToken(fingerprint: string, position: unknown): string {
  const payload = Buffer.from(JSON.stringify({ q: fingerprint, p: toTaggedJson(position) })).toString('base64url');
  return `${payload}.${digest(payload)}`;
}

/**
 * The position a token carries; null for an empty token (the first page).
 * @throws AppError invalid_argument (field page_token) for a malformed or foreign token.
 */
export function decodePageToken<P>(token: string, fingerprint: string): P | null {
  if (token === '') return null;
  const bad = () => invalidArgument('page_token', 'is not a token returned by this list with these filters');
  const [payload, sum, ...rest] = token.split('.');
  if (!payload || !sum || rest.length > 0 || digest(payload) !== sum) throw bad();
  let parsed: { q?: unknown; p?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (parsed.q !== fingerprint || parsed.p === undefined) throw bad();
  try {
    return fromTaggedJson<P>(parsed.p as never);
  } catch {
    // e.g. a hand-made token whose $bigint is not a number: the checksum is no secret.
    throw bad();
  }
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/**
 * Cuts a page from `rows` fetched with limit `size + 1`; the extra row only says that a next
 * page exists.
 */
export function toPage<T>(rows: T[], size: number, fingerprint: string, positionOf: (last: T) => unknown): Page<T> {
  if (rows.length <= size) return { items: rows, nextPageToken: '' };
  const items = rows.slice(0, size);
  return { items, nextPageToken: encodePageToken(fingerprint, positionOf(items[items.length - 1]!)) };
}
