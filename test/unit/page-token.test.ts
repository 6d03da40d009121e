import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { decodePageToken, encodePageToken, queryFingerprint, toPage } from '../../src/services/page-token.js';

const fingerprint = queryFingerprint({ list: 'tasks', filter: { projectId: 7n, status: 'pending' }, order: 'created_at' });

/** Asserts that decoding fails as INVALID_ARGUMENT on page_token. */
function expectRejected(token: string, fp = fingerprint): void {
  let caught: unknown;
  try {
    decodePageToken(token, fp);
  } catch (err) {
    caught = err;
  }
  expect(caught, `token ${JSON.stringify(token)} was accepted`).toBeInstanceOf(AppError);
  expect((caught as AppError).code).toBe('invalid_argument');
  expect((caught as AppError).field).toBe('page_token');
  expect((caught as AppError).message).toMatch(/^page_token: /);
}

describe('page tokens', () => {
  it('round trip keeps bigints, dates and strings', () => {
    const position = { createdAt: new Date('2024-05-06T07:08:09.123Z'), id: 9007199254740993n, title: 'a.b' };
    const token = encodePageToken(fingerprint, position);
    expect(token).not.toBe('');
    expect(decodePageToken(token, fingerprint)).toEqual(position);
    expect(decodePageToken(encodePageToken(fingerprint, 42n), fingerprint)).toBe(42n);
  });

  it('an empty token is the first page', () => {
    expect(decodePageToken('', fingerprint)).toBeNull();
  });

  it('is opaque: URL-safe and does not show the position as text', () => {
    const token = encodePageToken(fingerprint, { title: 'secret title' });
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(token).not.toContain('secret');
  });

  it('a token with any one character changed is rejected', () => {
    const token = encodePageToken(fingerprint, { id: 123n, createdAt: new Date(0) });
    for (let i = 0; i < token.length; i++) {
      const replacement = token[i] === 'A' ? 'B' : 'A';
      expectRejected(token.slice(0, i) + replacement + token.slice(i + 1));
    }
  });

  it('a truncated or extended token is rejected', () => {
    const token = encodePageToken(fingerprint, 123n);
    for (let n = 1; n < token.length; n++) expectRejected(token.slice(0, n));
    expectRejected(`${token}A`);
    expectRejected(`${token}.`);
    expectRejected(`${token}.${token}`);
  });

  it.each(['garbage', '.', '..', 'abc.', '.abc', '!!!.???', ' ', 'null', '{"q":"x","p":1}'])('garbage %j is rejected', (token) => {
    expectRejected(token);
  });

  it('a token used with another fingerprint (other filters or order) is rejected', () => {
    const token = encodePageToken(fingerprint, 5n);
    const otherFilter = queryFingerprint({ list: 'tasks', filter: { projectId: 8n, status: 'pending' }, order: 'created_at' });
    const otherOrder = queryFingerprint({ list: 'tasks', filter: { projectId: 7n, status: 'pending' }, order: 'priority' });
    expect(otherFilter).not.toBe(fingerprint);
    expect(otherOrder).not.toBe(fingerprint);
    expectRejected(token, otherFilter);
    expectRejected(token, otherOrder);
    expectRejected(token, queryFingerprint({ list: 'projects' }));
  });

  it('fingerprints are stable for equal queries', () => {
    expect(queryFingerprint({ list: 'tasks', filter: { projectId: 7n, status: 'pending' }, order: 'created_at' })).toBe(fingerprint);
    // bigint and number ids are different queries, not the same JSON
    expect(queryFingerprint({ id: 1n })).not.toBe(queryFingerprint({ id: 1 }));
  });

  it('a well-formed token whose position is not a valid value is rejected, not an internal error', () => {
    // The checksum is not a secret, so a client can build a token with any payload.
    const forge = (p: unknown) => {
      const payload = Buffer.from(JSON.stringify({ q: fingerprint, p })).toString('base64url');
      const sum = createHash('sha256').update('taskapi.page-token.v1').update(payload).digest('base64url').slice(0, 16);
      return `${payload}.${sum}`;
    };
    // The forgery is right: a forged well-formed position is accepted...
    expect(decodePageToken(forge({ $bigint: '12' }), fingerprint)).toBe(12n);
    // ...and a forged malformed one is the client's error.
    expectRejected(forge({ $bigint: 'not a number' }));
    expectRejected(forge({ id: { $bigint: '1e5' } }));
  });
});

describe('toPage', () => {
  const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1) }));

  it('cuts size + 1 rows to size and returns a token for the last item', () => {
    const page = toPage(rows(6), 5, fingerprint, (r) => r.id);
    expect(page.items.map((r) => r.id)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(page.nextPageToken).not.toBe('');
    expect(decodePageToken(page.nextPageToken, fingerprint)).toBe(5n);
  });

  it('exactly size rows: no next page', () => {
    const page = toPage(rows(5), 5, fingerprint, (r) => r.id);
    expect(page.items).toHaveLength(5);
    expect(page.nextPageToken).toBe('');
  });

  it('fewer rows, or none: no next page', () => {
    expect(toPage(rows(2), 5, fingerprint, (r) => r.id)).toEqual({ items: rows(2), nextPageToken: '' });
    expect(toPage([], 5, fingerprint, (r: { id: bigint }) => r.id)).toEqual({ items: [], nextPageToken: '' });
  });

  it('the position comes from the last item of the page, not the extra row', () => {
    const seen: bigint[] = [];
    toPage(rows(3), 2, fingerprint, (r) => {
      seen.push(r.id);
      return r.id;
    });
    expect(seen).toEqual([2n]);
  });
});
