/**
 * The scenario table: every measured call, the protocols it runs on, and how a request is made.
 * Both the orchestrator and the load generators read it, so a scenario is added in one place.
 * Calls are spread over tenants and rows (seeded random), so no cache is trivially hot.
 */
import type { DescMethodUnary } from '@bufbuild/protobuf';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { ProjectService } from '../../src/gen/taskapi/v1/project_pb.js';
import { TaskPriority, TaskStatus } from '../../src/gen/taskapi/v1/resources_pb.js';
import { TaskService, TaskView } from '../../src/gen/taskapi/v1/task_pb.js';
import type { RpcClient } from './clients.js';
import { agentCaller, type BenchData, pick, type TenantData } from './data.js';

/**
 * grpc: @grpc/grpc-js client; connect-*: @connectrpc/connect-node Connect protocol (HTTP/1.1 JSON,
 * HTTP/1.1 binary, HTTP/2 binary); floor: the service layer in process, no RPC (baseline a);
 * bare: a bare grpc-js server with hand-written SQL, called by the same grpc-js client (baseline b);
 * raw: hand-written claim and release statements on a plain pg pool, no service (the claim baseline);
 * plain-json: the Connect JSON call over HTTP/1.1 from Node's own `http` client, no connect-es (a
 * diagnostic of the client's share, on the calls with targets; see bench/README.md).
 */
export type Protocol =
  | 'grpc'
  | 'connect-json'
  | 'connect-binary'
  | 'connect-h2'
  | 'plain-json'
  | 'floor'
  | 'bare'
  | 'raw';
export const SERVICE_PROTOCOLS = ['grpc', 'connect-json', 'connect-binary', 'connect-h2'] as const;
const ALL = [...SERVICE_PROTOCOLS, 'floor'] as Protocol[];

// biome-ignore lint: responses are checked structurally, whatever client produced them
type Response = any;

export interface CallRequest {
  /** null: a call without tenant headers (health). */
  readonly tenant: TenantData | null;
  readonly request: Record<string, unknown>;
}

export interface Scenario {
  /** Stable name, also the key of the results. */
  readonly id: string;
  /** The RPC, or null for a database-only baseline (floor only). */
  readonly method: DescMethodUnary | null;
  readonly protocols: readonly Protocol[];
  /** Fixed concurrency (latency-bound heavy calls); otherwise --callers. */
  readonly callers?: number;
  /**
   * Each call needs fresh data made by the orchestrator right before it (set-based, untimed);
   * `params` carries what was made.
   */
  readonly perCallSetup?: 'project-of-pending-tasks';
  /** Reported in a table of its own (the claim queue: its ratios are to the raw baseline). */
  readonly table?: 'claims';
  /** Needs this part of the data (set up by the PostgreSQL section only). */
  readonly needs?: 'claim';
  /** `caller`: the index of the concurrent caller making the request. */
  request(data: BenchData, rnd: () => number, params: Record<string, string> | undefined, caller: number): CallRequest;
  /** Why a response is wrong (counted as an error), or undefined. */
  check?(res: Response, req: CallRequest): string | undefined;
  /**
   * The rest of the unit of work after a correct response, untimed but awaited before the
   * caller's next call (and before a run ends, so its server CPU is in the run's): the release of
   * a claimed task. Why it failed (counted as an error), or undefined.
   */
  after?(client: RpcClient, res: Response, req: CallRequest): Promise<string | undefined>;
}

const tenantOf = (data: BenchData, rnd: () => number) => pick(rnd, data.tenants);
let counter = 0;
const unique = () => `${process.pid}-${++counter}`;

export const TITLES_PER_PROJECT = 1000;
export const PENDING_TASKS_PER_PROJECT = 10_000;
export const CLAIM_AGENTS = 16;
export const CLAIM_LEASE_SECONDS = 300;
export const WATCH_TASKS = 50;
/** The CreateProjectWithTasks call and the raw insert its target is held against. */
export const CREATE_WITH_TASKS_ID = `CreateProjectWithTasks (${TITLES_PER_PROJECT} titles)`;
export const RAW_INSERT_ID = `raw insert of ${TITLES_PER_PROJECT} tasks (one unnest statement)`;

