/**
 * Baseline (b): a bare @grpc/grpc-js server answering GetTask (BASIC) and ListTasks (page by
 * project, with assignee and created_by) with the best hand-written SQL we could write, plus
 * grpc.health.v1.Health/Check (the empty RPC). Same request and response messages as the
 * service (protobuf-es, from src/gen), same client; it exists to show what the service's own
 * layers cost on top of the database.
 *
 * It keeps the service's guarantees: every call runs in a tenant transaction as the role
 * taskapi_app with app.tenant_id set locally (row-level security applies), bounded by the
 * call's deadline, and the API key's hash is verified in the same statement that reads the
 * data (an unknown or revoked key gets no rows). Round trips per call: BEGIN, the settings
 * (one named prepared statement), the data (one named prepared statement), COMMIT. BEGIN and
 * the settings cannot share a message without splicing values into SQL text, and the settings
 * cannot join the data statement: PostgreSQL gives no order of evaluation inside one statement.
 *
 * Environment: DATABASE_URL, PORT (0: any), DB_POOL_MAX. Prints {"listening": port} on stdout.
 */
import { createHash } from 'node:crypto';
import { create, type DescMethodUnary, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { Health, HealthCheckResponse_ServingStatus } from '../../src/gen/grpc/health/v1/health_pb.js';
import {
  TaskPriority,
  TaskSchema,
  TaskStatus,
  WorkerSchema,
  WorkerType,
} from '../../src/gen/taskapi/v1/resources_pb.js';
import { TaskService } from '../../src/gen/taskapi/v1/task_pb.js';
import { GET_TASK, inTenant, LIST_TASKS } from './bare-sql.js';

const env = process.env;
const pool = new pg.Pool({
  connectionString: env.DATABASE_URL,
  max: Number(env.DB_POOL_MAX ?? 10),
  idleTimeoutMillis: 10_000,
  connectionTimeoutMillis: 5_000,
  application_name: 'taskapi-bench-bare',
});
pool.on('error', () => {});
pool.on('connect', (c) => c.on('error', () => {}));

const STATUSES: Record<string, TaskStatus> = {
  pending: TaskStatus.PENDING,
  in_progress: TaskStatus.IN_PROGRESS,
  review: TaskStatus.REVIEW,
  completed: TaskStatus.COMPLETED,
  blocked: TaskStatus.BLOCKED,
};
const PRIORITIES: Record<string, TaskPriority> = {
  low: TaskPriority.LOW,
  medium: TaskPriority.MEDIUM,
  high: TaskPriority.HIGH,
  critical: TaskPriority.CRITICAL,
};

const fail = (code: grpc.status, details: string) => Object.assign(new Error(details), { code, details });

interface Caller {
  tenantId: string;
  keyHash: Buffer;
  timeoutMs: number;
}

function callerOf(call: grpc.ServerUnaryCall<unknown, unknown>): Caller {
  const tenantId = String(call.metadata.get('x-tenant-id')[0] ?? '');
  if (!/^[1-9]\d{0,18}$/.test(tenantId)) throw fail(grpc.status.UNAUTHENTICATED, 'no tenant: send x-tenant-id');
  const m = /^Bearer (tk_(\d+)_[A-Za-z0-9_-]{43})$/.exec(String(call.metadata.get('authorization')[0] ?? ''));
  if (!m) throw fail(grpc.status.UNAUTHENTICATED, 'invalid API key');
  if (m[2] !== tenantId) throw fail(grpc.status.PERMISSION_DENIED, 'the API key belongs to another tenant');
  const deadline = call.getDeadline();
  const timeoutMs =
    deadline instanceof Date
      ? deadline.getTime() - Date.now()
      : Number.isFinite(deadline)
        ? deadline - Date.now()
        : 30_000;
  return {
    tenantId,
    keyHash: createHash('sha256').update(m[1]!).digest(),
    timeoutMs: Math.max(1, Math.min(30_000, timeoutMs)),
  };
}

/** A read-only tenant transaction with the service's settings. */
const readInTenant = <T>(caller: Caller, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
  inTenant(pool, { tenantId: caller.tenantId, timeoutMs: caller.timeoutMs, readOnly: true }, fn);

interface WorkerJson {
  id: string;
  handle: string;
  type: string;
  email: string | null;
  capabilities: string[];
  created_at_ms: number;
}
interface TaskRow {
  ok: boolean;
  id: string | null;
  title: string;
  description: string;
  status: string;
  priority: string;
  tags: string[];
  project_id: string;
  assignee_id: string | null;
  created_by_id: string;
  parent_task_id: string | null;
  /** Epoch milliseconds. */
  created_at: number;
  updated_at: number;
  due_date: number | null;
  version: string;
  lease_expires_at: number | null;
  /** On the first row only. */
  workers: WorkerJson[] | null;
}

type Workers = Map<string, ReturnType<typeof worker>>;

const worker = (w: WorkerJson) =>
  create(WorkerSchema, {
    id: BigInt(w.id),
    handle: w.handle,
    type: w.type === 'agent' ? WorkerType.AGENT : WorkerType.HUMAN,
    email: w.email ?? '',
    capabilities: w.capabilities,
    createdAt: timestampFromMs(Math.trunc(w.created_at_ms)),
  });

/** Each worker's message is built once and shared by every task that names it. */
const workersOf = (rows: TaskRow[]): Workers => new Map((rows[0]?.workers ?? []).map((w) => [w.id, worker(w)]));

const task = (r: TaskRow, workers: Workers) =>
  create(TaskSchema, {
    id: BigInt(r.id!),
    title: r.title,
    description: r.description,
    status: STATUSES[r.status],
    priority: PRIORITIES[r.priority],
    tags: r.tags,
    projectId: BigInt(r.project_id),
    assigneeId: r.assignee_id === null ? undefined : BigInt(r.assignee_id),
    createdById: BigInt(r.created_by_id),
    parentTaskId: r.parent_task_id === null ? undefined : BigInt(r.parent_task_id),
    createdAt: timestampFromMs(Math.trunc(r.created_at)),
    updatedAt: timestampFromMs(Math.trunc(r.updated_at)),
    dueDate: r.due_date === null ? undefined : timestampFromMs(Math.trunc(r.due_date)),
    version: BigInt(r.version),
    leaseExpiresAt: r.lease_expires_at === null ? undefined : timestampFromMs(Math.trunc(r.lease_expires_at)),
    assignee: r.assignee_id === null ? undefined : workers.get(r.assignee_id),
    createdBy: workers.get(r.created_by_id),
  });

function keyChecked(rows: TaskRow[]): TaskRow[] {
  if (!rows[0]?.ok) throw fail(grpc.status.UNAUTHENTICATED, 'invalid API key');
  return rows.filter((r) => r.id !== null);
}

// biome-ignore lint: handlers of different message types in one table
type Handler = (req: any, call: grpc.ServerUnaryCall<any, any>) => Promise<any>;

const handlers = new Map<DescMethodUnary, Handler>([
  [Health.method.check, async () => ({ status: HealthCheckResponse_ServingStatus.SERVING })],
  [
    TaskService.method.getTask,
    async (req, call) => {
      const caller = callerOf(call);
      if (req.id <= 0n) throw fail(grpc.status.INVALID_ARGUMENT, 'id: must be a positive id');
      const rows = await readInTenant(
        caller,
        async (c) =>
          (await c.query<TaskRow>({ ...GET_TASK, values: [caller.tenantId, caller.keyHash, req.id.toString()] })).rows,
      );
      const [row] = keyChecked(rows);
      if (!row) throw fail(grpc.status.NOT_FOUND, 'task not found');
      return { task: task(row, workersOf(rows)) };
    },
  ],
  [
    TaskService.method.listTasks,
    async (req, call) => {
      const caller = callerOf(call);
      if (req.projectId <= 0n)
        throw fail(grpc.status.INVALID_ARGUMENT, 'project_id: this baseline lists by project only');
      const pageSize = req.pageSize === 0 ? 50 : Math.min(req.pageSize, 500);
      const after = req.pageToken === '' ? '0' : Buffer.from(req.pageToken, 'base64url').toString();
      if (!/^\d{1,19}$/.test(after)) throw fail(grpc.status.INVALID_ARGUMENT, 'page_token: is not valid');
      const rows = keyChecked(
        await readInTenant(
          caller,
          async (c) =>
            (
              await c.query<TaskRow>({
                ...LIST_TASKS,
                values: [caller.tenantId, caller.keyHash, req.projectId.toString(), after, pageSize + 1],
              })
            ).rows,
        ),
      );
      const page = rows.slice(0, pageSize);
      const nextPageToken = rows.length > pageSize ? Buffer.from(page[page.length - 1]!.id!).toString('base64url') : '';
      const workers = workersOf(rows);
      return { tasks: page.map((r) => task(r, workers)), nextPageToken };
    },
  ],
]);

const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
for (const [method, handler] of handlers) {
  const definition = {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: false,
    responseStream: false,
    requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
    requestSerialize: (m: never) => Buffer.from(toBinary(method.input, m)),
    responseSerialize: (m: never) => Buffer.from(toBinary(method.output, create(method.output, m))),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
  };
  server.addService({ [method.name]: definition } as grpc.ServiceDefinition, {
    [method.name]: ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      handler(call.request, call).then(
        (res) => callback(null, res),
        (err: Error & { code?: number }) =>
          callback({
            code: typeof err.code === 'number' ? err.code : grpc.status.UNAVAILABLE,
            details: err.message,
          } as grpc.ServiceError),
      );
    }) as grpc.handleUnaryCall<unknown, unknown>,
  });
}

server.bindAsync(`127.0.0.1:${env.PORT ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`bare server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ listening: port })}\n`);
});

const stop = () => {
  server.tryShutdown(() => {
    void pool.end().finally(() => process.exit(0));
  });
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
