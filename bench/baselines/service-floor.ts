/**
 * Baseline (a), the database floor: the service's own service layer (src/services on src/db,
 * hence the very same SQL and transactions), called in process — no RPC, no serialization.
 * Each call carries the tenant's API key hash, so the key check runs in the call's transaction
 * exactly as it does behind the RPC layer. Only the request fields the scenarios use are mapped.
 */
import { createHash } from 'node:crypto';
import type { DescMethodUnary } from '@bufbuild/protobuf';
import { loadConfig } from '../../src/config/index.js';
import { openDatabase } from '../../src/db/index.js';
import { TaskView } from '../../src/gen/taskapi/v1/task_pb.js';
import { silentLogger } from '../../src/logger.js';
import type { TaskFilter } from '../../src/repositories/tasks.js';
import type { Caller } from '../../src/services/caller.js';
import { createServices } from '../../src/services/index.js';
import type { TenantData } from '../lib/data.js';

const EMPTY_FILTER: TaskFilter = {
  projectId: null,
  statuses: [],
  assigneeId: null,
  createdById: null,
  parentTaskId: null,
  tagsAll: [],
  priority: null,
  dueBefore: null,
  dueAfter: null,
};

export interface Floor {
  /** Runs the scenario's call; `method` null is the raw insert. Returns the response's shape. */
  // biome-ignore lint: mirrors the response message's fields
  call(method: DescMethodUnary | null, request: any, tenant: TenantData): Promise<any>;
  close(): Promise<void>;
}

/** @param env DATABASE_URL and the pool settings the service runs with. */
export async function openFloor(env: Record<string, string>): Promise<Floor> {
  const config = loadConfig({ ...env, LOG_LEVEL: 'silent', MIGRATE_ON_START: 'false' });
  const database = await openDatabase(config, silentLogger);
  const services = createServices(database.db, database.migrator, config, silentLogger);
  // By key: the claim queue's agents share a tenant, each with its own key.
  const callers = new Map<string, Caller>();
  const callerOf = (t: TenantData): Caller => {
    let c = callers.get(t.key);
    if (!c) {
      c = { tenantId: BigInt(t.id), apiKeyHash: createHash('sha256').update(t.key).digest() };
      callers.set(t.key, c);
    }
    return c;
  };
  const view = (v: number) => (v === TaskView.FULL ? ('full' as const) : ('basic' as const));
  return {
    async call(method, r, tenant) {
      const caller = callerOf(tenant);
      switch (method?.name ?? 'raw') {
        case 'GetTask':
          return { task: await services.tasks.get(caller, r.id, view(r.view)) };
        case 'ListTasks': {
          const page = await services.tasks.list(caller, {
            filter: { ...EMPTY_FILTER, projectId: r.projectId ?? null, tagsAll: r.tagsAll ?? [] },
            order: 'created',
            pageSize: r.pageSize,
            pageToken: '',
            view: view(r.view),
          });
          return { tasks: page.items, nextPageToken: page.nextPageToken };
        }
        case 'CreateTask':
          return {
            task: await services.tasks.create(caller, {
              projectId: r.projectId,
              title: r.title,
              description: '',
              status: 'pending',
              priority: 'high',
              tags: r.tags,
              assigneeId: r.assigneeId,
              createdById: r.createdById,
              parentTaskId: null,
              dueDate: null,
              requiredCapabilities: [],
              maxAttempts: 0,
              notBefore: null,
              requestId: '',
            }),
          };
        case 'UpdateTask':
          return {
            task: await services.tasks.update(caller, {
              id: r.task.id,
              changes: { title: r.task.title },
              expectedVersion: null,
              leaseToken: null,
            }),
          };
        case 'CreateProjectWithTasks':
          return services.projects.createWithTasks(caller, {
            name: r.name,
            description: '',
            metadata: {},
            taskTitles: r.taskTitles,
            createdById: r.createdById,
            requestId: '',
          });
        case 'ClaimTask': {
          // The key is bound to the agent's worker: no worker_id, as the agents send it.
          const claim = await services.tasks.claim(caller, {
            workerId: null,
            projectId: r.projectId,
            tagsAll: [],
            leaseSeconds: r.leaseSeconds,
            requestId: '',
          });
          return claim.task ? { task: claim.task, leaseToken: claim.leaseToken } : {};
        }
        case 'ReleaseTask':
          return {
            task: await services.tasks.release(caller, {
              id: r.id,
              leaseToken: r.leaseToken,
              status: 'pending',
              error: '',
              retryAfterSeconds: 0,
            }),
          };
        case 'CompleteProjectTasks':
          return { completedCount: BigInt(await services.projects.completeTasks(caller, r.projectId)) };
        case 'raw': {
          // The least a 1000-task insert can cost with the same guarantees: one tenant
          // transaction (role, tenant, RLS) and one set-based statement.
          const inserted = await database.db.withTenantTransaction(caller.tenantId, (tx) =>
            tx.exec(
              `insert into tasks (tenant_id, project_id, title, created_by_id)
               select $1::bigint, $2::bigint, u.title, $4::bigint from unnest($3::text[]) as u(title)`,
              [tenant.id, r.projectId, r.titles, r.createdById],
            ),
          );
          return { inserted };
        }
        default:
          throw new Error(`the floor has no ${method?.name}`);
      }
    },
    close: () => database.close(),
  };
}
