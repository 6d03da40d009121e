/**
 * Proto ↔ domain: domain objects → messages, proto enums ↔ domain values, and the input rule of
 * every project and task field a client may write (message field → checked domain value). Only
 * the RPC layer builds messages; a new column is a line in a message here and, when clients may
 * write it, a line in PROJECT_INPUT / TASK_INPUT.
 *
 * Messages are built as init objects (the shape protobuf-es `create()` takes), not message
 * objects: the unary paths encode them directly (src/rpc/binary.ts), connect-node's paths call
 * `create()` on them, and a page does not pay for hundreds of message objects it only encodes.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { TimestampSchema } from '@bufbuild/protobuf/wkt';
import type { z } from 'zod';
import type * as d from '../domain.js';
import {
  type ProjectSchema,
  ProjectStatus,
  type TaskEventSchema,
  TaskPriority,
  type TaskSchema,
  TaskStatus,
  type TenantSchema,
  type WorkerSchema,
  WorkerType,
} from '../gen/taskapi/v1/resources_pb.js';
import * as v from './validate.js';

function enumMap<D extends string, P extends number>(pairs: [D, P][]) {
  const toProto = new Map(pairs);
  const toDomain = new Map(pairs.map(([a, b]) => [b, a] as const));
  return { toProto: (v: D) => toProto.get(v)!, toDomain: (v: P): D | undefined => toDomain.get(v) };
}

export const taskStatus = enumMap<d.TaskStatus, TaskStatus>([
  ['pending', TaskStatus.PENDING],
  ['in_progress', TaskStatus.IN_PROGRESS],
  ['review', TaskStatus.REVIEW],
  ['completed', TaskStatus.COMPLETED],
  ['blocked', TaskStatus.BLOCKED],
]);
export const taskPriority = enumMap<d.TaskPriority, TaskPriority>([
  ['low', TaskPriority.LOW],
  ['medium', TaskPriority.MEDIUM],
  ['high', TaskPriority.HIGH],
  ['critical', TaskPriority.CRITICAL],
]);
export const workerType = enumMap<d.WorkerType, WorkerType>([
  ['human', WorkerType.HUMAN],
  ['agent', WorkerType.AGENT],
]);
export const projectStatus = enumMap<d.ProjectStatus, ProjectStatus>([
  ['active', ProjectStatus.ACTIVE],
  ['completed', ProjectStatus.COMPLETED],
  ['archived', ProjectStatus.ARCHIVED],
]);

type Timestamp = MessageInitShape<typeof TimestampSchema>;
type Tenant = MessageInitShape<typeof TenantSchema>;
type Worker = MessageInitShape<typeof WorkerSchema>;
type Project = MessageInitShape<typeof ProjectSchema>;
type Task = MessageInitShape<typeof TaskSchema>;
type TaskEvent = MessageInitShape<typeof TaskEventSchema>;

/** As protobuf-es `timestampFromDate` (whole seconds down, nanos never negative). */
export function timestamp(date: Date | null | undefined): Timestamp | undefined {
  if (!date) return undefined;
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}
const ts = timestamp;

/**
 * The input rule of every project field a client may write, by domain name (the update mask names
 * them in snake_case). Typed against the field map: a writable field without a rule does not compile.
 */
const required = <T>(s: z.ZodType<T | null>) => s.refine((x) => x !== null, 'is required when in update_mask');
export const PROJECT_INPUT = {
  name: v.requiredText(v.LIMITS.nameChars),
  description: v.description,
  status: required(v.enumOf(projectStatus.toDomain, null)),
  metadata: v.metadata,
} satisfies Record<keyof d.ProjectChanges, z.ZodType>;

/** The same for tasks. */
export const TASK_INPUT = {
  title: v.title,
  description: v.description,
  status: required(v.enumOf(taskStatus.toDomain, null)),
  priority: required(v.enumOf(taskPriority.toDomain, null)),
  tags: v.tags,
  assigneeId: v.optionalId,
  parentTaskId: v.optionalId,
  dueDate: v.timestamp,
  requiredCapabilities: v.capabilities,
  maxAttempts: v.maxAttempts,
  notBefore: v.timestamp,
} satisfies Record<keyof d.TaskChanges, z.ZodType>;

export const tenantMessage = (t: d.Tenant): Tenant => ({
  id: t.id,
  name: t.name,
  subdomain: t.subdomain,
  createdAt: ts(t.createdAt),
});

// A page shares one domain Worker among all its tasks that name it (src/repositories/tasks.ts);
// its message (an init object) is built once too.
const workerMessages = new WeakMap<d.Worker, Worker>();

export function workerMessage(w: d.Worker): Worker {
  let message = workerMessages.get(w);
  if (!message) {
    message = {
      id: w.id,
      handle: w.handle,
      type: workerType.toProto(w.type),
      email: w.email ?? '',
      capabilities: w.capabilities,
      createdAt: ts(w.createdAt),
    };
    workerMessages.set(w, message);
  }
  return message;
}

export const projectMessage = (p: d.Project): Project => ({
  id: p.id,
  name: p.name,
  description: p.description,
  status: projectStatus.toProto(p.status),
  metadata: p.metadata,
  createdAt: ts(p.createdAt),
  updatedAt: ts(p.updatedAt),
  version: p.version,
});

export function taskMessage(t: d.Task | d.TaskView): Task {
  const view = t as Partial<d.TaskView>;
  return {
    id: t.id,
    title: t.title,
    description: t.description,
    status: taskStatus.toProto(t.status),
    priority: taskPriority.toProto(t.priority),
    tags: t.tags,
    projectId: t.projectId,
    assigneeId: t.assigneeId ?? undefined,
    createdById: t.createdById,
    parentTaskId: t.parentTaskId ?? undefined,
    createdAt: ts(t.createdAt),
    updatedAt: ts(t.updatedAt),
    dueDate: ts(t.dueDate),
    version: t.version,
    leaseExpiresAt: ts(t.leaseExpiresAt),
    requiredCapabilities: t.requiredCapabilities,
    maxAttempts: t.maxAttempts,
    attempts: t.attempts,
    notBefore: ts(t.notBefore),
    lastError: t.lastError,
    assignee: view.assignee ? workerMessage(view.assignee) : undefined,
    createdBy: view.createdBy ? workerMessage(view.createdBy) : undefined,
    project: view.project ? projectMessage(view.project) : undefined,
    parent: view.parent ? taskMessage(view.parent) : undefined,
    subtasks: view.subtasks?.map(taskMessage) ?? [],
  };
}

export const taskEventMessage = (e: d.TaskEvent): TaskEvent => ({
  id: e.id,
  taskId: e.taskId,
  projectId: e.projectId,
  kind: e.kind,
  actorId: e.actorId ?? undefined,
  data: e.data,
  createdAt: ts(e.createdAt),
  taskVersion: e.taskVersion,
});
