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

export interface Worker {
  readonly id: bigint;
  readonly handle: string;
  readonly type: WorkerType;
  readonly email: string | null;
  readonly capabilities: string[];
  readonly createdAt: Date;
}

export interface Project {
  readonly id: bigint;
  readonly name: string;
  readonly description: string;
  readonly status: ProjectStatus;
  readonly metadata: JsonObject;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly version: bigint;
}

export interface Task {
  readonly id: bigint;
  readonly title: string;
  readonly description: string;
  readonly status: TaskStatus;
  readonly priority: TaskPriority;
  readonly tags: string[];
  readonly projectId: bigint;
  readonly assigneeId: bigint | null;
  readonly createdById: bigint;
  readonly parentTaskId: bigint | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly dueDate: Date | null;
  readonly version: bigint;
  readonly leaseExpiresAt: Date | null;
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
