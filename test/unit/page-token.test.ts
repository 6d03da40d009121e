import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../src/errors.js';
import { idPosition, PageTokens, tokenId } from '../../src/services/page-token.js';

const SECRET = 'a page token secret of at least 32 characters';
const tokens = new PageTokens(SECRET);
const fingerprint = tokens.fingerprint({
  list: 'tasks',
  filter: { projectId: 7n, status: 'pending' },
  order: 'created_at',
});
const position = z.strictObject({ id: tokenId, at: z.number().int() });

/** Asserts that decoding fails as INVALID_ARGUMENT on page_token. */
function expectRejected(token: string, fp = fingerprint, t = tokens, schema: z.ZodType = position): void {
  let caught: unknown;
  try {
    t.decode(token, fp, schema);
  } catch (err) {
    caught = err;
  }
  expect(caught, `token ${JSON.stringify(token)} was accepted`).toBeInstanceOf(AppError);
  expect((caught as AppError).code).toBe('invalid_argument');
  expect((caught as AppError).field).toBe('page_token');
  expect((caught as AppError).message).toMatch(/^page_token: /);
}

/** A token signed with the right key around any payload: what a leaked key would allow. */
function signed(payload: unknown, secret = SECRET): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const sig = createHmac('sha256', secret)
    .update('taskapi.page-token.v2')
    .update('\0')
    .update(body)
    .digest()
    .subarray(0, 16);
  return `${body}.${sig.toString('base64url')}`;
}

describe('page tokens', () => {
  it('round trip through the schema gives the typed position back', () => {
    const token = tokens.encode(fingerprint, { id: 9007199254740993n, at: 12 });
    expect(tokens.decode(token, fingerprint, position)).toEqual({ id: 9007199254740993n, at: 12 });
    expect(tokens.decode(tokens.encode(fingerprint, 42n), fingerprint, idPosition)).toBe(42n);
  });

  it('an empty token is the first page', () => {
    expect(tokens.decode('', fingerprint, position)).toBeNull();
  });

  it('is opaque and URL-safe', () => {
    const token = tokens.encode(fingerprint, { id: 1n, at: 0 });
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  });

  it('a token with any one character changed is rejected', () => {
    const token = tokens.encode(fingerprint, { id: 123n, at: 5 });
    for (let i = 0; i < token.length; i++) {
      const replacement = token[i] === 'A' ? 'B' : 'A';
      expectRejected(token.slice(0, i) + replacement + token.slice(i + 1));
    }
  });

  it('a truncated or extended token is rejected', () => {
    const token = tokens.encode(fingerprint, { id: 123n, at: 5 });
    for (let n = 1; n < token.length; n++) expectRejected(token.slice(0, n));
    expectRejected(`${token}A`);
    expectRejected(`${token}=`);
    expectRejected(`${token}!`);
    expectRejected(`${token}.`);
    expectRejected(`${token}.${token}`);
  });

  it.each(['garbage', '.', '..', 'abc.', '.abc', '!!!.???', ' ', 'null', '{"q":"x","p":1}'])(
    'garbage %j is rejected',
    (token) => {
      expectRejected(token);
    },
  );

  it('a token signed under another key is rejected (another replica without a shared secret)', () => {
    const other = new PageTokens();
    const token = other.encode(fingerprint, { id: 1n, at: 1 });
    expectRejected(token);
    // ...even with a payload that is otherwise perfect
    expectRejected(signed({ q: fingerprint, p: { id: '1', at: 1 } }, 'another secret of at least 32 characters!'));
  });

  it('a token used with another fingerprint (other filters, order or tenant) is rejected', () => {
    const token = tokens.encode(fingerprint, { id: 5n, at: 0 });
    const otherFilter = tokens.fingerprint({
      list: 'tasks',
      filter: { projectId: 8n, status: 'pending' },
      order: 'created_at',
    });
    expect(otherFilter).not.toBe(fingerprint);
    expectRejected(token, otherFilter);
    expectRejected(token, tokens.fingerprint({ list: 'projects' }));
  });

  it('fingerprints are stable for equal queries and depend on the key', () => {
    expect(
      tokens.fingerprint({ list: 'tasks', filter: { projectId: 7n, status: 'pending' }, order: 'created_at' }),
    ).toBe(fingerprint);
    expect(new PageTokens(SECRET).fingerprint({ a: 1 })).toBe(tokens.fingerprint({ a: 1 }));
    expect(new PageTokens().fingerprint({ a: 1 })).not.toBe(tokens.fingerprint({ a: 1 }));
  });

  it('a correctly signed token whose payload does not fit the schema is still rejected', () => {
    // The forgery is right: a signed well-formed payload is accepted...
    expect(tokens.decode(signed({ q: fingerprint, p: { id: '12', at: 3 } }), fingerprint, position)).toEqual({
      id: 12n,
      at: 3,
    });
    // ...and any payload that is not exactly the list's position is the client's error.
    for (const p of [
      {},
      { at: 3 },
      { id: 12, at: 3 },
      { id: '1e5', at: 3 },
      { id: '-1', at: 3 },
      { id: '9223372036854775808', at: 3 },
      { id: '12', at: 3, extra: true },
      { id: '12', at: 1.5 },
      null,
      [],
      'x',
    ]) {
      expectRejected(signed({ q: fingerprint, p }));
    }
    expectRejected(signed({ q: fingerprint }));
    expectRejected(signed({ p: { id: '1', at: 1 } }));
    expectRejected(signed({ q: fingerprint, p: { id: '1', at: 1 }, x: 1 }));
    expectRejected(signed([fingerprint, { id: '1', at: 1 }]));
  });
});

describe('page', () => {
  const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1) }));

  it('cuts size + 1 rows to size and returns a token for the last item', () => {
    const page = tokens.page(rows(6), 5, fingerprint, (r) => r.id);
    expect(page.items.map((r) => r.id)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(tokens.decode(page.nextPageToken, fingerprint, idPosition)).toBe(5n);
  });

  it('exactly size rows, fewer, or none: no next page', () => {
    expect(tokens.page(rows(5), 5, fingerprint, (r) => r.id).nextPageToken).toBe('');
    expect(tokens.page(rows(2), 5, fingerprint, (r) => r.id)).toEqual({ items: rows(2), nextPageToken: '' });
    expect(tokens.page([], 5, fingerprint, (r: { id: bigint }) => r.id)).toEqual({ items: [], nextPageToken: '' });
  });

  it('the position comes from the last item of the page, not the extra row', () => {
    const seen: bigint[] = [];
    tokens.page(rows(3), 2, fingerprint, (r) => {
      seen.push(r.id);
      return r.id;
    });
    expect(seen).toEqual([2n]);
  });
});
