import type { ServiceImpl } from '@connectrpc/connect';
import { z } from 'zod';
import { TaskOrderBy, type TaskService, TaskView } from '../../gen/taskapi/v1/task_pb.js';
import { invalidArgument } from '../../errors.js';
import type { TaskChanges } from '../../repositories/tasks.js';
import type { TaskService as Tasks } from '../../services/tasks.js';
import { callerOf } from '../context.js';
import { taskMessage, taskPriority, taskStatus } from '../convert.js';
import { fieldsToWrite } from './update-mask.js';
import * as v from '../validate.js';

const view = z
  .number()
  .refine((x) => x in TaskView, 'is not a known value')
  .transform((x) => (x === TaskView.FULL ? ('full' as const) : ('basic' as const)));

const ORDERS = { [TaskOrderBy.UNSPECIFIED]: 'created', [TaskOrderBy.CREATED_AT]: 'created', [TaskOrderBy.DUE_DATE]: 'due_date', [TaskOrderBy.PRIORITY]: 'priority' } as const;
const orderBy = z
  .number()
  .refine((x) => x in ORDERS, 'is not a known value')
  .transform((x) => ORDERS[x as keyof typeof ORDERS]);

const create = z.object({
  projectId: v.id,
  title: v.title,
  description: v.description,
  status: v.enumOf(taskStatus.toDomain, 'pending'),
  priority: v.enumOf(taskPriority.toDomain, 'medium'),
  tags: v.tags,
  assigneeId: v.optionalId,
  parentTaskId: v.optionalId,
  dueDate: v.timestamp,
  createdById: v.optionalId,
  requestId: v.requestId,
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

const UPDATABLE = ['title', 'description', 'status', 'priority', 'tags', 'assignee_id', 'parent_task_id', 'due_date'] as const;
type Updatable = (typeof UPDATABLE)[number];
const required = <T>(s: z.ZodType<T | null>) => s.refine((x) => x !== null, 'is required when in update_mask');
const CHANGES: Record<Updatable, [keyof TaskChanges, z.ZodType]> = {
  title: ['title', v.title],
  description: ['description', v.description],
  status: ['status', required(v.enumOf(taskStatus.toDomain, null))],
  priority: ['priority', required(v.enumOf(taskPriority.toDomain, null))],
  tags: ['tags', v.tags],
  assignee_id: ['assigneeId', v.optionalId],
  parent_task_id: ['parentTaskId', v.optionalId],
  due_date: ['dueDate', v.timestamp],
};

// Partial: the methods not implemented here answer UNIMPLEMENTED (connect-node's default) until
// their handlers land; a method listed here must be complete.
export function taskHandlers(tasks: Tasks): Partial<ServiceImpl<typeof TaskService>> {
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
      const shape = Object.fromEntries(fields.map((f) => [CHANGES[f][0], CHANGES[f][1]]));
      const changes = v.check(z.object(shape), req.task, 'task') as TaskChanges;
      const task = await tasks.update(callerOf(ctx), {
        id,
        changes,
        expectedVersion: v.check(v.expectedVersion, req.expectedVersion, 'expected_version'),
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
      });
      return { task: taskMessage(task) };
    },
  };
}
