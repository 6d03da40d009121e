-- Up Migration

-- The role every tenant transaction runs as (SET LOCAL ROLE, src/db/database.ts): it owns
-- nothing, is not a superuser and cannot bypass row-level security. Roles belong to the whole
-- cluster, so another database's migration may have created it already.
do $$
begin
  if not exists (select from pg_roles where rolname = 'taskapi_app') then
    create role taskapi_app nologin;
  end if;
exception when duplicate_object or unique_violation then
  null;
end
$$;

-- The login role (the owner) must be allowed to switch to the app role.
do $$
begin
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant taskapi_app to %I', current_user);
  end if;
end
$$;

-- GIN indexes that lead with tenant_id (tasks.tags) need btree_gin's operator classes.
create extension if not exists btree_gin;

-- The tenant registry. Not tenant-owned: it is what tenant ids point at (a reference table
-- on Citus).
create table tenants (
  id bigint generated always as identity primary key,
  name text not null,
  subdomain text not null,
  created_at timestamptz not null default now(),
  constraint tenants_name_length check (char_length(name) between 1 and 200),
  constraint tenants_subdomain_format check (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  constraint tenants_subdomain_key unique (subdomain)
);

grant select, insert, update on tenants to taskapi_app;

-- Down Migration

drop table tenants;
drop extension if exists btree_gin;
-- The role stays: other databases of the cluster may use it.
