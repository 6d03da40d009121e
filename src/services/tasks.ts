import { z } from 'zod';
import type { Database, Tx } from '../db/index.js';
import {
  type JsonObject,
  type JsonValue,
  TASK_PRIORITIES,
  TASK_TRANSITIONS,
  type Task,
  type TaskPriority,
  type TaskView,
  type TaskViewKind,
} from '../domain.js';
import { AppError, aborted, failedPrecondition, notFound } from '../errors.js';
import { type TaskEventKind, appendTaskEvents } from '../repositories/events.js';
import * as tasks from '../repositories/tasks.js';
import { type Actor, type Caller, idempotent, inTenant, resolveActor } from './caller.js';
import { type Page, type PageTokens, tokenId } from './page-token.js';
import { loadTaskViews } from './task-views.js';

export interface CreateTaskInput extends Omit<tasks.NewTask, 'createdById'> {
  /** Optional when the caller's API key is bound to a worker. */
  readonly createdById: bigint | null;
  readonly requestId: string;
}

export interface ListTasksInput {
  readonly filter: tasks.TaskFilter;
  readonly order: tasks.TaskOrder;
  readonly pageSize: number;
  readonly pageToken: string;
  readonly view: TaskViewKind;
}

export interface UpdateTaskInput {
  readonly id: bigint;
  readonly changes: tasks.TaskChanges;
  /** null: no version check. */
  readonly expectedVersion: bigint | null;
}

const rankOf = (p: TaskPriority) => TASK_PRIORITIES.indexOf(p) + 1;

/** What a ListTasks page token may carry: exactly a TaskCursor, or the token is refused. */
const TASK_CURSOR: z.ZodType<tasks.TaskCursor, unknown> = z.discriminatedUnion('order', [
  z.strictObject({ order: z.literal('created'), id: tokenId }),
  z.strictObject({
    order: z.literal('due_date'),
    // Within the range of a JavaScript Date, so that it makes a valid timestamptz.
    dueMs: z.number().int().min(-8.64e15).max(8.64e15).nullable(),
    id: tokenId,
  }),
  z.strictObject({ order: z.literal('priority'), rank: z.number().int().min(1).max(TASK_PRIORITIES.length), id: tokenId }),
]);

/** A field value as it is recorded in history. */
function historyValue(v: unknown): JsonValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  return v as JsonValue;
}

const CHANGE_FIELDS = {
  title: 'title',
  description: 'description',
  status: 'status',
  priority: 'priority',
  tags: 'tags',
  assigneeId: 'assignee_id',
  parentTaskId: 'parent_task_id',
  dueDate: 'due_date',
} as const satisfies Record<keyof tasks.TaskChanges, string>;

/** before/after of every field that really changed, plus the version step. */
function diff(before: Task, after: Task): JsonObject {
  const changes: JsonObject = {};
  for (const [key, name] of Object.entries(CHANGE_FIELDS) as [keyof tasks.TaskChanges, string][]) {
    const a = historyValue(before[key]);
    const b = historyValue(after[key]);
    if (JSON.stringify(a) !== JSON.stringify(b)) changes[name] = { before: a, after: b };
  }
  changes.version = { before: before.version.toString(), after: after.version.toString() };
  return { changes };
}

export class TaskService {
  constructor(
    private readonly db: Database,
    private readonly pageTokens: PageTokens,
  ) {}

  /**
   * @throws AppError failed_precondition (missing project, worker or parent; parent in
   *   another project), invalid_argument (created_by_id missing, request_id reuse),
   *   permission_denied (created_by_id other than the key's worker).
   */
  create(caller: Caller, input: CreateTaskInput): Promise<TaskView> {
    const { requestId, ...fields } = input;
    return inTenant(this.db, caller, (tx, actor) => {
      const createdById = resolveActor(actor, input.createdById);
      // The resolved creator is part of the request: two keys of different workers reusing
      // one request_id with the same body are different requests.
      return idempotent(tx, requestId, 'CreateTask', { ...fields, createdById }, async () => {
        const task = await tasks.insertTask(tx, { ...fields, createdById });
        await appendTaskEvents(tx, [
          { taskId: task.id, projectId: task.projectId, kind: 'created', actorId: createdById, data: { task: snapshot(task) } },
        ]);
        const [view] = await loadTaskViews(tx, [task], 'basic');
        return view!;
      });
    });
  }

  /** @throws AppError not_found. */
  get(caller: Caller, id: bigint, view: TaskViewKind): Promise<TaskView> {
    return inTenant(this.db, caller, async (tx) => {
      const task = await tasks.findTask(tx, id);
      if (!task) throw notFound('task');
      const [loaded] = await loadTaskViews(tx, [task], view);
      return loaded!;
    }, { readOnly: true });
  }

