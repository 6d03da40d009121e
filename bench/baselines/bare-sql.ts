/** The bare server's statements (named: each is parsed and planned once per connection). */
import type pg from 'pg';

// The workers of the tasks, each once, as one JSON array built by the database: no second
// statement, and (measured) half the client CPU of a JSON object per task and relation.
const WORKERS_JSON = `json_agg(json_build_object('id', w.id::text, 'handle', w.handle, 'type', w.type, 'email', w.email,
                                                'capabilities', w.capabilities, 'created_at_ms', (extract(epoch from w.created_at) * 1000)::float8))`;
// Timestamps as epoch milliseconds (float8): parsing a number costs the client a fraction of
// parsing timestamptz text into a Date (measured: a third of the parse CPU of a page), and the
// service keeps millisecond precision too.
const ms = (column: string) => `(extract(epoch from t.${column}) * 1000)::float8 as ${column}`;
export const TASK_COLUMNS = `t.id, t.title, t.description, t.status, t.priority, t.tags, t.project_id, t.assignee_id, t.created_by_id,
        t.parent_task_id, ${ms('created_at')}, ${ms('updated_at')}, ${ms('due_date')}, t.version, ${ms('lease_expires_at')}`;
// One row even when the key is wrong or nothing matches, so that the two can be told apart.
const KEY_OK = `k as (select exists (select 1 from api_keys
                                      where tenant_id = $1::bigint and secret_hash = $2 and revoked_at is null) as ok)`;

export const SETTINGS = {
  name: 'bare_settings',
  text: `select set_config('app.tenant_id', $1, true), set_config('role', 'taskapi_app', true),
                set_config('statement_timeout', $2, true)`,
};
export const GET_TASK = {
  name: 'bare_get_task',
  text: `with ${KEY_OK}
         select k.ok, ${TASK_COLUMNS},
                (select ${WORKERS_JSON} from workers w
                  where w.tenant_id = $1::bigint and w.id in (t.assignee_id, t.created_by_id)) as workers
           from k left join tasks t on k.ok and t.tenant_id = $1::bigint and t.id = $3::bigint`,
};
export const LIST_TASKS = {
  name: 'bare_list_tasks',
  text: `with ${KEY_OK},
              page as (select * from tasks
                        where (select ok from k) and tenant_id = $1::bigint and project_id = $3::bigint and id > $4::bigint
                        order by id limit $5::int)
         select k.ok, ${TASK_COLUMNS},
                case when row_number() over (order by t.id) = 1 then
                  (select ${WORKERS_JSON} from workers w
                    where w.tenant_id = $1::bigint
                      and w.id in (select assignee_id from page union select created_by_id from page))
                end as workers
           from k left join page t on true
          order by t.id`,
};

/**
 * A tenant transaction as the service runs one (role taskapi_app, app.tenant_id and
 * statement_timeout set locally), on a client of `pool`; the client is dropped if it broke.
 */
export async function inTenant<T>(
  pool: pg.Pool,
  tx: { tenantId: string; timeoutMs: number; readOnly?: boolean },
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(tx.readOnly ? 'begin read only' : 'begin');
    await client.query({ ...SETTINGS, values: [tx.tenantId, String(Math.ceil(tx.timeoutMs))] });
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch((e: Error) => {
      broken = e;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
