import type { Tx } from '../db/index.js';
import type { Task, TaskPriority, TaskStatus } from '../domain.js';
import { TASK_COLUMNS, type TaskRow, idList, toTask } from './rows.js';
import { tenantOf } from './tenant-scope.js';

export interface NewTask {
  readonly projectId: bigint;
  readonly title: string;
  readonly description: string;
  readonly status: TaskStatus;
  readonly priority: TaskPriority;
  readonly tags: string[];
  readonly assigneeId: bigint | null;
  readonly createdById: bigint;
  readonly parentTaskId: bigint | null;
  readonly dueDate: Date | null;
}

/** Fields to write; `undefined` keeps the current value, `null` clears a nullable one. */
export interface TaskChanges {
  readonly title?: string;
  readonly description?: string;
  readonly status?: TaskStatus;
  readonly priority?: TaskPriority;
  readonly tags?: string[];
  readonly assigneeId?: bigint | null;
  readonly parentTaskId?: bigint | null;
  readonly dueDate?: Date | null;
}

export type TaskOrder = 'created' | 'due_date' | 'priority';

export interface TaskFilter {
  readonly projectId: bigint | null;
  readonly statuses: TaskStatus[];
  readonly assigneeId: bigint | null;
  readonly createdById: bigint | null;
  readonly parentTaskId: bigint | null;
  readonly tagsAll: string[];
  readonly priority: TaskPriority | null;
  readonly dueBefore: Date | null;
  readonly dueAfter: Date | null;
}

/** Where the previous page ended, in the sort key of the order. */
export type TaskCursor =
  | { readonly order: 'created'; readonly id: bigint }
  | { readonly order: 'due_date'; readonly dueMs: number | null; readonly id: bigint }
  | { readonly order: 'priority'; readonly rank: number; readonly id: bigint };

const big = (v: bigint | null | undefined) => (v === null || v === undefined ? null : v.toString());

export async function insertTask(tx: Tx, t: NewTask): Promise<Task> {
  const row = await tx.one<TaskRow>(
    `insert into tasks (tenant_id, project_id, title, description, status, priority, tags,
                        assignee_id, created_by_id, parent_task_id, due_date)
     values ($1::bigint, $2::bigint, $3, $4, $5, $6, $7::jsonb, $8::bigint, $9::bigint, $10::bigint, $11::timestamptz)
     returning ${TASK_COLUMNS}`,
    [
      tenantOf(tx), t.projectId.toString(), t.title, t.description, t.status, t.priority, JSON.stringify(t.tags),
      big(t.assigneeId), t.createdById.toString(), big(t.parentTaskId), t.dueDate,
    ],
  );
  return toTask(row);
}

/** One task per title, in one statement, in the order of `titles`. */
export async function insertTasksWithTitles(tx: Tx, projectId: bigint, titles: string[], createdById: bigint): Promise<Task[]> {
  if (titles.length === 0) return [];
  const rows = await tx.many<TaskRow>(
    `insert into tasks (tenant_id, project_id, title, created_by_id)
     select $1::bigint, $2::bigint, u.title, $4::bigint
       from unnest($3::text[]) with ordinality as u(title, n)
      order by u.n
     returning ${TASK_COLUMNS}`,
    [tenantOf(tx), projectId.toString(), titles, createdById.toString()],
  );
  // Identity values follow the insert order, so id order is title order.
  return rows.map(toTask).sort((a, b) => (a.id < b.id ? -1 : 1));
}

export async function findTask(tx: Tx, id: bigint, options: { forUpdate?: boolean } = {}): Promise<Task | undefined> {
  const row = await tx.maybeOne<TaskRow>(
    `select ${TASK_COLUMNS} from tasks where tenant_id = $1::bigint and id = $2::bigint${options.forUpdate ? ' for update' : ''}`,
    [tenantOf(tx), id.toString()],
  );
  return row && toTask(row);
}

export async function findTasksByIds(tx: Tx, ids: Iterable<bigint>): Promise<Map<bigint, Task>> {
  const list = idList(ids);
  if (list.length === 0) return new Map();
  const rows = await tx.many<TaskRow>(
    `select ${TASK_COLUMNS} from tasks where tenant_id = $1::bigint and id = any($2::bigint[])`,
    [tenantOf(tx), list],
  );
  return new Map(rows.map((r) => [BigInt(r.id), toTask(r)]));
}

