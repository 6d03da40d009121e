import type { Tx } from '../db/index.js';
import {
  type FieldKind,
  type JsonObject,
  type NewTaskEvent,
  snakeCase,
  TASK_FIELDS,
  type TaskEvent,
  type TaskEventKind,
} from '../domain.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

export type { NewTaskEvent, TaskEvent, TaskEventKind } from '../domain.js';

/**
 * Appends history rows in one statement, in the same transaction as the write they describe.
 * The events travel as one JSON array of `[task_id, project_id, kind, actor_id, task_version,
 * data]`: one JSON.stringify, where seven parallel arrays (one of them JSON texts that pg
 * escapes element by element) cost a 1000-task create a fifth of its server CPU.
 */
export async function appendTaskEvents(tx: Tx, events: readonly NewTaskEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.exec(
    `insert into task_events (tenant_id, task_id, project_id, kind, actor_id, task_version, data)
     select $1::bigint, (e->>0)::bigint, (e->>1)::bigint, e->>2, (e->>3)::bigint, (e->>4)::bigint, e->5
       from jsonb_array_elements($2::jsonb) with ordinality as u(e, n)
      order by u.n`,
    [
      tenantOf(tx),
      JSON.stringify(
        events.map((e) => [
          e.taskId.toString(),
          e.projectId.toString(),
          e.kind,
          e.actorId === null ? null : e.actorId.toString(),
          e.taskVersion.toString(),
          e.data,
        ]),
      ),
    ],
  );
}

/** A recorded task field as its history snapshot holds it: ids as text, instants as ISO-8601 UTC. */
const historySql = (column: string, kind: FieldKind): string =>
  kind === 'bigint'
    ? `${column}::text`
    : kind === 'timestamp'
      ? `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
      : column;

/** The `'key', value` pairs of the snapshot's fields (`keys`), read from the task row `alias`. */
const snapshotPairs = (alias: string, keys: (key: string) => boolean): string =>
  Object.entries(TASK_FIELDS)
    .filter(([key, f]) => f.history && keys(key))
    .map(([key, f]) => `'${snakeCase(key)}', ${historySql(`${alias}.${snakeCase(key)}`, f.kind)}`)
    .join(', ');

/**
 * The data of a task's `created` event built by the database from the task row `alias`:
 * `{"task": {...}}` with the fields the history records, exactly as `taskEvent.created` builds
 * it in the service (test/integration/history-sql.test.ts compares the two). For writes that
 * create many tasks in one statement and record their events in the same one.
 */
export function createdEventDataSql(alias: string): string {
  return `jsonb_build_object('task', jsonb_build_object(${snapshotPairs(alias, () => true)}))`;
}

/**
 * `createdEventDataSql` in two parts, for one statement whose new tasks differ only in the
 * fields `perRow`: `common(alias)` is the snapshot of every other field, built once from any one
 * of the tasks, and `data(common, alias)` a task's data from it and its own `perRow` fields. The
 * database builds a jsonb object at ~0.5 µs per field and row; a 1000-task insert spent a fifth
 * of its time building 21-field snapshots one by one. jsonb orders keys itself, so the result is
 * equal to `createdEventDataSql`'s.
 */
export function createdEventDataSqlSplit(perRow: readonly (keyof typeof TASK_FIELDS)[]) {
  const own = new Set<string>(perRow);
  return {
    common: (alias: string) => `jsonb_build_object(${snapshotPairs(alias, (key) => !own.has(key))})`,
    data: (common: string, alias: string) =>
      `jsonb_build_object('task', ${common} || jsonb_build_object(${snapshotPairs(alias, (key) => own.has(key))}))`,
  };
}

/** A task_events row as `EVENT_COLUMNS` selects it. */
export interface EventRow {
  id: string;
  task_id: string;
  project_id: string;
  kind: string;
  actor_id: string | null;
  task_version: string;
  data: JsonObject;
  created_at: Date;
}

export const EVENT_COLUMNS = 'id, task_id, project_id, kind, actor_id, task_version, data, created_at';

export const toTaskEvent = (r: EventRow): TaskEvent => ({
  id: BigInt(r.id),
  taskId: BigInt(r.task_id),
  projectId: BigInt(r.project_id),
  kind: r.kind as TaskEventKind,
  actorId: r.actor_id === null ? null : BigInt(r.actor_id),
  taskVersion: BigInt(r.task_version),
  data: r.data,
  createdAt: r.created_at,
});

/**
 * A task's or a project's history in id order, a window at a time (keyset: the
 * (tenant_id, task_id, id) and (tenant_id, project_id, id) indexes serve both).
 */
export async function listTaskEvents(
  tx: Tx,
  filter: { taskId: bigint } | { projectId: bigint },
  window: IdWindow,
): Promise<TaskEvent[]> {
  const q = new Params();
  const of = 'taskId' in filter ? `task_id = ${q.id(filter.taskId)}` : `project_id = ${q.id(filter.projectId)}`;
  const where = [`tenant_id = ${q.bind(tenantOf(tx), 'bigint')}`, of];
  const rows = await tx.many<EventRow>(
    idPageQuery(q, `select ${EVENT_COLUMNS} from task_events`, where, window),
    q.values,
  );
  return rows.map(toTaskEvent);
}
