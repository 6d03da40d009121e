/** Assertions and small conversions shared by the API suites. */
import { create } from '@bufbuild/protobuf';
import {
  type FieldMask,
  FieldMaskSchema,
  type Timestamp,
  timestampDate,
  timestampFromDate,
  timestampMs,
} from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { expect } from 'vitest';
import type { ApiClient } from './clients.js';

export { Code };

/**
 * THE way to assert a failed call: awaits `call`, which must fail with `code` (or one of
 * `code` when a list is given); when `mentions` are given, the server's message must contain
 * each of them (a field name, usually). Returns the error for further checks.
 */
export async function expectRpcError(
  call: Promise<unknown> | AsyncIterable<unknown>,
  code: Code | readonly Code[],
  ...mentions: string[]
): Promise<ConnectError> {
  const promise =
    Symbol.asyncIterator in call
      ? (async () => {
          for await (const _ of call as AsyncIterable<unknown>);
        })()
      : (call as Promise<unknown>);
  const outcome = await promise.then(
    (res) => ({ ok: true as const, res }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  const expected = typeof code === 'number' ? [code] : code;
  const names = expected.map((c) => Code[c]).join(' or ');
  if (outcome.ok) expect.fail(`expected ${names}, but the call succeeded with ${describe(outcome.res)}`);
  const err = outcome.err;
  if (!(err instanceof ConnectError)) throw err;
  expect(expected, `expected ${names}, got ${Code[err.code]}: ${err.rawMessage}`).toContain(err.code);
  for (const m of mentions) expect(err.rawMessage).toContain(m);
  return err;
}

function describe(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** A timestamp as an ISO string (or undefined), for readable comparisons. */
export const iso = (value: Timestamp | undefined): string | undefined =>
  value === undefined ? undefined : timestampDate(value).toISOString();

/** A Timestamp for a request, from an ISO string or a Date. */
export const ts = (value: string | Date): Timestamp =>
  timestampFromDate(typeof value === 'string' ? new Date(value) : value);

/**
 * A FieldMask from comma-separated paths, lowerCamelCase or snake_case (written the way the
 * JSON form spells them; the message holds the proto field names, which both protocols send).
 */
export const mask = (paths: string): FieldMask =>
  create(FieldMaskSchema, {
    paths: paths
      .split(',')
      .filter(Boolean)
      .map((p) => p.trim().replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)),
  });

/**
 * Every item of a list, following next_page_token; fails when a page token repeats or when
 * there are more than `maxPages` pages.
 */
export async function listAll<R extends { nextPageToken: string }, T>(
  page: (pageToken: string) => Promise<R>,
  items: (res: R) => T[],
  maxPages = 100,
): Promise<{ items: T[]; pages: number }> {
  const all: T[] = [];
  const seen = new Set<string>();
  let pageToken = '';
  for (let pages = 1; pages <= maxPages; pages++) {
    const res = await page(pageToken);
    all.push(...items(res));
    if (!res.nextPageToken) return { items: all, pages };
    expect(seen.has(res.nextPageToken), 'a page token came back twice').toBe(false);
    seen.add(res.nextPageToken);
    pageToken = res.nextPageToken;
  }
  throw new Error(`more than ${maxPages} pages`);
}

/**
 * The id of a new worker of tenant `theirs` that names no worker of tenant `ours`. In
 * schema-per-tenant mode every tenant numbers its rows from 1, so "a worker of another tenant"
 * must be picked among ids that `ours` does not use itself.
 */
export async function foreignWorkerId(ours: ApiClient, theirs: ApiClient, handlePrefix = '@foreign'): Promise<bigint> {
  const { items } = await listAll(
    (pageToken) => ours.WorkerService.listWorkers({ pageSize: 500, pageToken }),
    (r) => r.workers,
  );
  const taken = new Set(items.map((w) => w.id));
  for (let i = 0; i < 50; i++) {
    const { worker } = await theirs.WorkerService.createWorker({ handle: `${handlePrefix}${i}` });
    if (!taken.has(worker!.id)) return worker!.id;
  }
  throw new Error('no worker id of the other tenant is free in this one');
}

/** GetWorkerRequest by id or by handle (its `lookup` oneof). */
export const workerById = (value: bigint) => ({ lookup: { case: 'id' as const, value } });
export const workerByHandle = (value: string) => ({ lookup: { case: 'handle' as const, value } });

/** Milliseconds since the epoch of a timestamp (NaN when unset, which fails any comparison). */
export const ms = (value: Timestamp | undefined): number => (value === undefined ? Number.NaN : timestampMs(value));