/** Direct subtasks of every task in `parentIds`, in one statement, oldest first. */
export async function findSubtasks(tx: Tx, parentIds: Iterable<bigint>): Promise<Task[]> {
  const list = idList(parentIds);
  if (list.length === 0) return [];
  const rows = await tx.many<TaskRow>(
    `select ${TASK_COLUMNS} from tasks where tenant_id = $1::bigint and parent_task_id = any($2::bigint[]) order by id`,
    [tenantOf(tx), list],
  );
  return rows.map(toTask);
}

/**
 * Serializes changes to the shape of a project's task tree (re-parenting, deleting subtrees)
 * until the transaction ends. Row locks alone cannot: two moves that each pass the cycle check
 * on their own snapshot could together close a loop (A under B while B goes under A's child).
 */
export async function lockTaskTree(tx: Tx, projectId: bigint): Promise<void> {
  await tx.many(`select pg_advisory_xact_lock(hashtextextended('taskapi.task-tree:' || $1 || ':' || $2, 0))`, [
    tenantOf(tx),
    projectId.toString(),
  ]);
}

/** Whether `candidateId` is `taskId` itself or one of its descendants (a parent cycle). */
export async function isSelfOrDescendant(tx: Tx, taskId: bigint, candidateId: bigint): Promise<boolean> {
  const row = await tx.one<{ found: boolean }>(
    `with recursive tree(id) as (
        select id from tasks where tenant_id = $1::bigint and id = $2::bigint
        union
        select t.id from tasks t join tree on t.parent_task_id = tree.id where t.tenant_id = $1::bigint
     )
     select exists (select 1 from tree where id = $3::bigint) as found`,
    [tenantOf(tx), taskId.toString(), candidateId.toString()],
  );
  return row.found;
}

/**
 * One page of tasks. Filters, order and cursor only choose among fixed SQL fragments; every
 * value is bound. Returns up to `limit` rows.
 */
export async function listTasks(tx: Tx, filter: TaskFilter, order: TaskOrder, cursor: TaskCursor | null, limit: number): Promise<Task[]> {
  const values: unknown[] = [tenantOf(tx)];
  const bind = (v: unknown, cast: string) => {
    values.push(v);
    return `$${values.length}::${cast}`;
  };
  const where = ['tenant_id = $1::bigint'];
  if (filter.projectId !== null) where.push(`project_id = ${bind(filter.projectId.toString(), 'bigint')}`);
  if (filter.statuses.length > 0) where.push(`status = any(${bind(filter.statuses, 'text[]')})`);
  if (filter.assigneeId !== null) where.push(`assignee_id = ${bind(filter.assigneeId.toString(), 'bigint')}`);
  if (filter.createdById !== null) where.push(`created_by_id = ${bind(filter.createdById.toString(), 'bigint')}`);
  if (filter.parentTaskId !== null) where.push(`parent_task_id = ${bind(filter.parentTaskId.toString(), 'bigint')}`);
  // jsonb containment: answered by the (tenant_id, tags) GIN index.
  if (filter.tagsAll.length > 0) where.push(`tags @> ${bind(JSON.stringify(filter.tagsAll), 'jsonb')}`);
  if (filter.priority !== null) where.push(`priority = ${bind(filter.priority, 'text')}`);
  if (filter.dueBefore !== null) where.push(`due_date < ${bind(filter.dueBefore, 'timestamptz')}`);
  if (filter.dueAfter !== null) where.push(`due_date > ${bind(filter.dueAfter, 'timestamptz')}`);

  let orderBy: string;
  switch (order) {
    case 'created':
      orderBy = 'id';
      if (cursor?.order === 'created') where.push(`id > ${bind(cursor.id.toString(), 'bigint')}`);
      break;
    case 'due_date':
      orderBy = 'due_date nulls last, id';
      if (cursor?.order === 'due_date') {
        const id = bind(cursor.id.toString(), 'bigint');
        if (cursor.dueMs === null) {
          where.push(`(due_date is null and id > ${id})`);
        } else {
          const due = bind(new Date(cursor.dueMs), 'timestamptz');
          where.push(`(due_date > ${due} or (due_date = ${due} and id > ${id}) or due_date is null)`);
        }
      }
      break;
    case 'priority':
      orderBy = 'priority_rank desc, id';
      if (cursor?.order === 'priority') {
        const rank = bind(cursor.rank, 'smallint');
        where.push(`(priority_rank < ${rank} or (priority_rank = ${rank} and id > ${bind(cursor.id.toString(), 'bigint')}))`);
      }
      break;
  }
  const rows = await tx.many<TaskRow>(
    `select ${TASK_COLUMNS} from tasks where ${where.join(' and ')} order by ${orderBy} limit ${bind(limit, 'int')}`,
    values,
  );
  return rows.map(toTask);
}

