/** Row parsing at the repository boundary: snake_case rows in, typed domain objects out. */
import { PROJECT_FIELDS, TASK_FIELDS, type Tenant, WORKER_FIELDS } from '../domain.js';
import { defineTable } from './sql.js';

export { idList } from './sql.js';

// int8 columns arrive as strings (pg keeps them exact), timestamptz as Date.
export interface TenantRow {
  id: string;
  name: string;
  subdomain: string;
  created_at: Date;
}
export const TENANT_COLUMNS = 'id, name, subdomain, created_at';

/** Workers, projects and tasks: select list, parser, insert and update derived from the domain's field maps. */
export const WORKERS = defineTable('workers', WORKER_FIELDS);
export const PROJECTS = defineTable('projects', PROJECT_FIELDS);
export const TASKS = defineTable('tasks', TASK_FIELDS);

export const toTenant = (r: TenantRow): Tenant => ({
  id: BigInt(r.id),
  name: r.name,
  subdomain: r.subdomain,
  createdAt: r.created_at,
});
