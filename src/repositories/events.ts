import type { Tx } from '../db/index.js';
import type { JsonObject } from '../domain.js';
import { tenantOf } from './tenant-scope.js';

export type TaskEventKind = 'created' | 'updated' | 'assigned' | 'unassigned' | 'deleted' | 'completed';

export interface NewTaskEvent {
  readonly taskId: bigint;
  readonly projectId: bigint;
  readonly kind: TaskEventKind;
  readonly actorId: bigint | null;
  readonly data: JsonObject;
}

/** Appends history rows in one statement, in the same transaction as the write they describe. */
export async function appendTaskEvents(tx: Tx, events: readonly NewTaskEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.exec(
    `insert into task_events (tenant_id, task_id, project_id, kind, actor_id, data)
     select $1::bigint, u.task_id, u.project_id, u.kind, u.actor_id, u.data
       from unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::jsonb[])
            with ordinality as u(task_id, project_id, kind, actor_id, data, n)
      order by u.n`,
    [
      tenantOf(tx),
      events.map((e) => e.taskId.toString()),
      events.map((e) => e.projectId.toString()),
      events.map((e) => e.kind),
      events.map((e) => (e.actorId === null ? null : e.actorId.toString())),
      events.map((e) => JSON.stringify(e.data)),
    ],
  );
}

/** A 'deleted' event for every task of the project, in one statement (before a forced project delete). */
export async function appendProjectTasksDeleted(tx: Tx, projectId: bigint, actorId: bigint | null): Promise<void> {
  await tx.exec(
    `insert into task_events (tenant_id, task_id, project_id, kind, actor_id, data)
     select tenant_id, id, project_id, 'deleted', $3::bigint, '{"reason": "project deleted"}'::jsonb
       from tasks where tenant_id = $1::bigint and project_id = $2::bigint
      order by id`,
    [tenantOf(tx), projectId.toString(), actorId === null ? null : actorId.toString()],
  );
}