/** Writes the changes, bumps version and updated_at, returns the new row. */
export async function updateTask(tx: Tx, id: bigint, c: TaskChanges): Promise<Task> {
  const row = await tx.one<TaskRow>(
    `update tasks set
        title = coalesce($3, title),
        description = coalesce($4, description),
        status = coalesce($5, status),
        priority = coalesce($6, priority),
        tags = coalesce($7::jsonb, tags),
        assignee_id = case when $8::boolean then $9::bigint else assignee_id end,
        parent_task_id = case when $10::boolean then $11::bigint else parent_task_id end,
        due_date = case when $12::boolean then $13::timestamptz else due_date end,
        version = version + 1,
        updated_at = now()
      where tenant_id = $1::bigint and id = $2::bigint
      returning ${TASK_COLUMNS}`,
    [
      tenantOf(tx), id.toString(),
      c.title ?? null, c.description ?? null, c.status ?? null, c.priority ?? null,
      c.tags === undefined ? null : JSON.stringify(c.tags),
      c.assigneeId !== undefined, big(c.assigneeId),
      c.parentTaskId !== undefined, big(c.parentTaskId),
      c.dueDate !== undefined, c.dueDate ?? null,
    ],
  );
  return toTask(row);
}

/** Deletes the task; its subtasks go with it (foreign key cascade). Returns the deleted ids. */
export async function deleteTask(tx: Tx, id: bigint): Promise<{ id: bigint; projectId: bigint }[]> {
  // Collect the subtree first so that every deleted task gets its history event.
  const rows = await tx.many<{ id: string; project_id: string }>(
    `with recursive tree(id) as (
        select id from tasks where tenant_id = $1::bigint and id = $2::bigint
        union
        select t.id from tasks t join tree on t.parent_task_id = tree.id where t.tenant_id = $1::bigint
     )
     delete from tasks where tenant_id = $1::bigint and id in (select id from tree)
     returning id, project_id`,
    [tenantOf(tx), id.toString()],
  );
  return rows.map((r) => ({ id: BigInt(r.id), projectId: BigInt(r.project_id) }));
}

/**
 * Marks every task of the project that is not completed as completed and appends one history
 * event per task, in ONE statement. `found` is false when the project does not exist.
 */
export async function completeProjectTasks(tx: Tx, projectId: bigint, actorId: bigint | null): Promise<{ found: boolean; count: number }> {
  const row = await tx.one<{ found: boolean; count: string }>(
    `with project as (
        select id from projects where tenant_id = $1::bigint and id = $2::bigint
     ), done as (
        update tasks t set status = 'completed', updated_at = now(), version = t.version + 1
          from (select id, status from tasks
                 where tenant_id = $1::bigint and project_id = (select id from project) and status <> 'completed'
                 for update) before
         where t.tenant_id = $1::bigint and t.id = before.id
        returning t.id, t.project_id, before.status as old_status, t.version
     ), events as (
        insert into task_events (tenant_id, task_id, project_id, kind, actor_id, data)
        select $1::bigint, id, project_id, 'completed', $3::bigint,
               jsonb_build_object('changes', jsonb_build_object(
                 'status', jsonb_build_object('before', old_status, 'after', 'completed'),
                 'version', jsonb_build_object('before', (version - 1)::text, 'after', version::text)))
          from done
     )
     select exists (select 1 from project) as found, (select count(*) from done) as count`,
    [tenantOf(tx), projectId.toString(), big(actorId)],
  );
  return { found: row.found, count: Number(row.count) };
}

/** Unassigns every task of the worker (bumping versions); returns the tasks as they were. */
export async function unassignWorkerTasks(tx: Tx, workerId: bigint): Promise<{ id: bigint; projectId: bigint; version: bigint }[]> {
  const rows = await tx.many<{ id: string; project_id: string; version: string }>(
    `update tasks set assignee_id = null, version = version + 1, updated_at = now()
      where tenant_id = $1::bigint and assignee_id = $2::bigint
      returning id, project_id, version`,
    [tenantOf(tx), workerId.toString()],
  );
  return rows.map((r) => ({ id: BigInt(r.id), projectId: BigInt(r.project_id), version: BigInt(r.version) }));
}
