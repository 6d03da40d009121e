import type { Tx } from '../db/index.js';
import type { NewProject, Project, ProjectChanges, ProjectStatus } from '../domain.js';
import { idList, PROJECTS } from './rows.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

type Row = Record<string, unknown>;

export async function insertProject(tx: Tx, p: NewProject): Promise<Project> {
  const q = new Params();
  const tenant = q.bind(tenantOf(tx), 'bigint');
  const { columns, placeholders } = PROJECTS.insert(q, p);
  const row = await tx.one<Row>(
    `insert into projects (tenant_id, ${columns.join(', ')}) values (${tenant}, ${placeholders.join(', ')})
     returning ${PROJECTS.row()}`,
    q.values,
  );
  return PROJECTS.parse(row);
}

export async function findProject(
  tx: Tx,
  id: bigint,
  options: { forUpdate?: boolean } = {},
): Promise<Project | undefined> {
  const row = await tx.maybeOne<Row>(
    `select ${PROJECTS.row()} from projects where tenant_id = $1::bigint and id = $2::bigint${options.forUpdate ? ' for update' : ''}`,
    [tenantOf(tx), id.toString()],
  );
  return row && PROJECTS.parse(row);
}

export async function findProjectsByIds(tx: Tx, ids: Iterable<bigint>): Promise<Map<bigint, Project>> {
  const list = idList(ids);
  if (list.length === 0) return new Map();
  const rows = await tx.many<Row>(
    `select ${PROJECTS.row()} from projects where tenant_id = $1::bigint and id = any($2::bigint[])`,
    [tenantOf(tx), list],
  );
  return new Map(
    rows.map((r) => {
      const p = PROJECTS.parse(r);
      return [p.id, p];
    }),
  );
}

/** Projects (of one status, or all) in id order, a window at a time. */
export async function listProjects(
  tx: Tx,
  filter: { status: ProjectStatus | null },
  window: IdWindow,
): Promise<Project[]> {
  const q = new Params();
  const where = [`tenant_id = ${q.bind(tenantOf(tx), 'bigint')}`];
  if (filter.status !== null) where.push(`status = ${q.bind(filter.status, 'text')}`);
  const rows = await tx.many<Row>(idPageQuery(q, `select ${PROJECTS.row()} from projects`, where, window), q.values);
  return rows.map(PROJECTS.parse);
}

/** Writes the given fields, bumps the version and updated_at. Undefined fields keep their value. */
export async function updateProject(tx: Tx, id: bigint, changes: ProjectChanges): Promise<Project> {
  const q = new Params();
  const set = [...PROJECTS.assignments(q, changes), 'version = version + 1', 'updated_at = now()'];
  const row = await tx.one<Row>(
    `update projects set ${set.join(', ')}
      where tenant_id = ${q.bind(tenantOf(tx), 'bigint')} and id = ${q.id(id)}
      returning ${PROJECTS.row()}`,
    q.values,
  );
  return PROJECTS.parse(row);
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
  return (
    (await tx.exec(`delete from projects where tenant_id = $1::bigint and id = $2::bigint`, [
      tenantOf(tx),
      id.toString(),
    ])) > 0
  );
}
