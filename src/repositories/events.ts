import type { Tx } from '../db/index.js';
import type { JsonObject, NewTaskEvent, TaskEvent, TaskEventKind } from '../domain.js';
import { type IdWindow, idPageQuery, Params } from './sql.js';
import { tenantOf } from './tenant-scope.js';

export type { NewTaskEvent, TaskEvent, TaskEventKind } from '../domain.js';

/** Appends history rows in one statement, in the same transaction as the write they describe. */
export async function appendTaskEvents(tx: Tx, events: readonly NewTaskEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.exec(
    `insert into task_events (tenant_id, task_id, project_id, kind, actor_id, task_version, data)
     select $1::bigint, u.task_id, u.project_id, u.kind, u.actor_id, u.task_version, u.data
       from unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::jsonb[])
            with ordinality as u(task_id, project_id, kind, actor_id, task_version, data, n)
      order by u.n`,
    [
      tenantOf(tx),
      events.map((e) => e.taskId.toString()),
      events.map((e) => e.projectId.toString()),
      events.map((e) => e.kind),
      events.map((e) => (e.actorId === null ? null : e.actorId.toString())),
      events.map((e) => e.taskVersion.toString()),
      events.map((e) => JSON.stringify(e.data)),
    ],
  );
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
