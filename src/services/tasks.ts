import { z } from 'zod';
import type { Database, Tx } from '../db/index.js';
import {
  type NewTask,
  TASK_PRIORITIES,
  TASK_TRANSITIONS,
  type Task,
  type TaskChanges,
  type TaskPriority,
  type TaskView,
  type TaskViewKind,
} from '../domain.js';
import { AppError, failedPrecondition, invalidArgument, notFound } from '../errors.js';
import { lockTaskWithClock } from '../repositories/claims.js';
import { appendTaskEvents, listTaskEvents, type TaskEvent, type TaskEventKind } from '../repositories/events.js';
import * as idempotency from '../repositories/idempotency.js';
import { findProject } from '../repositories/projects.js';
import * as tasks from '../repositories/tasks.js';
import { findWorker } from '../repositories/workers.js';
import { type Actor, type Caller, resolveActor } from './caller.js';
import { idempotent, requestHash } from './idempotency.js';
import { type Page, type PageTokens, tokenId } from './page-token.js';
import { taskEvent } from './task-events.js';
import { checkLease, claimOnce, heartbeat, type ReleaseInput, release } from './task-leases.js';
import { loadTaskViews } from './task-views.js';
import { inTenant, readInTenant } from './tenant-transaction.js';
import { checkVersion } from './versions.js';

export type { TaskChanges };

export interface CreateTaskInput extends Omit<NewTask, 'createdById'> {
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
  readonly changes: TaskChanges;
  /** null: no version check. */
  readonly expectedVersion: bigint | null;
  /** null: not a lease holder's write. Else the write happens only while this lease is current. */
  readonly leaseToken: bigint | null;
}

export interface ClaimInput {
  /** null: the worker of the caller's API key. */
  readonly workerId: bigint | null;
  readonly projectId: bigint | null;
  readonly tagsAll: string[];
  readonly leaseSeconds: number;
  readonly requestId: string;
}

export interface Claim {
  /** null: nothing was claimable. */
  readonly task: TaskView | null;
  readonly leaseToken: bigint | null;
  readonly leaseExpiresAt: Date | null;
}

const NO_CLAIM: Claim = { task: null, leaseToken: null, leaseExpiresAt: null };

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
  z.strictObject({
    order: z.literal('priority'),
    rank: z.number().int().min(1).max(TASK_PRIORITIES.length),
    id: tokenId,
  }),
]);

