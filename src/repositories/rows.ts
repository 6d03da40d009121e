/** Row parsing at the repository boundary: snake_case rows in, typed domain objects out. */
import { PROJECT_FIELDS, TASK_FIELDS, type Tenant, type Worker, type WorkerType } from '../domain.js';
import { defineTable } from './sql.js';

export { idList } from './sql.js';

// int8 columns arrive as strings (pg keeps them exact), timestamptz as Date, jsonb parsed.
export interface TenantRow {
  id: string;
  name: string;
  subdomain: string;
  created_at: Date;
}
export interface WorkerRow {
  id: string;
  handle: string;
  type: string;
  email: string | null;
  capabilities: string[];
  created_at: Date;
}
export const TENANT_COLUMNS = 'id, name, subdomain, created_at';
export const WORKER_COLUMNS = 'id, handle, type, email, capabilities, created_at';

/** Projects and tasks: select list, parser, insert and update derived from the domain's field maps. */
export const PROJECTS = defineTable('projects', PROJECT_FIELDS);
export const TASKS = defineTable('tasks', TASK_FIELDS);

export const toTenant = (r: TenantRow): Tenant => ({
  id: BigInt(r.id),
  name: r.name,
  subdomain: r.subdomain,
  createdAt: r.created_at,
});

export const toWorker = (r: WorkerRow): Worker => ({
  id: BigInt(r.id),
  handle: r.handle,
  type: r.type as WorkerType,
  email: r.email,
  capabilities: r.capabilities,
  createdAt: r.created_at,
});
