-- Up Migration

-- The second wall (SPEC §5): even a query that forgets its tenant filter sees only the rows of
-- the tenant set for the current transaction with set_config('app.tenant_id', ..., true). An
-- unset or empty setting matches nothing. FORCE makes the policies bind the owner too; the
-- service additionally runs as taskapi_app, which owns nothing and cannot bypass them.
do $$
declare
  t text;
begin
  foreach t in array array['workers', 'projects', 'tasks', 'task_events', 'api_keys', 'idempotency_records'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format(
      'create policy tenant_isolation on %I
         using (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::bigint)
         with check (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::bigint)',
      t);
  end loop;
  execute format('grant usage on schema %I to taskapi_app', current_schema());
end
$$;

grant select, insert, update, delete on workers, projects, tasks, api_keys, idempotency_records to taskapi_app;
-- History is append-only, for the service as well.
grant select, insert on task_events to taskapi_app;

-- Down Migration

do $$
declare
  t text;
begin
  foreach t in array array['workers', 'projects', 'tasks', 'task_events', 'api_keys', 'idempotency_records'] loop
    execute format('drop policy tenant_isolation on %I', t);
    execute format('alter table %I no force row level security', t);
    execute format('alter table %I disable row level security', t);
    execute format('revoke all on %I from taskapi_app', t);
  end loop;
end
$$;
