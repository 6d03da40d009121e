import type { Tx } from '../db/index.js';
import type { LeaseEnd, NewTask, Task, TaskChanges, TaskPriority, TaskStatus, Worker } from '../domain.js';
import { createdEventDataSqlSplit } from './events.js';
import { idList, TASKS, WORKERS } from './rows.js';
import { Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

type Row = Record<string, unknown>;

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

/** A task with the workers its BASIC view shows. */
export interface TaskWithPeople {
  readonly task: Task;
  readonly assignee: Worker | null;
  readonly createdBy: Worker | null;
}

// The assignee (a) and the creator (c) joined to a task row t, each as one JSON column.
const PEOPLE_COLUMNS = `${WORKERS.row('a', 'assignee')}, ${WORKERS.row('c', 'creator')}`;
const PEOPLE_JOINS = `left join workers a on a.tenant_id = t.tenant_id and a.id = t.assignee_id
     left join workers c on c.tenant_id = t.tenant_id and c.id = t.created_by_id`;

/**
 * Reads the task and its two workers from a joined row. A page names the same few workers on
 * many rows: `seen` (per statement) parses each once and shares the object.
 */
function withPeople(row: Row, seen: Map<unknown, Worker> = new Map()): TaskWithPeople {
  const person = (as: 'assignee' | 'creator'): Worker | null => {
    const id = (row[as] as unknown[] | null)?.[0];
    if (id === null || id === undefined) return null;
    let worker = seen.get(id);
    if (!worker) {
      worker = WORKERS.parseAs(row, as);
      seen.set(id, worker);
    }
    return worker;
  };
  return { task: TASKS.parse(row), assignee: person('assignee'), createdBy: person('creator') };
}

export async function insertTask(tx: Tx, t: NewTask): Promise<Task> {
  const q = new Params();
  const tenant = q.bind(tenantOf(tx), 'bigint');
  const { columns, placeholders } = TASKS.insert(q, t);
  const row = await tx.one<Row>(
    `insert into tasks (tenant_id, ${columns.join(', ')}) values (${tenant}, ${placeholders.join(', ')})
     returning ${TASKS.row()}`,
    q.values,
  );
  return TASKS.parse(row);
}

// Of the tasks one statement inserts from titles, only these fields differ from row to row.
const PER_TITLE = ['id', 'title'] as const;
const createdFromTitle = createdEventDataSqlSplit(PER_TITLE);

/**
 * One task per title, in one statement, in the order of `titles`, each with its `created`
 * history event (actor `actorId`) written by the same statement: snapshots built by the
 * database from the rows it inserts, instead of built here and sent back as JSON.
 *
 * The rows differ only in id and title: nothing else is bound per row, every other column is
 * the statement's constant or its default, and no default of `tasks` is volatile (now() is the
 * transaction's time). So the database builds one task's row and snapshot, and every other
 * task and event is that one with its own id and title: 1000 rows and snapshots built field by
 * field cost the statement a quarter of its time (docs/performance.md).
 * test/integration/history-sql.test.ts checks every task and event against the stored rows,
 * so a per-row default added to `tasks` fails it.
 */
export async function insertTasksWithTitles(
  tx: Tx,
  projectId: bigint,
  titles: string[],
  createdById: bigint,
  actorId: bigint | null,
): Promise<Task[]> {
  if (titles.length === 0) return [];
  const row = await tx.one<Row>(
    `with created as (
        insert into tasks (tenant_id, project_id, title, created_by_id)
        select $1::bigint, $2::bigint, u.title, $4::bigint
          from unnest($3::text[]) with ordinality as u(title, n)
         order by u.n
        returning *
     ),
     one as (select * from created order by id limit 1),
     common as materialized (select ${createdFromTitle.common('o')} as task from one o),
     history as (
        insert into task_events (tenant_id, task_id, project_id, kind, actor_id, task_version, data)
        select t.tenant_id, t.id, t.project_id, 'created', $5::bigint, t.version, ${createdFromTitle.data('c.task', 't')}
          from created t cross join common c
         order by t.id
     )
     select ${TASKS.row('o')}, (select json_agg(id::text order by id) from created) as ids from one o`,
    [tenantOf(tx), projectId.toString(), titles, createdById.toString(), actorId?.toString() ?? null],
  );
  const first = TASKS.parse(row);
  // Identity values follow the insert order, so id order is title order; the stored title is
  // the bound text.
  return (row.ids as string[]).map((id, i) => ({ ...first, id: BigInt(id), title: titles[i]! }));
}

export async function findTask(tx: Tx, id: bigint, options: { forUpdate?: boolean } = {}): Promise<Task | undefined> {
  const row = await tx.maybeOne<Row>(
    `select ${TASKS.row()} from tasks where tenant_id = $1::bigint and id = $2::bigint${options.forUpdate ? ' for update' : ''}`,
    [tenantOf(tx), id.toString()],
  );
  return row && TASKS.parse(row);
}

/** The task with its assignee and creator, in one statement. */
export async function findTaskWithPeople(tx: Tx, id: bigint): Promise<TaskWithPeople | undefined> {
  const row = await tx.maybeOne<Row>(
    `select ${TASKS.row('t')}, ${PEOPLE_COLUMNS} from tasks t ${PEOPLE_JOINS}
      where t.tenant_id = $1::bigint and t.id = $2::bigint`,
    [tenantOf(tx), id.toString()],
  );
  return row && withPeople(row);
}

export async function findTasksByIds(tx: Tx, ids: Iterable<bigint>): Promise<Map<bigint, Task>> {
  const list = idList(ids);
  if (list.length === 0) return new Map();
  const rows = await tx.many<Row>(
    `select ${TASKS.row()} from tasks where tenant_id = $1::bigint and id = any($2::bigint[])`,
    [tenantOf(tx), list],
  );
  return new Map(
    rows.map((r) => {
      const t = TASKS.parse(r);
      return [t.id, t];
    }),
  );
}

/** Direct subtasks of every task in `parentIds`, in one statement, oldest first. */
export async function findSubtasks(tx: Tx, parentIds: Iterable<bigint>): Promise<Task[]> {
  const list = idList(parentIds);
  if (list.length === 0) return [];
  const rows = await tx.many<Row>(
    `select ${TASKS.row()} from tasks where tenant_id = $1::bigint and parent_task_id = any($2::bigint[]) order by id`,
    [tenantOf(tx), list],
  );
  return rows.map(TASKS.parse);
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
 * The query of one page of tasks: the statement selecting `columns` (up to `limit` rows) and its
 * values. Filters, order and cursor only choose among fixed SQL fragments; every value is bound.
 */
function pageQuery(
  tx: Tx,
  filter: TaskFilter,
  order: TaskOrder,
  cursor: TaskCursor | null,
  limit: number,
  columns: string,
) {
  const q = new Params();
  const bind = (v: unknown, cast: string) => q.bind(v, cast);
  const tenant = bind(tenantOf(tx), 'bigint');
  const where = [`tenant_id = ${tenant}`];
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
        where.push(
          `(priority_rank < ${rank} or (priority_rank = ${rank} and id > ${bind(cursor.id.toString(), 'bigint')}))`,
        );
      }
      break;
  }
  return {
    /** The tenant's placeholder, for statements that wrap this one. */
    tenant,
    text: `select ${columns} from tasks where ${where.join(' and ')} order by ${orderBy} limit ${bind(limit, 'int')}`,
    orderBy,
    values: q.values,
  };
}

