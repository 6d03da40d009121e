/**
 * A `created` event's data built by the database (createdEventDataSql, used where one statement
 * inserts many tasks) must equal what the service builds for the same task (taskEvent.created):
 * clients read both from the same history.
 */
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/domain.js';
import { createdEventDataSql, readCreatedData, storedCreatedData } from '../../src/repositories/events.js';
import { TASKS } from '../../src/repositories/rows.js';
import { insertTasksWithTitles } from '../../src/repositories/tasks.js';
import { taskEvent } from '../../src/services/task-events.js';
import { useTenantDatabase } from '../helpers/database.js';

const t = useTenantDatabase();

describe('created events built by the database', () => {
  it('hold the snapshot the service would write, for every kind of field', async () => {
    const { created, stored, rows, events } = await t.open.db.withTenantTransaction(t.tenantId, async (tx) => {
      const tenant = t.tenantId.toString();
      const worker = await tx.one<{ id: string }>(
        `insert into workers (tenant_id, handle) values ($1::bigint, '@history') returning id::text`,
        [tenant],
      );
      const project = await tx.one<{ id: string }>(
        `insert into projects (tenant_id, name) values ($1::bigint, 'history') returning id::text`,
        [tenant],
      );
      const created = await insertTasksWithTitles(
        tx,
        BigInt(project.id),
        ['plain', 'with every field', 'ünïcode "quoted" \\ title'],
        BigInt(worker.id),
        BigInt(worker.id),
      );
      // Before any change: what the insert returned is what it stored, task by task.
      const stored = (
        await tx.many<Record<string, unknown>>(
          `select ${TASKS.row('t')} from tasks t where t.tenant_id = $1::bigint and t.project_id = $2::bigint order by t.id`,
          [tenant, project.id],
        )
      ).map(TASKS.parse);
      // Every field set on the second task, timestamps with microseconds on both sides of a millisecond.
      await tx.exec(
        `update tasks set description = 'd', status = 'in_progress', priority = 'critical', tags = '["a","b"]',
                assignee_id = $2::bigint, parent_task_id = $3::bigint, due_date = '2026-12-01 10:00:00.123999+00',
                required_capabilities = '["gpu"]', max_attempts = 3, not_before = '1999-12-31 23:59:59.9995+00',
                attempts = 2, last_error = 'boom', lease_token = 9007199254740993,
                lease_expires_at = '2026-12-01 10:00:00.000001+00', lease_end = 'expired'
          where tenant_id = $1::bigint and id = $4::bigint`,
        [tenant, worker.id, created[0]!.id.toString(), created[1]!.id.toString()],
      );
      const rows = await tx.many<Record<string, unknown>>(
        `select ${TASKS.row('t')}, ${createdEventDataSql('t')} as data from tasks t
          where t.tenant_id = $1::bigint and t.project_id = $2::bigint order by t.id`,
        [tenant, project.id],
      );
      const events = await tx.many<{
        task_id: string;
        kind: string;
        actor_id: string;
        task_version: string;
        data: unknown;
      }>(
        `select task_id::text, kind, actor_id::text, task_version::text, data from task_events
          where tenant_id = $1::bigint and project_id = $2::bigint order by id`,
        [tenant, project.id],
      );
      return { created, stored, rows, events };
    });
    expect(rows).toHaveLength(3);
    // The statement builds one row and one snapshot and varies them by id and title only:
    // a column whose value differed between the rows of one insert would fail here.
    expect(created).toEqual(stored);
    expect(created.map((c) => c.title)).toEqual(['plain', 'with every field', 'ünïcode "quoted" \\ title']);
    for (const row of rows) {
      const task = TASKS.parse(row);
      expect(row.data, task.title).toEqual(taskEvent.created(task, null).data);
    }
    // The statement that inserted the tasks wrote their events, in task order.
    const first = TASKS.parse(rows[0]!);
    expect(events.map((e) => [e.task_id, e.kind, e.task_version])).toEqual(
      rows.map((r) => [TASKS.parse(r).id.toString(), 'created', '1']),
    );
    // Stored compactly (the fields off their defaults), read back whole.
    const whole = stored.map((task) => taskEvent.created(task, null).data);
    expect(events.map((e) => e.data)).toEqual(whole.map(storedCreatedData));
    expect(events.map((e) => readCreatedData(e.data as JsonObject))).toEqual(whole);
    // A task given only what an insert needs holds every default the compact form leaves out: a
    // migration that changes a column default fails here (and needs a new defaults version).
    expect(Object.keys(storedCreatedData(whole[0]!).task as JsonObject).sort()).toEqual([
      'created_at',
      'created_by_id',
      'id',
      'project_id',
      'title',
    ]);
    expect(events[0]!.actor_id).toBe(first.createdById.toString());
  });
});
