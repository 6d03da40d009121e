import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import { invalidArgument } from '../../errors.js';
import { TaskOrderBy, type TaskService, TaskView } from '../../gen/taskapi/v1/task_pb.js';
import type { ClaimWaitService } from '../../services/claim-wait.js';
import type { TaskChanges, TaskService as Tasks } from '../../services/tasks.js';
import { callerOf } from '../context.js';
import { TASK_INPUT, taskEventMessage, taskMessage, taskPriority, taskStatus, timestamp } from '../convert.js';
import * as v from '../validate.js';
import { fieldsToWrite } from './update-mask.js';

const view = z
  .number()
  .refine((x) => x in TaskView, 'is not a known value')
  .transform((x) => (x === TaskView.FULL ? ('full' as const) : ('basic' as const)));

const ORDERS = {
  [TaskOrderBy.UNSPECIFIED]: 'created',
  [TaskOrderBy.CREATED_AT]: 'created',
  [TaskOrderBy.DUE_DATE]: 'due_date',
  [TaskOrderBy.PRIORITY]: 'priority',
} as const;
const orderBy = z
  .number()
  .refine((x) => x in ORDERS, 'is not a known value')
  .transform((x) => ORDERS[x as keyof typeof ORDERS]);

/** The task fields an update may write, as the update mask names them. */
const UPDATABLE = (Object.keys(TASK_INPUT) as (keyof TaskChanges)[]).map(v.snake);

const create = z.object({
  ...TASK_INPUT,
  // On create, UNSPECIFIED means the default.
  status: v.enumOf(taskStatus.toDomain, 'pending'),
  priority: v.enumOf(taskPriority.toDomain, 'medium'),
  projectId: v.id,
  createdById: v.optionalId,
  requestId: v.requestId,
});

const claim = z.object({
  workerId: v.optionalId,
  projectId: v.optionalId,
  tagsAll: v.tags,
  leaseSeconds: v.leaseSeconds,
  requestId: v.requestId,
  waitSeconds: v.waitSeconds,
});
const heartbeat = z.object({ id: v.id, leaseToken: v.leaseToken, leaseSeconds: v.leaseSeconds });
const RELEASE_STATUSES = ['completed', 'review', 'blocked', 'pending'] as const;
const release = z.object({
  id: v.id,
  leaseToken: v.leaseToken,
  status: v
    .enumOf(taskStatus.toDomain, null)
    .refine(
      (s): s is (typeof RELEASE_STATUSES)[number] => RELEASE_STATUSES.includes(s as never),
      'must be COMPLETED, REVIEW, BLOCKED or PENDING',
    ),
  error: v.lastError,
  retryAfterSeconds: v.retryAfterSeconds,
});
const tree = z.object({
  id: v.id,
  maxDepth: z
    .number()
    .int()
    .min(0, `must be between 0 (all) and ${v.LIMITS.treeDepth.max}`)
    .max(v.LIMITS.treeDepth.max, `must be between 0 (all) and ${v.LIMITS.treeDepth.max}`)
    .transform((d) => (d === 0 ? null : d)),
});
const events = z
  .object({ taskId: v.optionalId, projectId: v.optionalId, pageSize: v.pageSize, pageToken: v.pageToken })
  .refine((r) => (r.taskId === null) !== (r.projectId === null), {
    message: 'give exactly one of task_id and project_id',
    path: ['taskId'],
  });

const list = z.object({
  projectId: v.optionalId,
  statuses: z.array(v.enumOf(taskStatus.toDomain, null).refine((s) => s !== null, 'must not be UNSPECIFIED')).max(5),
  assigneeId: v.optionalId,
  createdById: v.optionalId,
  parentTaskId: v.optionalId,
  tagsAll: v.tags,
  priority: v.enumOf(taskPriority.toDomain, null),
  dueBefore: v.timestamp,
  dueAfter: v.timestamp,
  orderBy,
  pageSize: v.pageSize,
  pageToken: v.pageToken,
  view,
});