/** One page of tasks (up to `limit`). */
export async function listTasks(
  tx: Tx,
  filter: TaskFilter,
  order: TaskOrder,
  cursor: TaskCursor | null,
  limit: number,
): Promise<Task[]> {
  const page = pageQuery(tx, filter, order, cursor, limit, TASKS.row());
  return (await tx.many<Row>(page.text, page.values)).map(TASKS.parse);
}

/**
 * The same page with each task's assignee and creator, in ONE statement: the page is chosen by
 * the same query (and index) as listTasks, and the two workers are joined to its rows.
 */
export async function listTasksWithPeople(
  tx: Tx,
  filter: TaskFilter,
  order: TaskOrder,
  cursor: TaskCursor | null,
  limit: number,
): Promise<TaskWithPeople[]> {
  const page = pageQuery(tx, filter, order, cursor, limit, `${TASKS.columns()}, tenant_id, priority_rank`);
  const outerOrder = page.orderBy.replace(/(^|, )(\w)/g, '$1t.$2');
  // The page's workers, each once, as one JSON array on the first row: a page names the same
  // few workers on many rows, and decoding them per row cost as much as the tasks themselves.
  const rows = await tx.many<Row>(
    `with page as (${page.text})
     select ${TASKS.row('t')},
            case when row_number() over (order by ${outerOrder}) = 1 then
              (select json_agg(${WORKERS.array('w')}) from workers w
                where w.tenant_id = ${page.tenant}
                  and w.id in (select assignee_id from page union select created_by_id from page))
            end as people
       from page t
      order by ${outerOrder}`,
    page.values,
  );
  const people = new Map<bigint, Worker>();
  // On the first row of the order; found by value, so that no order can lose it.
  for (const values of (rows.find((r) => r.people !== null)?.people ?? []) as unknown[][]) {
    const worker = WORKERS.fromArray(values);
    people.set(worker.id, worker);
  }
  return rows.map((row) => {
    const task = TASKS.parse(row);
    return {
      task,
      assignee: task.assigneeId === null ? null : (people.get(task.assigneeId) ?? null),
      createdBy: people.get(task.createdById) ?? null,
    };
  });
}

