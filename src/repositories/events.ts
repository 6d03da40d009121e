import type { Tx } from '../db/index.js';
import {
  type FieldKind,
  type JsonObject,
  type JsonValue,
  type NewTaskEvent,
  type TASK_FIELDS,
  TASK_HISTORY_FIELDS,
  type TaskEvent,
  type TaskEventKind,
} from '../domain.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

export type { NewTaskEvent, TaskEvent, TaskEventKind } from '../domain.js';

/**
 * How a `created` event is stored. Its data is the whole new task (`{"task": {...}}`, every
 * recorded field), and most of a new task is its columns' defaults, so the row keeps only the
 * fields that differ from these, with `"defaults": 1`; reading puts the rest back, so clients
 * always see the whole task. A 1000-task CreateProjectWithTasks wrote 528 bytes of snapshot per
 * event, and building and writing them was a third of the statement (docs/performance.md).
 *
 * FROZEN: these are the defaults of migrations 1764000000100 and 1764100000000, in history form.
 * Events stored with `"defaults": 1` are read with them forever; a migration that changes a
 * default needs a `CREATED_DEFAULTS` version 2 (test/integration/history-sql.test.ts fails until
 * it exists). Rows without the marker (full snapshots) are read as they are.
 */
const CREATED_DEFAULTS: { readonly [version: number]: JsonObject } = {
  1: {
    description: '',
    status: 'pending',
    priority: 'medium',
    tags: [],
    assignee_id: null,
    parent_task_id: null,
    due_date: null,
    version: '1',
    required_capabilities: [],
    max_attempts: 0,
    not_before: null,
    attempts: 0,
    last_error: '',
    lease_token: '0',
    lease_expires_at: null,
    lease_end: null,
  },
};
const CREATED_VERSION = 1;
const DEFAULTS = CREATED_DEFAULTS[CREATED_VERSION]!;
const DEFAULTS_JSON = Object.fromEntries(Object.entries(DEFAULTS).map(([k, v]) => [k, JSON.stringify(v)]));

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v);

/** A `created` event's data as stored: the task's fields that differ from a new task's defaults. */
export function storedCreatedData(data: JsonObject): JsonObject {
  const task = data.task;
  if (!isObject(task) || Object.keys(data).length !== 1) return data;
  const kept: JsonObject = {};
  for (const [key, value] of Object.entries(task)) {
    if (DEFAULTS_JSON[key] !== JSON.stringify(value)) kept[key] = value;
  }
  return { task: kept, defaults: CREATED_VERSION };
}

/** The snapshot's keys in the field map's order (id, title, …): the order a whole task is read back in. */
const SNAPSHOT_KEYS = TASK_HISTORY_FIELDS.map((f) => f.name);

/** The whole `created` data again from what `storedCreatedData` (or the SQL below) stored. */
export function readCreatedData(data: JsonObject): JsonObject {
  const defaults = typeof data.defaults === 'number' ? CREATED_DEFAULTS[data.defaults] : undefined;
  const stored = data.task;
  if (!defaults || !isObject(stored)) return data;
  const task: JsonObject = {};
  for (const key of SNAPSHOT_KEYS) {
    const value = key in stored ? stored[key] : defaults[key];
    if (value !== undefined) task[key] = value;
  }
  // A field recorded later than these defaults, stored because it was set.
  for (const [key, value] of Object.entries(stored)) if (!(key in task)) task[key] = value;
  return { task };
}

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
          e.kind === 'created' ? storedCreatedData(e.data) : e.data,
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
  TASK_HISTORY_FIELDS.filter((f) => keys(f.key))
    .map((f) => `'${f.name}', ${historySql(`${alias}.${f.name}`, f.kind)}`)
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
 * The stored `created` data (see `storedCreatedData`) of tasks that one statement inserts and
 * that differ only in the fields `perRow`: `common(alias)` is the snapshot of every other field
 * that is not at its default, built once from any one of the tasks, and `data(common, alias)` a
 * task's stored data from it and its own `perRow` fields. Building a jsonb object costs the
 * database ~0.5 µs per key and row; jsonb orders keys itself, so the result is equal to
 * `storedCreatedData` of `createdEventDataSql`'s.
 */
export function createdEventDataSqlSplit(perRow: readonly (keyof typeof TASK_FIELDS)[]) {
  const own = new Set<string>(perRow);
  const defaults = `'${JSON.stringify(DEFAULTS).replaceAll("'", "''")}'::jsonb`;
  return {
    common: (alias: string) => {
      const full = `jsonb_build_object(${snapshotPairs(alias, (key) => !own.has(key))})`;
      return `(select jsonb_object_agg(f.key, f.value) filter (where ${defaults} -> f.key is distinct from f.value)
                 from jsonb_each(${full}) f)`;
    },
    data: (common: string, alias: string) =>
      `jsonb_build_object('task', coalesce(${common}, '{}') || jsonb_build_object(${snapshotPairs(alias, (key) => own.has(key))}), 'defaults', ${CREATED_VERSION})`,
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
  data: r.kind === 'created' ? readCreatedData(r.data) : r.data,
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