// WatchTasks (server streaming) is served by its own handler; every other method is here.
export function taskHandlers(
  tasks: Tasks,
  claimWait: ClaimWaitService,
): Omit<ServiceImpl<typeof TaskService>, 'watchTasks'> {
  return {
    async createTask(req, ctx) {
      return { task: taskMessage(await tasks.create(callerOf(ctx), v.check(create, req))) };
    },
    async getTask(req, ctx) {
      const task = await tasks.get(callerOf(ctx), v.check(v.id, req.id, 'id'), v.check(view, req.view, 'view'));
      return { task: taskMessage(task) };
    },
    async listTasks(req, ctx) {
      const { orderBy: order, pageSize, pageToken, view: kind, ...filter } = v.check(list, req);
      const page = await tasks.list(callerOf(ctx), { filter, order, pageSize, pageToken, view: kind });
      return { tasks: page.items.map(taskMessage), nextPageToken: page.nextPageToken };
    },
    async updateTask(req, ctx) {
      if (!req.task) throw invalidArgument('task', 'is required');
      const id = v.check(v.id, req.task.id, 'task.id');
      const fields = fieldsToWrite(req.updateMask?.paths ?? [], UPDATABLE, req.task, {
        // Optional fields: set means present, even when clearing is not possible without a mask.
        assignee_id: (t) => t.assigneeId !== undefined,
        parent_task_id: (t) => t.parentTaskId !== undefined,
        due_date: (t) => t.dueDate !== undefined,
      });
      if (fields.length === 0) throw invalidArgument('update_mask', 'names no field to update');
      const shape = Object.fromEntries(fields.map((f) => [v.camel(f), TASK_INPUT[v.camel(f) as keyof TaskChanges]]));
      const changes = v.check(z.object(shape), req.task, 'task') as TaskChanges;
      const task = await tasks.update(callerOf(ctx), {
        id,
        changes,
        expectedVersion: v.check(v.expectedVersion, req.expectedVersion, 'expected_version'),
        leaseToken: v.check(v.optionalLeaseToken, req.leaseToken, 'lease_token'),
      });
      return { task: taskMessage(task) };
    },
    async deleteTask(req, ctx) {
      await tasks.delete(callerOf(ctx), {
        id: v.check(v.id, req.id, 'id'),
        expectedVersion: v.check(v.expectedVersion, req.expectedVersion, 'expected_version'),
      });
      return {};
    },
    async assignTask(req, ctx) {
      const task = await tasks.assign(callerOf(ctx), {
        id: v.check(v.id, req.id, 'id'),
        workerId: v.check(v.optionalId, req.workerId, 'worker_id'),
        expectedVersion: v.check(v.expectedVersion, req.expectedVersion, 'expected_version'),
        leaseToken: v.check(v.optionalLeaseToken, req.leaseToken, 'lease_token'),
      });
      return { task: taskMessage(task) };
    },
    async claimTask(req, ctx) {
      const { waitSeconds, ...input } = v.check(claim, req);
      const result = await claimWait.claim(callerOf(ctx), input, waitSeconds);
      if (!result.task) return {};
      return {
        task: taskMessage(result.task),
        leaseToken: result.leaseToken!,
        leaseExpiresAt: timestamp(result.leaseExpiresAt),
      };
    },
    async heartbeatTask(req, ctx) {
      const leaseExpiresAt = await tasks.heartbeat(callerOf(ctx), v.check(heartbeat, req));
      return { leaseExpiresAt: timestamp(leaseExpiresAt) };
    },
    async releaseTask(req, ctx) {
      return { task: taskMessage(await tasks.release(callerOf(ctx), v.check(release, req))) };
    },
    async getTaskTree(req, ctx) {
      const { id, maxDepth } = v.check(tree, req);
      const nodes = await tasks.tree(callerOf(ctx), id, maxDepth);
      return { nodes: nodes.map((n) => ({ task: taskMessage(n.task), depth: n.depth })) };
    },
    async listTaskEvents(req, ctx) {
      const { taskId, projectId, pageSize, pageToken } = v.check(events, req);
      const filter = taskId !== null ? { taskId } : { projectId: projectId! };
      const page = await tasks.events(callerOf(ctx), { filter, pageSize, pageToken });
      return { events: page.items.map(taskEventMessage), nextPageToken: page.nextPageToken };
    },
  };
}
