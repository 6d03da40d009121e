/**
 * Every page token a client can send is INVALID_ARGUMENT unless this service issued it for
 * that list and those filters — never INTERNAL. Fuzzed over every list RPC, through real
 * clients: random strings, mutations of real tokens, and tokens correctly signed under the
 * server's key (as a leaked key would allow) around payloads of every shape.
 */
import { createHmac } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { type ApiClient, TaskOrderBy } from '../helpers/clients.js';
import { expectRpcError } from '../helpers/expect-rpc.js';

const SECRET = 'fuzz-test-page-token-secret-0123456789';
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CASES_PER_LIST = 60;

/** mulberry32: a seeded generator, so that a failure can be replayed with FUZZ_SEED. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ !"{}[]:,é\u0000😀';
  const string = (max: number) => Array.from({ length: int(max) }, () => pick([...ALPHABET])).join('');
  const json = (depth = 0): unknown => {
    switch (int(depth > 2 ? 6 : 8)) {
      case 0:
        return null;
      case 1:
        return pick([true, false]);
      case 2:
        return pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, Number.MAX_SAFE_INTEGER]);
      case 3:
        // never a plain decimal: those are valid ids, tested on purpose below
        return `x${string(12)}`;
      case 4:
        return pick(['-1', '1e3', '99999999999999999999', '9223372036854775808', '', ' 1', '0x10']);
      case 5:
        return pick(['created', 'due_date', 'priority', '__proto__', 'constructor']);
      case 6:
        return Array.from({ length: int(4) }, () => json(depth + 1));
      default: {
        const keys = ['id', 'order', 'dueMs', 'rank', 'q', 'p', '__proto__', string(5)];
        return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(keys), json(depth + 1)]));
      }
    }
  };
  return { int, pick, string, json };
}

const b64 = (s: string) => Buffer.from(s).toString('base64url');
function sign(payload: string): string {
  const sig = createHmac('sha256', SECRET)
    .update('taskapi.page-token.v2')
    .update('\0')
    .update(payload)
    .digest()
    .subarray(0, 16);
  return `${payload}.${sig.toString('base64url')}`;
}
const signedJson = (value: unknown) => sign(b64(JSON.stringify(value)));

/** Tokens a client might send, built from a real one. */
function fuzzTokens(valid: string, seed: number): string[] {
  const g = generator(seed);
  const [payload, sig] = valid.split('.') as [string, string];
  const { q } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { q: string };
  const mutate = (s: string) => {
    const i = g.int(s.length);
    switch (g.int(4)) {
      case 0:
        return s.slice(0, i) + s.slice(i + 1);
      case 1:
        return s.slice(0, i) + g.pick([...'AZaz09-_.=!']) + s.slice(i);
      case 2:
        return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      default:
        return s.slice(0, i);
    }
  };
  const out: string[] = [];
  for (let n = 0; n < CASES_PER_LIST; n++) {
    switch (n % 6) {
      case 0:
        out.push(g.string(60) || 'x');
        break;
      case 1:
        out.push(`${b64(g.string(40))}.${b64(g.string(20))}`);
        break;
      case 2:
        out.push(mutate(valid));
        break;
      case 3:
        // the payload changed, the signature kept
        out.push(`${b64(JSON.stringify({ q, p: g.json() }))}.${sig}`);
        break;
      case 4:
        // correctly signed, right query, any position: the schema must refuse it
        out.push(signedJson({ q, p: g.json() }));
        break;
      default:
        // correctly signed envelopes of the wrong shape
        out.push(
          g.pick([
            signedJson(g.json()),
            signedJson({ q }),
            signedJson({ p: '1' }),
            signedJson({ q, p: '1', x: 1 }),
            sign(b64(g.string(30))),
          ]),
        );
    }
  }
  return out.filter((t) => t !== '' && t !== valid);
}

/** The page of a list request; every list RPC takes these two. */
type Page = { pageSize?: number; pageToken?: string };

interface ListCase {
  readonly name: string;
  /** The list call, with the case's own filters and `page`. */
  readonly list: (client: ApiClient, page: Page) => Promise<{ nextPageToken: string }>;
  /** A correctly signed position this list accepts. */
  readonly position: unknown;
  readonly admin?: boolean;
}

