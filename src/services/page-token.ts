/**
 * Opaque keyset page tokens: the position after the last row of a page plus a fingerprint of
 * the query it belongs to, signed with HMAC-SHA256 under the server's key. Every token a client
 * can send is either one this service issued for this list and these filters, or
 * INVALID_ARGUMENT: the signature stops altered and hand-made tokens, and the payload is still
 * parsed with the list's zod schema, so that even a token signed under a leaked key can never
 * reach SQL with a missing or ill-typed position.
 */
import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { invalidArgument } from '../errors.js';
import type { IdWindow } from '../repositories/sql.js';

const DOMAIN = 'taskapi.page-token.v2';
/** 128 bits of the HMAC are plenty against forgery and keep tokens short. */
const SIGNATURE_BYTES = 16;
const INT8_MAX = 2n ** 63n - 1n;

/** A bigint id as it travels in a token: a decimal string within int8. */
export const tokenId = z
  .string()
  .regex(/^\d{1,19}$/)
  .transform(BigInt)
  .refine((v) => v <= INT8_MAX);

/** The position of lists ordered by id alone (workers, projects, tenants). */
export const idPosition = tokenId;

const ENVELOPE = z.strictObject({ q: z.string(), p: z.unknown() });

function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** Where a page of an id-ordered list starts (the repository's window), and how to cut it. */
export interface IdPaging extends IdWindow {
  /** Whether this is the first page (no token given). */
  readonly first: boolean;
  /** The page from the rows fetched with this window, and the token of the next one. */
  page<T extends { readonly id: bigint }>(rows: T[]): Page<T>;
}

export class PageTokens {
  /** A KeyObject, made once: createHmac with a Buffer wraps it anew each call (6× the cost). */
  private readonly key: KeyObject;

  /**
   * @param secret The signing key. Replicas behind one load balancer must share it, or a token
   *   from one is INVALID_ARGUMENT on another. Without one, a random key for this process.
   */
  constructor(secret?: string | Buffer) {
    this.key = createSecretKey(secret === undefined ? randomBytes(32) : Buffer.from(secret));
  }

  private sign(payload: string): Buffer {
    return createHmac('sha256', this.key)
      .update(DOMAIN)
      .update('\0')
      .update(payload)
      .digest()
      .subarray(0, SIGNATURE_BYTES);
  }

  /**
   * A stable fingerprint of the filters and order of a list request (and its tenant): a token is
   * valid only with the query it was made for. Keyed, so that it says nothing about the filters.
   */
  fingerprint(query: unknown): string {
    return createHmac('sha256', this.key)
      .update(`${DOMAIN}.query`)
      .update(canonical(query))
      .digest('base64url')
      .slice(0, 12);
  }

  /** A token for the position; bigints travel as decimal strings (see `tokenId`). */
  encode(fingerprint: string, position: unknown): string {
    const payload = Buffer.from(canonical({ q: fingerprint, p: position })).toString('base64url');
    return `${payload}.${this.sign(payload).toString('base64url')}`;
  }

  /**
   * The position a token carries, parsed with the list's schema; null for an empty token (the
   * first page).
   * @throws AppError invalid_argument (field page_token) for anything but a token this service
   *   issued for this query.
   */
  decode<S extends z.ZodType>(token: string, fingerprint: string, schema: S): z.output<S> | null {
    if (token === '') return null;
    const bad = () => invalidArgument('page_token', 'is not a page token issued for this list with these filters');
    const parts = token.split('.');
    if (parts.length !== 2) throw bad();
    const [payload, signature] = parts as [string, string];
    // base64url round trip: Buffer.from ignores characters outside the alphabet, so a token
    // with junk appended would otherwise verify.
    const given = Buffer.from(signature, 'base64url');
    if (given.toString('base64url') !== signature || given.length !== SIGNATURE_BYTES) throw bad();
    if (!timingSafeEqual(given, this.sign(payload))) throw bad();
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw bad();
    }
    const envelope = ENVELOPE.safeParse(parsed);
    if (!envelope.success || envelope.data.q !== fingerprint) throw bad();
    const position = schema.safeParse(envelope.data.p);
    if (!position.success) throw bad();
    return position.data;
  }

  /**
   * The paging of a list ordered by id alone (tenants, workers, projects, task events): the
   * position is the last id of a page. `query` is the list's name and filters (see fingerprint).
   * @throws AppError invalid_argument (page_token), as decode.
   */
  byId(query: unknown, request: { readonly pageSize: number; readonly pageToken: string }): IdPaging {
    const fingerprint = this.fingerprint(query);
    const afterId = this.decode(request.pageToken, fingerprint, idPosition);
    return {
      afterId: afterId ?? 0n,
      limit: request.pageSize + 1,
      first: afterId === null,
      page: (rows) => this.page(rows, request.pageSize, fingerprint, (last) => last.id),
    };
  }

  /**
   * Cuts a page from `rows` fetched with limit `size + 1`; the extra row only says that a next
   * page exists.
   */
  page<T>(rows: T[], size: number, fingerprint: string, positionOf: (last: T) => unknown): Page<T> {
    if (rows.length <= size) return { items: rows, nextPageToken: '' };
    const items = rows.slice(0, size);
    return { items, nextPageToken: this.encode(fingerprint, positionOf(items[items.length - 1]!)) };
  }
}
