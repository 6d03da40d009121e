/** Row parsing at the repository boundary: snake_case rows in, typed domain objects out. */
import type { JsonObject, Project, Task, TaskPriority, TaskStatus, Tenant, Worker, WorkerType, ProjectStatus } from '../domain.js';

// int8 columns arrive as strings (pg keeps them exact), timestamptz as Date, jsonb parsed.
export interface TenantRow { id: string; name: string; subdomain: string; created_at: Date }
export interface WorkerRow { id: string; handle: string; type: string; email: string | null; capabilities: string[]; created_at: Date }
export interface ProjectRow {
  id: string; name: string; description: string; status: string; metadata: JsonObject;
  created_at: Date; updated_at: Date; version: string;
}
export interface TaskRow {
  id: string; title: string; description: string; status: string; priority: string; tags: string[];
  project_id: string; assignee_id: string | null; created_by_id: string; parent_task_id: string | null;
  created_at: Date; updated_at: Date; due_date: Date | null; version: string; lease_expires_at: Date | null;
}

export const TENANT_COLUMNS = 'id, name, subdomain, created_at';
export const WORKER_COLUMNS = 'id, handle, type, email, capabilities, created_at';
export const PROJECT_COLUMNS = 'id, name, description, status, metadata, created_at, updated_at, version';
export const TASK_COLUMNS =
  'id, title, description, status, priority, tags, project_id, assignee_id, created_by_id, parent_task_id, created_at, updated_at, due_date, version, lease_expires_at';

const big = (v: string | null): bigint | null => (v === null ? null : BigInt(v));

export const toTenant = (r: TenantRow): Tenant => ({ id: BigInt(r.id), name: r.name, subdomain: r.subdomain, createdAt: r.created_at });

export const toWorker = (r: WorkerRow): Worker => ({
  id: BigInt(r.id),
  handle: r.handle,
  type: r.type as WorkerType,
  email: r.email,
  capabilities: r.capabilities,
  createdAt: r.created_at,
});

export const toProject = (r: ProjectRow): Project => ({
  id: BigInt(r.id),
  name: r.name,
  description: r.description,
  status: r.status as ProjectStatus,
  metadata: r.metadata,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  version: BigInt(r.version),
});

export const toTask = (r: TaskRow): Task => ({
  id: BigInt(r.id),
  title: r.title,
  description: r.description,
  status: r.status as TaskStatus,
  priority: r.priority as TaskPriority,
  tags: r.tags,
  projectId: BigInt(r.project_id),
  assigneeId: big(r.assignee_id),
  createdById: BigInt(r.created_by_id),
  parentTaskId: big(r.parent_task_id),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  dueDate: r.due_date,
  version: BigInt(r.version),
  leaseExpiresAt: r.lease_expires_at,
});

/** Ids as a bound parameter for `= any($n::bigint[])`. */
export const idList = (ids: Iterable<bigint>): string[] => [...new Set([...ids].map(String))];
