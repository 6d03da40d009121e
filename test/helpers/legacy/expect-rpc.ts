/** Small assertions shared by the API suites. */
import { expect } from 'vitest';
import { type ApiClient, type Json, RpcError } from './clients.js';

/**
 * Awaits a call that must fail with `code`; when `mentions` is given, the message must contain
 * each of those strings (a field name, usually). Returns the error.
 */
export async function expectRpcError(call: Promise<unknown>, code: string, ...mentions: string[]): Promise<RpcError> {
  const outcome = await call.then(
    (res) => ({ ok: true as const, res }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) expect.fail(`expected ${code}, but the call succeeded with ${JSON.stringify(outcome.res)}`);
  const err = outcome.err;
  expect(err).toBeInstanceOf(RpcError);
  expect((err as RpcError).code, (err as Error).message).toBe(code);
  for (const m of mentions) expect((err as RpcError).message).toContain(m);
  return err as RpcError;
}

/** A timestamp as the clients return it, normalized (Connect may omit zero fractions). */
export const iso = (value: string | undefined): string | undefined =>
  value === undefined ? undefined : new Date(value).toISOString();

/**
 * Every item of a list, following next_page_token; fails when a page token repeats or when
 * there are more than `maxPages` pages.
 */
export async function listAll(
  api: ApiClient,
  service: string,
  method: string,
  field: string,
  request: Json,
  maxPages = 100,
): Promise<{ items: Json[]; pages: number }> {
  const items: Json[] = [];
  const seen = new Set<string>();
  let pageToken = '';
  for (let pages = 1; pages <= maxPages; pages++) {
    const res = await api.call(service, method, { ...request, pageToken });
    items.push(...(res[field] ?? []));
    if (!res.nextPageToken) return { items, pages };
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
export async function foreignWorkerId(ours: ApiClient, theirs: ApiClient, handlePrefix = '@foreign'): Promise<string> {
  const taken = new Set(
    (await listAll(ours, 'WorkerService', 'ListWorkers', 'workers', { pageSize: 500 })).items.map((w) => w.id),
  );
  for (let i = 0; i < 50; i++) {
    const { worker } = await theirs.call('WorkerService', 'CreateWorker', { handle: `${handlePrefix}${i}` });
    if (!taken.has(worker.id)) return worker.id;
  }
  throw new Error('no worker id of the other tenant is free in this one');
}

/**
 * Calls `probe` until `done` holds for its result, and returns that result; fails after
 * `timeoutMs`. For conditions that come true with time (a lease running out): the wait ends as
 * soon as the condition holds, and the bound keeps a broken service from hanging the test.
 */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not reached within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