  /** @throws AppError invalid_argument (page_token). */
  list(caller: Caller, input: ListTasksInput): Promise<Page<TaskView>> {
    const fingerprint = this.pageTokens.fingerprint({ tenant: caller.tenantId, list: 'tasks', filter: input.filter, order: input.order });
    const position = this.pageTokens.decode(input.pageToken, fingerprint, TASK_CURSOR);
    return inTenant(this.db, caller, async (tx) => {
      const rows = await tasks.listTasks(tx, input.filter, input.order, position, input.pageSize + 1);
      const page = this.pageTokens.page(rows, input.pageSize, fingerprint, (last): tasks.TaskCursor => {
        switch (input.order) {
          case 'created':
            return { order: 'created', id: last.id };
          case 'due_date':
            return { order: 'due_date', dueMs: last.dueDate?.getTime() ?? null, id: last.id };
          case 'priority':
            return { order: 'priority', rank: rankOf(last.priority), id: last.id };
        }
      });
      return { items: await loadTaskViews(tx, page.items, input.view), nextPageToken: page.nextPageToken };
    }, { readOnly: true });
  }

  /**
   * @throws AppError not_found; aborted (version mismatch); failed_precondition (status
   *   transition, missing worker or parent, parent cycle).
   */
  update(caller: Caller, input: UpdateTaskInput): Promise<TaskView> {
    return inTenant(this.db, caller, (tx, actor) => this.write(tx, actor, input, 'updated'));
  }

  /** Sets or clears the assignee. @throws as update. */
  async assign(caller: Caller, input: { id: bigint; workerId: bigint | null; expectedVersion: bigint | null }): Promise<TaskView> {
    // The request names the worker `worker_id`; the column (and the shared error) `assignee_id`.
    const renamed = (err: unknown) =>
      err instanceof AppError && err.field === 'assignee_id' ? new AppError(err.code, err.message.replace('assignee_id', 'worker_id'), 'worker_id') : err;
    return inTenant(this.db, caller, (tx, actor) =>
      this.write(
        tx,
        actor,
        { id: input.id, changes: { assigneeId: input.workerId }, expectedVersion: input.expectedVersion },
        input.workerId === null ? 'unassigned' : 'assigned',
      ),
    ).catch((err) => {
      throw renamed(err);
    });
  }

  /** Deletes the task and its subtasks. @throws AppError not_found; aborted (version mismatch). */
  delete(caller: Caller, input: { id: bigint; expectedVersion: bigint | null }): Promise<void> {
    return inTenant(this.db, caller, async (tx, actor) => {
      const task = await this.lock(tx, input.id, input.expectedVersion);
      // No task may move into the subtree while it is collected and deleted.
      await tasks.lockTaskTree(tx, task.projectId);
      const deleted = await tasks.deleteTask(tx, task.id);
      await appendTaskEvents(
        tx,
        deleted.map((d) => ({
          taskId: d.id,
          projectId: d.projectId,
          kind: 'deleted' as const,
          actorId: actor.workerId,
          data: (d.id === task.id ? {} : { cascade_from: task.id.toString() }) as JsonObject,
        })),
      );
    });
  }

  private async lock(tx: Tx, id: bigint, expectedVersion: bigint | null): Promise<Task> {
    const task = await tasks.findTask(tx, id, { forUpdate: true });
    if (!task) throw notFound('task');
    if (expectedVersion !== null && task.version !== expectedVersion) {
      throw aborted(`expected_version: the task is at version ${task.version}, not ${expectedVersion}`);
    }
    return task;
  }

  private async write(tx: Tx, actor: Actor, input: UpdateTaskInput, kind: TaskEventKind): Promise<TaskView> {
    const before = await this.lock(tx, input.id, input.expectedVersion);
    const { status, parentTaskId } = input.changes;
    if (status !== undefined && status !== before.status && !TASK_TRANSITIONS[before.status].includes(status)) {
      throw failedPrecondition(`cannot change from ${before.status} to ${status}`, 'status');
    }
    if (parentTaskId !== undefined && parentTaskId !== before.parentTaskId) {
      await tasks.lockTaskTree(tx, before.projectId);
      if (parentTaskId !== null && (await tasks.isSelfOrDescendant(tx, before.id, parentTaskId))) {
        throw failedPrecondition('the parent cannot be the task itself or one of its subtasks', 'parent_task_id');
      }
    }
    const after = await tasks.updateTask(tx, before.id, input.changes);
    await appendTaskEvents(tx, [
      { taskId: after.id, projectId: after.projectId, kind, actorId: actor.workerId, data: diff(before, after) },
    ]);
    const [view] = await loadTaskViews(tx, [after], 'basic');
    return view!;
  }
}

/** The task as recorded in its 'created' event. */
export function snapshot(task: Task): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(task)) out[k] = historyValue(v);
  return out;
}
