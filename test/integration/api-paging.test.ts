/**
 * Page tokens and page sizes, the same contract for every list RPC, over gRPC and Connect: a
 * token is opaque and bound to the list, the filters and the order it was made for, and to the
 * tenant; anything else is INVALID_ARGUMENT naming page_token. A new list RPC gets all of it by
 * adding one entry to LISTS. (What each list returns and in which order: its own API suite.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, startTestApp, type TestApp } from '../helpers/app.js';
import { type ApiClient, ProjectStatus, TaskOrderBy, TaskStatus, WorkerType } from '../helpers/clients.js';
import { Code, expectRpcError } from '../helpers/expect-rpc.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

interface Page {
  ids: bigint[];
  nextPageToken: string;
}

interface ListCase {
  /** `variant` 1 asks for other filters (or another order) than variant 0. */
  list(api: ApiClient, pageSize: number, pageToken: string, variant?: 0 | 1): Promise<Page>;
  /** The admin's list: no filters, and no tenant to bind its tokens to. */
  admin?: boolean;
}

const LISTS: Record<string, ListCase> = {
  ListWorkers: {
    list: async (api, pageSize, pageToken, variant = 0) => {
      const type = variant ? WorkerType.HUMAN : WorkerType.UNSPECIFIED;
      const r = await api.WorkerService.listWorkers({ pageSize, pageToken, type });
      return { ids: r.workers.map((w) => w.id), nextPageToken: r.nextPageToken };
    },
  },
  ListProjects: {
    list: async (api, pageSize, pageToken, variant = 0) => {
      const status = variant ? ProjectStatus.ACTIVE : ProjectStatus.UNSPECIFIED;
      const r = await api.ProjectService.listProjects({ pageSize, pageToken, status });
      return { ids: r.projects.map((p) => p.id), nextPageToken: r.nextPageToken };
    },
  },
  ListTasks: {
    list: async (api, pageSize, pageToken, variant = 0) => {
      const r = await api.TaskService.listTasks({
        pageSize,
        pageToken,
        statuses: variant ? [TaskStatus.PENDING] : [],
      });
      return { ids: r.tasks.map((task) => task.id), nextPageToken: r.nextPageToken };
    },
  },
  'ListTasks (order)': {
    list: async (api, pageSize, pageToken, variant = 0) => {
      const orderBy = variant ? TaskOrderBy.DUE_DATE : TaskOrderBy.PRIORITY;
      const r = await api.TaskService.listTasks({ pageSize, pageToken, orderBy });
      return { ids: r.tasks.map((task) => task.id), nextPageToken: r.nextPageToken };
    },
  },
  ListTenants: {
    admin: true,
    list: async (api, pageSize, pageToken) => {
      const r = await api.TenantService.listTenants({ pageSize, pageToken });
      return { ids: r.tenants.map((x) => x.id), nextPageToken: r.nextPageToken };
    },
  },
};

/** A token with one character changed: in the payload (before the dot) or in the checksum. */
function tamper(token: string, where: 'payload' | 'checksum'): string {
  const at = where === 'payload' ? token.indexOf('.') - 2 : token.length - 1;
  expect(at, `a token of the form payload.checksum: ${token}`).toBeGreaterThan(0);
  return `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
}

for (const protocol of PROTOCOLS) {
  describe(protocol, () => {
    let api: ApiClient;
    let admin: ApiClient;
    let other: ApiClient;

    /** A tenant with three workers, projects and tasks: every list has more than one page of 2. */
    const seeded = async () => {
      const c = t.client(protocol, (await t.tenant()).headers);
      const workers = [];
      for (const handle of ['@p1', '@p2', '@p3']) workers.push((await c.WorkerService.createWorker({ handle })).worker);
      await c.ProjectService.createProject({ name: 'one' });
      await c.ProjectService.createProject({ name: 'two' });
      await c.ProjectService.createProjectWithTasks({
        name: 'three',
        taskTitles: ['a', 'b', 'c'],
        createdById: workers[0]!.id,
      });
      return c;
    };

    beforeAll(async () => {
      api = await seeded();
      other = await seeded();
      await t.tenant(); // three tenants at least
      admin = t.client(protocol, { authorization: `Bearer ${t.adminToken}` });
    });

    for (const [name, c] of Object.entries(LISTS)) {
      describe(name, () => {
        const client = () => (c.admin ? admin : api);

        it('follows its own token, and refuses a tampered one, garbage, and a token of other filters', async () => {
          const first = await c.list(client(), 2, '');
          expect(first.ids).toHaveLength(2);
          const token = first.nextPageToken;
          expect(token).not.toBe('');
          for (const bad of [tamper(token, 'payload'), tamper(token, 'checksum'), 'not-a-token', `${token}x`]) {
            await expectRpcError(c.list(client(), 2, bad), Code.InvalidArgument, 'page_token');
          }
          if (!c.admin) await expectRpcError(c.list(client(), 2, token, 1), Code.InvalidArgument, 'page_token');
          // The untampered token still works, and continues where the first page ended.
          const second = await c.list(client(), 2, token);
          expect(second.ids.length).toBeGreaterThan(0);
          for (const id of second.ids) expect(first.ids).not.toContain(id);
        });

        it('refuses page_size over 500 or below 0, naming page_size', async () => {
          await expectRpcError(c.list(client(), 501, ''), Code.InvalidArgument, 'page_size');
          await expectRpcError(c.list(client(), -1, ''), Code.InvalidArgument, 'page_size');
          expect((await c.list(client(), 500, '')).nextPageToken).toBe('');
        });

        if (!c.admin) {
          it("refuses another tenant's token", async () => {
            const { nextPageToken } = await c.list(api, 1, '');
            expect(nextPageToken).not.toBe('');
            await expectRpcError(c.list(other, 1, nextPageToken), Code.InvalidArgument, 'page_token');
          });
        }
      });
    }
  });
}
