/**
 * The one builder of task history (SPEC §6): every event's JSON is shaped here, whichever write
 * it records. `changes` maps each field that moved (by its column name, as the API names it) to
 * its `before` and `after`; values are JSON (ids and versions as strings, times as ISO text).
 */
import { type JsonObject, type JsonValue, TASK_HISTORY_FIELDS, type Task } from '../domain.js';
import type { NewTaskEvent, TaskEventKind } from '../repositories/events.js';
import type { TaskRef } from '../repositories/tasks.js';

/** Recorded fields with their names in history (a bulk create records thousands); id goes last. */
const RECORDED = TASK_HISTORY_FIELDS.filter((f) => f.key !== 'id');

/** A field value as history records it. */
function historyValue(v: unknown): JsonValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  return v as JsonValue;
}

/** before/after of every recorded field present in both and really changed. */
function changes(before: Partial<Task>, after: Partial<Task>): JsonObject {
  const out: JsonObject = {};
  for (const { key, name } of RECORDED) {
    if (!(key in before) || !(key in after)) continue;
    const a = historyValue(before[key]);
    const b = historyValue(after[key]);
    if (JSON.stringify(a) !== JSON.stringify(b)) out[name] = { before: a, after: b };
  }
  return out;
}

/** The task as its `created` event records it. */
export function snapshot(task: Task): JsonObject {
  const out: JsonObject = {};
  for (const { key, name } of RECORDED) out[name] = historyValue(task[key]);
  out.id = task.id.toString();
  return out;
}

export const taskEvent = {
  created: (task: Task, actorId: bigint | null): NewTaskEvent => ({
    taskId: task.id,
    projectId: task.projectId,
    kind: 'created',
    actorId,
    taskVersion: task.version,
    data: { task: snapshot(task) },
  }),

  /**
   * A write that changed fields. `before` and `after` may be partial (a set-based statement
   * returns only what it touched); only fields present in both are compared.
   */
  changed: (
    kind: TaskEventKind,
    ref: TaskRef,
    before: Partial<Task>,
    after: Partial<Task>,
    actorId: bigint | null,
    extra: JsonObject = {},
  ): NewTaskEvent => ({
    taskId: ref.id,
    projectId: ref.projectId,
    kind,
    actorId,
    taskVersion: ref.version,
    data: { changes: changes(before, after), ...extra },
  }),

  deleted: (ref: TaskRef, actorId: bigint | null, extra: JsonObject = {}): NewTaskEvent => ({
    taskId: ref.id,
    projectId: ref.projectId,
    kind: 'deleted',
    actorId,
    taskVersion: ref.version,
    data: extra,
  }),
};

/**
 * The event of one task of a set-based write (one statement over many tasks): its version moved
 * by one, the fields in `before`/`after` changed, and its running lease was revoked when
 * `leaseRevoked`.
 */
export function setWriteEvent(
  kind: TaskEventKind,
  ref: TaskRef & { readonly leaseRevoked: boolean },
  before: Partial<Task>,
  after: Partial<Task>,
  actorId: bigint | null,
  extra: JsonObject = {},
): NewTaskEvent {
  const lease = ref.leaseRevoked ? [{ leaseEnd: null }, { leaseEnd: 'revoked' as const }] : [{}, {}];
  return taskEvent.changed(
    kind,
    ref,
    { version: ref.version - 1n, ...before, ...lease[0] },
    { version: ref.version, ...after, ...lease[1] },
    actorId,
    extra,
  );
}