/**
 * Writes the changes, bumps version and updated_at, returns the new row. `endLease` also ends
 * the task's running lease (if any) with that reason: its holder learns it on its next call.
 */
export async function updateTask(
  tx: Tx,
  id: bigint,
  changes: TaskChanges,
  endLease: LeaseEnd | null = null,
): Promise<Task> {
  const q = new Params();
  const set = [...TASKS.assignments(q, changes), 'version = version + 1', 'updated_at = now()'];
  if (endLease !== null) set.push(...leaseEnding(q, endLease));
  const row = await tx.one<Row>(
    `update tasks set ${set.join(', ')}
      where tenant_id = ${q.bind(tenantOf(tx), 'bigint')} and id = ${q.id(id)}
      returning ${TASKS.row()}`,
    q.values,
  );
  return TASKS.parse(row);
}

/** Assignments that end a running lease (and leave an ended one as it is). */
function leaseEnding(q: Params, reason: LeaseEnd): string[] {
  const running = 'lease_end is null and lease_expires_at is not null';
  return [
    `lease_end = case when ${running} then ${q.bind(reason, 'text')} else lease_end end`,
    `lease_expires_at = case when ${running} then null else lease_expires_at end`,
  ];
}

/** Deletes the task; its subtasks go with it (foreign key cascade). Returns the deleted ids. */
export async function deleteTask(tx: Tx, id: bigint): Promise<TaskRef[]> {
  // Collect the subtree first so that every deleted task gets its history event.
  const rows = await tx.many<RefRow>(
    `with recursive tree(id) as (
        select id from tasks where tenant_id = $1::bigint and id = $2::bigint
        union
        select t.id from tasks t join tree on t.parent_task_id = tree.id where t.tenant_id = $1::bigint
     )
     delete from tasks where tenant_id = $1::bigint and id in (select id from tree)
     returning id, project_id, version`,
    [tenantOf(tx), id.toString()],
  );
  return rows.map(toRef);
}

/** A task as its history events name it. */
export interface TaskRef {
  readonly id: bigint;
  readonly projectId: bigint;
  readonly version: bigint;
}
type RefRow = { id: string; project_id: string; version: string };
const toRef = (r: RefRow): TaskRef => ({
  id: BigInt(r.id),
  projectId: BigInt(r.project_id),
  version: BigInt(r.version),
});

/** Every task of the project (before a forced project delete records their deletion). */
export async function findProjectTaskRefs(tx: Tx, projectId: bigint): Promise<TaskRef[]> {
  // Locked: a write to one of these tasks that is still running must commit before its
  // 'deleted' event is written, or that event would carry a stale version and could reach
  // WatchTasks before the write it follows.
  const rows = await tx.many<RefRow>(
    `select id, project_id, version from tasks where tenant_id = $1::bigint and project_id = $2::bigint order by id for update`,
    [tenantOf(tx), projectId.toString()],
  );
  return rows.map(toRef);
}