/**
 * Tasks claimed and not yet given back, in this process: a claim that hands out a task another
 * agent still holds is an error ("no task is ever held by two workers"). An id leaves the set
 * right before its release is sent, so a claim racing the release's commit cannot trip it.
 */
const held = new Set<bigint>();

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'Health/Check (empty RPC)',
    method: Health.method.check,
    protocols: [...SERVICE_PROTOCOLS, 'plain-json', 'bare'],
    request: () => ({ tenant: null, request: {} }),
    check: (res) => (res.status === 1 ? undefined : `status ${res.status}, not SERVING`),
  },
  {
    id: 'GetTask BASIC',
    method: TaskService.method.getTask,
    protocols: [...ALL, 'plain-json', 'bare'],
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return { tenant, request: { id: BigInt(pick(rnd, tenant.taskIds)), view: TaskView.BASIC } };
    },
    check: (res, req) =>
      res.task?.id === req.request.id && res.task.createdBy ? undefined : 'wrong task or no created_by',
  },
  {
    id: 'GetTask FULL',
    method: TaskService.method.getTask,
    protocols: ALL,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return { tenant, request: { id: BigInt(pick(rnd, tenant.taskIds)), view: TaskView.FULL } };
    },
    check: (res, req) => (res.task?.id === req.request.id && res.task.project ? undefined : 'wrong task or no project'),
  },
  {
    id: 'ListTasks by project, 50 with relations',
    method: TaskService.method.listTasks,
    protocols: [...ALL, 'plain-json', 'bare'],
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return {
        tenant,
        request: { projectId: BigInt(pick(rnd, tenant.projectIds)), pageSize: 50, view: TaskView.BASIC },
      };
    },
    check: (res) =>
      res.tasks?.length === 50 && res.tasks[49].createdBy ? undefined : `page of ${res.tasks?.length}, not 50`,
  },
  {
    id: 'ListTasks tags_all, 50 with relations',
    method: TaskService.method.listTasks,
    protocols: ALL,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return { tenant, request: { tagsAll: [...pick(rnd, data.tagPairs)], pageSize: 50, view: TaskView.BASIC } };
    },
    check: (res) => (res.tasks?.length > 0 ? undefined : 'empty page'),
  },
  {
    id: 'CreateTask',
    method: TaskService.method.createTask,
    protocols: ALL,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return {
        tenant,
        request: {
          projectId: BigInt(pick(rnd, tenant.projectIds)),
          title: `bench task ${unique()}`,
          priority: TaskPriority.HIGH,
          tags: ['bench', 'new'],
          assigneeId: BigInt(pick(rnd, tenant.workerIds)),
          createdById: BigInt(pick(rnd, tenant.workerIds)),
        },
      };
    },
    check: (res) => (res.task?.id > 0n ? undefined : 'no task'),
  },
  {
    id: 'UpdateTask (title)',
    method: TaskService.method.updateTask,
    protocols: ALL,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      return {
        tenant,
        request: {
          task: { id: BigInt(pick(rnd, tenant.taskIds)), title: `renamed ${unique()}` },
          updateMask: { paths: ['title'] },
        },
      };
    },
    check: (res, req) => (res.task?.id === (req.request.task as { id: bigint }).id ? undefined : 'wrong task'),
  },
  {
    id: CREATE_WITH_TASKS_ID,
    method: ProjectService.method.createProjectWithTasks,
    protocols: ALL,
    callers: 1,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      const n = unique();
      return {
        tenant,
        request: {
          name: `bench project ${n}`,
          taskTitles: Array.from({ length: TITLES_PER_PROJECT }, (_, i) => `bench ${n} task ${i}`),
          createdById: BigInt(pick(rnd, tenant.workerIds)),
        },
      };
    },
    check: (res) =>
      res.tasks?.length === TITLES_PER_PROJECT ? undefined : `${res.tasks?.length} tasks, not ${TITLES_PER_PROJECT}`,
  },
  {
    // Baseline for the target "CreateProjectWithTasks(1000) ≤ 2× one raw set-based insert".
    id: RAW_INSERT_ID,
    method: null,
    protocols: ['floor'],
    callers: 1,
    request: (data, rnd) => {
      const tenant = tenantOf(data, rnd);
      const n = unique();
      return {
        tenant,
        request: {
          projectId: pick(rnd, tenant.projectIds),
          titles: Array.from({ length: TITLES_PER_PROJECT }, (_, i) => `raw ${n} task ${i}`),
          createdById: pick(rnd, tenant.workerIds),
        },
      };
    },
    check: (res) => (res.inserted === TITLES_PER_PROJECT ? undefined : `${res.inserted} rows`),
  },
  {
    id: `CompleteProjectTasks (${PENDING_TASKS_PER_PROJECT} pending)`,
    method: ProjectService.method.completeProjectTasks,
    protocols: ALL,
    callers: 1,
    perCallSetup: 'project-of-pending-tasks',
    request: (data, _rnd, params) => {
      const tenant = data.tenants.find((t) => t.id === params!.tenantId)!;
      return { tenant, request: { projectId: BigInt(params!.projectId!) } };
    },
    check: (res) =>
      BigInt(res.completedCount ?? -1) === BigInt(PENDING_TASKS_PER_PROJECT)
        ? undefined
        : `completed ${res.completedCount}`,
  },
  {
    // 16 agents, each with its own key bound to its worker, claim from one project of plenty of
    // claimable tasks and give each task straight back (release as pending), so the queue never
    // drains and every claim contends for the same head of the queue. Beside it, the raw baseline.
    id: `ClaimTask contended (${CLAIM_AGENTS} agents, one project)`,
    method: TaskService.method.claimTask,
    protocols: [...ALL, 'raw'],
    callers: CLAIM_AGENTS,
    table: 'claims',
    needs: 'claim',
    request: (data, _rnd, _params, caller) => {
      const claim = data.claim!;
      return {
        tenant: agentCaller(claim, caller),
        request: { projectId: BigInt(claim.projectId), leaseSeconds: CLAIM_LEASE_SECONDS },
      };
    },
    check: (res, req) => {
      const task = res.task;
      if (!task) return 'nothing claimable: the queue ran dry';
      const agent = req.tenant!.workerIds[0];
      if (String(task.assigneeId) !== agent) return `claimed for worker ${task.assigneeId}, not ${agent}`;
      if (!(BigInt(res.leaseToken ?? 0) > 0n)) return 'no lease token';
      if (held.has(task.id)) return `task ${task.id} handed out while another agent holds it`;
      held.add(task.id);
      return undefined;
    },
    after: async (client, res, req) => {
      held.delete(res.task.id);
      try {
        const released = await client.call(
          TaskService.method.releaseTask,
          { id: res.task.id, leaseToken: BigInt(res.leaseToken), status: TaskStatus.PENDING },
          req.tenant,
        );
        return released.task?.id === res.task.id ? undefined : 'release: wrong task';
      } catch (err) {
        return `release: ${(err as Error).message}`;
      }
    },
  },
];

/**
 * WatchTasks is a stream, not a call: it has a run of its own (bench/load/watch.ts). Streams on
 * every protocol watch one project while a writer updates its tasks at a fixed rate.
 */
export const WATCH = {
  id: 'WatchTasks delivery latency',
  protocols: SERVICE_PROTOCOLS,
  /** UpdateTask calls per second, sent on schedule (open loop). */
  writesPerSecond: 20,
} as const;

export const scenarioById = (id: string): Scenario => {
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`unknown scenario ${id}`);
  return s;
};
