/** The domain objects repositories return and services work with (camelCase, bigint ids). */

export const TASK_STATUSES = ['pending', 'in_progress', 'review', 'completed', 'blocked'] as const;
export const TASK_PRIORITIES = ['low', 'medium', 'high', 'critical'] as const;
export const WORKER_TYPES = ['human', 'agent'] as const;
export const PROJECT_STATUSES = ['active', 'completed', 'archived'] as const;

export type TaskStatus = (typeof TASK_STATUSES)[number];
export type TaskPriority = (typeof TASK_PRIORITIES)[number];
export type WorkerType = (typeof WORKER_TYPES)[number];
export type ProjectStatus = (typeof PROJECT_STATUSES)[number];
export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

export interface Tenant {
  readonly id: bigint;
  readonly name: string;
  readonly subdomain: string;
  readonly createdAt: Date;
}

/** A field's name in SQL and in the API (columns, update masks, history): `dueDate` → `due_date`. */
export const snakeCase = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * The stored fields of projects and tasks, declared once. The repositories derive the select
 * list, the row parser, the insert and the update from these maps (column = the snake_case of
 * the key), the types below are derived from them, and the history records the fields marked
 * for it. A new column is: a migration, one line here, the .proto, and src/rpc/convert.ts (see
 * "How to add a column" in the README).
 *
 * `kind` is the stored representation; `write` says who writes the field:
 * - `always`: set on insert and changed by updates (`writable`; `required` when an insert must
 *   give it: NOT NULL without a default; any other may be left out and gets the column's default);
 * - `create`: set on insert only, and always given;
 * - `never`: maintained by the database or by the service's own statements (claims, leases).
 */
export type FieldKind = 'bigint' | 'int' | 'text' | 'timestamp' | 'json';
export type WriteMode = 'always' | 'create' | 'never';

export interface Field<T, W extends WriteMode = WriteMode, R extends boolean = boolean> {
  readonly kind: FieldKind;
  readonly write: W;
  /** An insert must give it (else the column's default or null applies). */
  readonly required: R;
  /** Recorded in the before/after of history events (updated_at is not: every write moves it). */
  readonly history: boolean;
  /** Type-level only: the domain type of the field. */
  readonly type?: T;
}

const field =
  <W extends WriteMode, R extends boolean>(write: W, required: R) =>
  <T>(kind: FieldKind, options: { history?: boolean } = {}): Field<T, W, R> => ({
    kind,
    write,
    required,
    history: options.history ?? true,
  });
const writable = field('always', false);
const required = field('always', true);
const createOnly = field('create', true);
const readOnly = field('never', false);

export type Fields = Record<string, Field<unknown>>;
/** The domain object of a field map. */
export type Entity<F extends Fields> = { readonly [K in keyof F]: F[K] extends Field<infer T> ? T : never };
type KeysWritten<F extends Fields, W extends WriteMode> = {
  [K in keyof F]: F[K] extends Field<unknown, infer M> ? (M extends W ? K : never) : never;
}[keyof F];
type KeysRequired<F extends Fields> = {
  [K in keyof F]: F[K] extends Field<unknown, WriteMode, infer R> ? (R extends true ? K : never) : never;
}[keyof F];
/** The fields an insert takes: the required ones, and any other writable one. */
export type Insertable<F extends Fields> = Pick<Entity<F>, KeysRequired<F>> &
  Partial<Pick<Entity<F>, Exclude<KeysWritten<F, 'always' | 'create'>, KeysRequired<F>>>>;
/** The fields an update may change: `undefined` keeps the current value, `null` clears a nullable one. */
export type Changes<F extends Fields> = Partial<Pick<Entity<F>, KeysWritten<F, 'always'>>>;

/** Workers are read through the same field map (their writes are statements of their own). */
export const WORKER_FIELDS = {
  id: readOnly<bigint>('bigint'),
  handle: required<string>('text'),
  type: required<WorkerType>('text'),
  email: writable<string | null>('text'),
  capabilities: writable<string[]>('json'),
  createdAt: readOnly<Date>('timestamp'),
};
export type Worker = Entity<typeof WORKER_FIELDS>;

export const PROJECT_FIELDS = {
  id: readOnly<bigint>('bigint'),
  name: required<string>('text'),
  description: writable<string>('text'),
  status: writable<ProjectStatus>('text'),
  metadata: writable<JsonObject>('json'),
  createdAt: readOnly<Date>('timestamp'),
  updatedAt: readOnly<Date>('timestamp', { history: false }),
  version: readOnly<bigint>('bigint'),
};

/** Why a task's current lease ended before it expired (null while it runs or after it expired unseen). */
export type LeaseEnd = 'released' | 'revoked' | 'expired';

export const TASK_FIELDS = {
  id: readOnly<bigint>('bigint'),
  title: required<string>('text'),
  description: writable<string>('text'),
  status: writable<TaskStatus>('text'),
  priority: writable<TaskPriority>('text'),
  tags: writable<string[]>('json'),
  projectId: createOnly<bigint>('bigint'),
  assigneeId: writable<bigint | null>('bigint'),
  createdById: createOnly<bigint>('bigint'),
  parentTaskId: writable<bigint | null>('bigint'),
  createdAt: readOnly<Date>('timestamp'),
  updatedAt: readOnly<Date>('timestamp', { history: false }),
  dueDate: writable<Date | null>('timestamp'),
  version: readOnly<bigint>('bigint'),
  requiredCapabilities: writable<string[]>('json'),
  maxAttempts: writable<number>('int'),
  notBefore: writable<Date | null>('timestamp'),
  attempts: readOnly<number>('int'),
  lastError: readOnly<string>('text'),
  /** The fencing token of the current (or last) lease: grows by one with every claim. */
  leaseToken: readOnly<bigint>('bigint'),
  leaseExpiresAt: readOnly<Date | null>('timestamp'),
  leaseEnd: readOnly<LeaseEnd | null>('text'),
};

export type Project = Entity<typeof PROJECT_FIELDS>;
/** The task fields history records, in the field map's order, with their names in history (the columns'). */
export const TASK_HISTORY_FIELDS = (Object.keys(TASK_FIELDS) as (keyof typeof TASK_FIELDS)[])
  .filter((key) => TASK_FIELDS[key].history)
  .map((key) => ({ key, name: snakeCase(key), kind: TASK_FIELDS[key].kind }));

export type Task = Entity<typeof TASK_FIELDS>;
export type NewProject = Insertable<typeof PROJECT_FIELDS>;
export type NewTask = Insertable<typeof TASK_FIELDS>;
/** What an update writes: present fields only (see `Changes`). */
export type ProjectChanges = Changes<typeof PROJECT_FIELDS>;
export type TaskChanges = Changes<typeof TASK_FIELDS>;

export type TaskEventKind =
  | 'created'
  | 'updated'
  | 'assigned'
  | 'unassigned'
  | 'claimed'
  | 'heartbeat'
  | 'released'
  | 'lease_expired'
  | 'deleted'
  | 'completed';

/** A history row to append (SPEC §6). */
export interface NewTaskEvent {
  readonly taskId: bigint;
  readonly projectId: bigint;
  readonly kind: TaskEventKind;
  readonly actorId: bigint | null;
  /** The task's version after the write. */
  readonly taskVersion: bigint;
  readonly data: JsonObject;
}

export interface TaskEvent extends NewTaskEvent {
  readonly id: bigint;
  readonly createdAt: Date;
}

/** A task with the relations a view asks for, loaded in batch. */
export interface TaskView extends Task {
  readonly assignee: Worker | null;
  readonly createdBy: Worker | null;
  readonly project?: Project | null;
  readonly parent?: Task | null;
  readonly subtasks?: Task[];
}

export type TaskViewKind = 'basic' | 'full';

/**
 * Allowed status changes (SPEC §3); anything else is FAILED_PRECONDITION. Setting the status
 * a task already has is not a change and always allowed.
 */
export const TASK_TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  pending: ['in_progress', 'blocked', 'completed'],
  in_progress: ['review', 'completed', 'blocked', 'pending'],
  review: ['in_progress', 'completed'],
  blocked: ['pending', 'in_progress'],
  completed: ['review'],
};