export class TaskService {
  /** Told about every tenant that was handed a lease (the lease reaper watches those). */
  onLease: ((tenantId: bigint) => void) | null = null;

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
        await appendTaskEvents(tx, [taskEvent.created(task, createdById)]);
        const [view] = await loadTaskViews(tx, [task], 'basic');
        return view!;
      });
    });
  }

  /** @throws AppError not_found. */
  get(caller: Caller, id: bigint, view: TaskViewKind): Promise<TaskView> {
    if (view === 'basic') {
      // The task and its two workers in one statement: the whole call is one round trip.
      return readInTenant(this.db, caller, async (tx) => {
        const found = await tasks.findTaskWithPeople(tx, id);
        if (!found) throw notFound('task');
        return basicView(found);
      });
    }
    return inTenant(
      this.db,
      caller,
      async (tx) => {
        const task = await tasks.findTask(tx, id);
        if (!task) throw notFound('task');
        const [loaded] = await loadTaskViews(tx, [task], view);
        return loaded!;
      },
      { readOnly: true },
    );
  }

  /** @throws AppError invalid_argument (page_token). */
  list(caller: Caller, input: ListTasksInput): Promise<Page<TaskView>> {
    const fingerprint = this.pageTokens.fingerprint({
      tenant: caller.tenantId,
      list: 'tasks',
      filter: input.filter,
      order: input.order,
    });
    const position = this.pageTokens.decode(input.pageToken, fingerprint, TASK_CURSOR);
    const cut = <T extends Task>(rows: T[]) =>
      this.pageTokens.page(rows, input.pageSize, fingerprint, (last) => cursorAfter(input.order, last));
    const limit = input.pageSize + 1;
    if (input.view === 'basic') {
      // The page and its workers in one statement: the whole call is one round trip.
      return readInTenant(this.db, caller, async (tx) =>
        cut((await tasks.listTasksWithPeople(tx, input.filter, input.order, position, limit)).map(basicView)),
      );
    }
    // FULL: the relations in batch after the page.
    return inTenant(
      this.db,
      caller,
      async (tx) => {
        const page = cut(await tasks.listTasks(tx, input.filter, input.order, position, limit));
        return { items: await loadTaskViews(tx, page.items, input.view), nextPageToken: page.nextPageToken };
      },
      { readOnly: true },
    );
  }

  /**
   * @throws AppError not_found; aborted (version mismatch); failed_precondition (status
   *   transition, missing worker or parent, parent cycle).
   */
  update(caller: Caller, input: UpdateTaskInput): Promise<TaskView> {
    return inTenant(this.db, caller, (tx, actor) => this.write(tx, actor, input, 'updated'));
  }

  /** Sets or clears the assignee. @throws as update. */
  async assign(
    caller: Caller,
    input: { id: bigint; workerId: bigint | null; expectedVersion: bigint | null; leaseToken: bigint | null },
  ): Promise<TaskView> {
    // The request names the worker `worker_id`; the column (and the shared error) `assignee_id`.
    const renamed = (err: unknown) =>
      err instanceof AppError && err.field === 'assignee_id'
        ? new AppError(err.code, err.message.replace('assignee_id', 'worker_id'), 'worker_id')
        : err;
    return inTenant(this.db, caller, (tx, actor) =>
      this.write(
        tx,
        actor,
        {
          id: input.id,
          changes: { assigneeId: input.workerId },
          expectedVersion: input.expectedVersion,
          leaseToken: input.leaseToken,
        },
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
        deleted.map((d) =>
          taskEvent.deleted(d, actor.workerId, d.id === task.id ? {} : { cascade_from: task.id.toString() }),
        ),
      );
    });
  }

  /**
   * Atomically takes one claimable task for the worker, or nothing (SPEC §6). One attempt, no
   * waiting: a long poll (wait_seconds) wraps this call. With a request_id, a retry returns the
   * same claim while its lease is current.
   * @throws AppError not_found (worker, project); permission_denied (worker_id other than the
   *   key's worker); invalid_argument (request_id reuse); failed_precondition (the claim of this
   *   request_id has ended).
   */
  async claim(caller: Caller, input: ClaimInput): Promise<Claim> {
    const claim = await inTenant(this.db, caller, async (tx, actor) => {
      const workerId = resolveActor(actor, input.workerId, 'worker_id');
      const hash = requestHash('ClaimTask', { ...input, workerId });
      if (input.requestId !== '') {
        const record = await idempotency.findRecord(tx, input.requestId);
        if (record) return this.replayClaim(tx, record, hash);
      }
      const worker = await findWorker(tx, workerId);
      if (!worker) throw new AppError('not_found', 'worker_id: worker not found', 'worker_id');
      if (input.projectId !== null && !(await findProject(tx, input.projectId))) {
        throw new AppError('not_found', 'project_id: project not found', 'project_id');
      }
      const filter = {
        workerId,
        capabilities: worker.capabilities,
        projectId: input.projectId,
        tagsAll: input.tagsAll,
        leaseSeconds: input.leaseSeconds,
      };
      const task = await claimOnce(tx, filter, actor.workerId ?? workerId);
      // Nothing claimed is not recorded: a retry with the same request_id tries again.
      if (!task) return NO_CLAIM;
      if (input.requestId !== '') {
        // A concurrent twin of this request inserted first: roll this claim back and let the
        // client's retry find the twin's record.
        if (!(await idempotency.claimRequestId(tx, input.requestId, hash))) {
          throw new AppError('aborted', 'the first request with this request_id is still running');
        }
        await idempotency.saveResponse(tx, input.requestId, {
          task_id: task.id.toString(),
          lease_token: task.leaseToken.toString(),
        });
      }
      const [view] = await loadTaskViews(tx, [task], 'basic');
      return { task: view!, leaseToken: task.leaseToken, leaseExpiresAt: task.leaseExpiresAt };
    });
    if (claim.task) this.onLease?.(caller.tenantId);
    return claim;
  }

  private async replayClaim(tx: Tx, record: { requestHash: Buffer; response: unknown }, hash: Buffer): Promise<Claim> {
    if (!record.requestHash.equals(hash))
      throw invalidArgument('request_id', 'was already used for a different request');
    const first = record.response as { task_id?: string; lease_token?: string } | null;
    if (!first?.task_id || !first.lease_token)
      throw invalidArgument('request_id', 'was already used for a different request');
    const locked = await lockTaskWithClock(tx, BigInt(first.task_id));
    if (!locked) throw notFound('task');
    try {
      checkLease(locked.now, locked.task, BigInt(first.lease_token));
    } catch (err) {
      throw failedPrecondition(`the claim made with this request_id is over (${(err as Error).message})`, 'request_id');
    }
    const [view] = await loadTaskViews(tx, [locked.task], 'basic');
    return { task: view!, leaseToken: locked.task.leaseToken, leaseExpiresAt: locked.task.leaseExpiresAt };
  }

  /** Extends the lease. @throws AppError not_found; failed_precondition (lease not current). */
  heartbeat(caller: Caller, input: { id: bigint; leaseToken: bigint; leaseSeconds: number }): Promise<Date> {
    return inTenant(this.db, caller, async (tx, actor) => {
      const task = await heartbeat(tx, input.id, input.leaseToken, input.leaseSeconds, actor.workerId);
      return task.leaseExpiresAt!;
    });
  }

  /** Ends the lease with a final status. @throws AppError not_found; failed_precondition (lease not current). */
  release(caller: Caller, input: ReleaseInput): Promise<TaskView> {
    return inTenant(this.db, caller, async (tx, actor) => {
      const task = await release(tx, input, actor.workerId);
      const [view] = await loadTaskViews(tx, [task], 'basic');
      return view!;
    });
  }

  /**
   * The task and its subtasks down to `maxDepth` (null: all) with one recursive query.
   * @throws AppError not_found.
   */
  tree(caller: Caller, id: bigint, maxDepth: number | null): Promise<{ task: TaskView; depth: number }[]> {
    return inTenant(
      this.db,
      caller,
      async (tx) => {
        const nodes = await tasks.findTaskTree(tx, id, maxDepth);
        if (nodes.length === 0) throw notFound('task');
        const views = await loadTaskViews(
          tx,
          nodes.map((n) => n.task),
          'basic',
        );
        return nodes.map((n, i) => ({ task: views[i]!, depth: n.depth }));
      },
      { readOnly: true },
    );
  }

  /**
   * A page of the history of a task or of a project, oldest first. History outlives its task:
   * a deleted task's events are still listed.
   * @throws AppError not_found (no such task or project); invalid_argument (page_token).
   */
  events(
    caller: Caller,
    input: { filter: { taskId: bigint } | { projectId: bigint }; pageSize: number; pageToken: string },
  ): Promise<Page<TaskEvent>> {
    const paging = this.pageTokens.byId({ tenant: caller.tenantId, list: 'task_events', filter: input.filter }, input);
    return inTenant(
      this.db,
      caller,
      async (tx) => {
        const rows = await listTaskEvents(tx, input.filter, paging);
        // Every task has its created event, so no event on the first page means no such task; a
        // project may exist without any yet.
        if (rows.length === 0 && paging.first) {
          if ('taskId' in input.filter) throw notFound('task');
          if (!(await findProject(tx, input.filter.projectId))) throw notFound('project');
        }
        return paging.page(rows);
      },
      { readOnly: true },
    );
  }

  private async lock(
    tx: Tx,
    id: bigint,
    expectedVersion: bigint | null,
    leaseToken: bigint | null = null,
  ): Promise<Task> {
    let task: Task | undefined;
    if (leaseToken === null) {
      task = await tasks.findTask(tx, id, { forUpdate: true });
      if (!task) throw notFound('task');
    } else {
      const locked = await lockTaskWithClock(tx, id);
      if (!locked) throw notFound('task');
      checkLease(locked.now, locked.task, leaseToken);
      task = locked.task;
    }
    checkVersion('task', task, expectedVersion);
    return task;
  }

  private async write(tx: Tx, actor: Actor, input: UpdateTaskInput, kind: TaskEventKind): Promise<TaskView> {
    const before = await this.lock(tx, input.id, input.expectedVersion, input.leaseToken);
    const { status, parentTaskId, assigneeId } = input.changes;
    if (status !== undefined && status !== before.status && !TASK_TRANSITIONS[before.status].includes(status)) {
      throw failedPrecondition(`cannot change from ${before.status} to ${status}`, 'status');
    }
    if (parentTaskId !== undefined && parentTaskId !== before.parentTaskId) {
      await tasks.lockTaskTree(tx, before.projectId);
      if (parentTaskId !== null && (await tasks.isSelfOrDescendant(tx, before.id, parentTaskId))) {
        throw failedPrecondition('the parent cannot be the task itself or one of its subtasks', 'parent_task_id');
      }
    }
    // A write that takes the task away from its lease holder (another status, another or no
    // assignee) ends the lease: revoked when someone else writes, released when the holder
    // itself does (a fenced write).
    const takesAway =
      (status !== undefined && status !== before.status) ||
      (assigneeId !== undefined && assigneeId !== before.assigneeId);
    const endLease = takesAway ? (input.leaseToken !== null ? 'released' : 'revoked') : null;
    const after = await tasks.updateTask(tx, before.id, input.changes, endLease);
    await appendTaskEvents(tx, [taskEvent.changed(kind, after, before, after, actor.workerId)]);
    const [view] = await loadTaskViews(tx, [after], 'basic');
    return view!;
  }
}

/** Where a page of tasks in `order` ends: the position its page token carries. */
function cursorAfter(order: tasks.TaskOrder, last: Task): tasks.TaskCursor {
  switch (order) {
    case 'created':
      return { order: 'created', id: last.id };
    case 'due_date':
      return { order: 'due_date', dueMs: last.dueDate?.getTime() ?? null, id: last.id };
    case 'priority':
      return { order: 'priority', rank: rankOf(last.priority), id: last.id };
  }
}

/** A task as its BASIC view shows it, from the task and its workers read together. */
function basicView(found: tasks.TaskWithPeople): TaskView {
  return { ...found.task, assignee: found.assignee, createdBy: found.createdBy };
}
