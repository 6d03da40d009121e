import type { Tx } from '../db/index.js';
import type { JsonObject, Project, ProjectStatus } from '../domain.js';
import { PROJECT_COLUMNS, type ProjectRow, idList, toProject } from './rows.js';
import { tenantOf } from './tenant-scope.js';

export interface NewProject {
  readonly name: string;
  readonly description: string;
  readonly status: ProjectStatus;
  readonly metadata: JsonObject;
}

export interface ProjectChanges {
  readonly name?: string;
  readonly description?: string;
  readonly status?: ProjectStatus;
  readonly metadata?: JsonObject;
}

export async function insertProject(tx: Tx, p: NewProject): Promise<Project> {
  const row = await tx.one<ProjectRow>(
    `insert into projects (tenant_id, name, description, status, metadata)
     values ($1::bigint, $2, $3, $4, $5::jsonb) returning ${PROJECT_COLUMNS}`,
    [tenantOf(tx), p.name, p.description, p.status, JSON.stringify(p.metadata)],
  );
  return toProject(row);
}

export async function findProject(tx: Tx, id: bigint, options: { forUpdate?: boolean } = {}): Promise<Project | undefined> {
  const row = await tx.maybeOne<ProjectRow>(
    `select ${PROJECT_COLUMNS} from projects where tenant_id = $1::bigint and id = $2::bigint${options.forUpdate ? ' for update' : ''}`,
    [tenantOf(tx), id.toString()],
  );
  return row && toProject(row);
}

export async function findProjectsByIds(tx: Tx, ids: Iterable<bigint>): Promise<Map<bigint, Project>> {
  const list = idList(ids);
  if (list.length === 0) return new Map();
  const rows = await tx.many<ProjectRow>(
    `select ${PROJECT_COLUMNS} from projects where tenant_id = $1::bigint and id = any($2::bigint[])`,
    [tenantOf(tx), list],
  );
  return new Map(rows.map((r) => [BigInt(r.id), toProject(r)]));
}

export async function listProjects(tx: Tx, filter: { status: ProjectStatus | null }, afterId: bigint, limit: number): Promise<Project[]> {
  const rows = await tx.many<ProjectRow>(
    `select ${PROJECT_COLUMNS} from projects
      where tenant_id = $1::bigint and ($2::text is null or status = $2) and id > $3::bigint
      order by id limit $4`,
    [tenantOf(tx), filter.status, afterId.toString(), limit],
  );
  return rows.map(toProject);
}

/** Writes the given fields, bumps the version and updated_at. Undefined fields keep their value. */
export async function updateProject(tx: Tx, id: bigint, changes: ProjectChanges): Promise<Project> {
  const row = await tx.one<ProjectRow>(
    `update projects set
        name = coalesce($3, name),
        description = coalesce($4, description),
        status = coalesce($5, status),
        metadata = coalesce($6::jsonb, metadata),
        version = version + 1,
        updated_at = now()
      where tenant_id = $1::bigint and id = $2::bigint
      returning ${PROJECT_COLUMNS}`,
    [
      tenantOf(tx),
      id.toString(),
      changes.name ?? null,
      changes.description ?? null,
      changes.status ?? null,
      changes.metadata === undefined ? null : JSON.stringify(changes.metadata),
    ],
  );
  return toProject(row);
}

export async function projectHasTasks(tx: Tx, id: bigint): Promise<boolean> {
  const row = await tx.one<{ found: boolean }>(
    `select exists (select 1 from tasks where tenant_id = $1::bigint and project_id = $2::bigint) as found`,
    [tenantOf(tx), id.toString()],
  );
  return row.found;
}

/** Deletes the project; its tasks go with it (foreign key cascade). */
export async function deleteProject(tx: Tx, id: bigint): Promise<boolean> {
  return (await tx.exec(`delete from projects where tenant_id = $1::bigint and id = $2::bigint`, [tenantOf(tx), id.toString()])) > 0;
}