const LISTS: ListCase[] = [
  {
    name: 'ListTasks (created)',
    list: (c, page) => c.TaskService.listTasks(page),
    position: { order: 'created', id: '1' },
  },
  {
    name: 'ListTasks (due_date)',
    list: (c, page) => c.TaskService.listTasks({ orderBy: TaskOrderBy.DUE_DATE, ...page }),
    position: { order: 'due_date', dueMs: null, id: '1' },
  },
  {
    name: 'ListTasks (priority)',
    list: (c, page) => c.TaskService.listTasks({ orderBy: TaskOrderBy.PRIORITY, ...page }),
    position: { order: 'priority', rank: 2, id: '1' },
  },
  { name: 'ListProjects', list: (c, page) => c.ProjectService.listProjects(page), position: '1' },
  { name: 'ListWorkers', list: (c, page) => c.WorkerService.listWorkers(page), position: '1' },
  { name: 'ListTenants', list: (c, page) => c.TenantService.listTenants(page), position: '0', admin: true },
];

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { PAGE_TOKEN_SECRET: SECRET } });
});
afterAll(async () => {
  await t?.stop();
});

for (const protocol of PROTOCOLS) {
  describe(`${protocol} (FUZZ_SEED=${SEED})`, () => {
    let api: ApiClient;
    let admin: ApiClient;
    let other: ApiClient;

    beforeAll(async () => {
      const tenant = await t.tenant({ withWorker: true });
      api = t.client(protocol, tenant.headers);
      admin = t.client(protocol, { authorization: `Bearer ${t.adminToken}` });
      other = t.client(protocol, (await t.tenant()).headers);
      await t.tenant();
      await api.WorkerService.createWorker({ handle: '@second' });
      await api.ProjectService.createProject({ name: 'second' });
      await api.ProjectService.createProjectWithTasks({ name: 'p', taskTitles: ['a', 'b', 'c'] });
    });

    /** A real first-page token of the list (page size 1). */
    const firstToken = async (c: ListCase) => {
      const res = await c.list(c.admin ? admin : api, { pageSize: 1 });
      expect(res.nextPageToken, `${c.name} returned no next page`).not.toBe('');
      return res.nextPageToken;
    };

    for (const [i, c] of LISTS.entries()) {
      it(`${c.name}: every forged, mutated or random token is INVALID_ARGUMENT`, async () => {
        const client = c.admin ? admin : api;
        const valid = await firstToken(c);
        // The real token works, and so does a correctly signed well-formed position: the fuzz
        // below fails only on what is wrong with the token.
        await c.list(client, { pageSize: 1, pageToken: valid });
        const { q } = JSON.parse(Buffer.from(valid.split('.')[0]!, 'base64url').toString('utf8')) as { q: string };
        await c.list(client, { pageSize: 1, pageToken: signedJson({ q, p: c.position }) });

        const failures: string[] = [];
        for (const token of fuzzTokens(valid, SEED + i)) {
          const outcome = await c.list(client, { pageToken: token }).then(
            () => 'accepted',
            (err: unknown) => (err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : String(err)),
          );
          if (!outcome.startsWith(`${Code[Code.InvalidArgument]}: page_token: `))
            failures.push(`${JSON.stringify(token)} → ${outcome}`);
        }
        expect(failures, `FUZZ_SEED=${SEED}`).toEqual([]);
      });
    }

    it('a token of one list is refused by another, and one of another tenant too', async () => {
      const tasks = await firstToken(LISTS[0]!);
      const projects = await firstToken(LISTS[3]!);
      await expectRpcError(api.ProjectService.listProjects({ pageToken: tasks }), Code.InvalidArgument, 'page_token');
      await expectRpcError(api.TaskService.listTasks({ pageToken: projects }), Code.InvalidArgument, 'page_token');
      await expectRpcError(
        api.TaskService.listTasks({ orderBy: TaskOrderBy.PRIORITY, pageToken: tasks }),
        Code.InvalidArgument,
        'page_token',
      );
      await expectRpcError(
        other.ProjectService.listProjects({ pageToken: projects }),
        Code.InvalidArgument,
        'page_token',
      );
    });
  });
}