/**
 * Marks every task of the project that is not completed as completed, in ONE statement, ending
 * the running leases of those tasks (revoked). `found` is false when the project does not
 * exist; `changed` lists each task with the status it had.
 */
export async function completeProjectTasks(
  tx: Tx,
  projectId: bigint,
): Promise<{ found: boolean; changed: (TaskRef & { statusBefore: TaskStatus; leaseRevoked: boolean })[] }> {
  const rows = await tx.many<RefRow & { status_before: string | null; lease_revoked: boolean | null }>(
    `with project as (
        select id from projects where tenant_id = $1::bigint and id = $2::bigint
     ), done as (
        update tasks t set status = 'completed', updated_at = now(), version = t.version + 1,
               lease_end = case when t.lease_end is null and t.lease_expires_at is not null then 'revoked' else t.lease_end end,
               lease_expires_at = case when t.lease_end is null then null else t.lease_expires_at end
          from (select id, status, lease_end is null and lease_expires_at is not null as running from tasks
                 where tenant_id = $1::bigint and project_id = (select id from project) and status <> 'completed'
                 for update) before
         where t.tenant_id = $1::bigint and t.id = before.id
        returning t.id, t.project_id, t.version, before.status as status_before, before.running as lease_revoked
     )
     select id, project_id, version, status_before, lease_revoked from done
     union all
     -- One marker row tells whether the project exists (also when it has nothing to complete).
     select null, null, null, null, null where exists (select 1 from project)
     order by id nulls last`,
    [tenantOf(tx), projectId.toString()],
  );
  const changed = rows
    .filter((r) => r.id !== null)
    .map((r) => ({ ...toRef(r), statusBefore: r.status_before as TaskStatus, leaseRevoked: r.lease_revoked === true }));
  return { found: rows.some((r) => r.id === null), changed };
}

/**
 * Unassigns every task of the worker (bumping versions, revoking its running leases); returns
 * the tasks as they are after the write.
 */
export async function unassignWorkerTasks(tx: Tx, workerId: bigint): Promise<(TaskRef & { leaseRevoked: boolean })[]> {
  const rows = await tx.many<RefRow & { lease_revoked: boolean }>(
    `update tasks t set assignee_id = null, version = t.version + 1, updated_at = now(),
            lease_end = case when t.lease_end is null and t.lease_expires_at is not null then 'revoked' else t.lease_end end,
            lease_expires_at = case when t.lease_end is null then null else t.lease_expires_at end
       from (select id, lease_end is null and lease_expires_at is not null as running from tasks
              where tenant_id = $1::bigint and assignee_id = $2::bigint for update) before
      where t.tenant_id = $1::bigint and t.id = before.id
      returning t.id, t.project_id, t.version, before.running as lease_revoked`,
    [tenantOf(tx), workerId.toString()],
  );
  return rows.map((r) => ({ ...toRef(r), leaseRevoked: r.lease_revoked }));
}

/**
 * The task and its subtasks down to `maxDepth` levels (null: all), in one recursive statement:
 * depth first, siblings by id. Empty when the task does not exist.
 */
export async function findTaskTree(
  tx: Tx,
  id: bigint,
  maxDepth: number | null,
): Promise<{ task: Task; depth: number }[]> {
  const rows = await tx.many<Row & { tree_depth: number }>(
    `with recursive tree(id, depth, path) as (
        select id, 0, array[id] from tasks where tenant_id = $1::bigint and id = $2::bigint
        union all
        select t.id, tree.depth + 1, tree.path || t.id
          from tree join tasks t on t.tenant_id = $1::bigint and t.parent_task_id = tree.id
         where ($3::int is null or tree.depth < $3::int)
           -- Parents never form a cycle (writes refuse one), but a walk must end regardless.
           and not t.id = any(tree.path)
     )
     select ${TASKS.row('t')}, tree.depth as tree_depth
       from tree join tasks t on t.tenant_id = $1::bigint and t.id = tree.id
      order by tree.path`,
    [tenantOf(tx), id.toString(), maxDepth],
  );
  return rows.map((r) => ({ task: TASKS.parse(r), depth: r.tree_depth }));
}
