-- Up Migration

-- Every tenant-owned table: tenant_id first in the primary key, in every unique constraint, in
-- every foreign key and in every index, so that rows can never point into another tenant and
-- the schema distributes by tenant_id on Citus. Foreign keys to tenants name public.tenants:
-- in schema-per-tenant mode these tables live in the tenant's own schema.

create table workers (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  id bigint generated always as identity,
  handle text not null,
  type text not null default 'human',
  email text,
  capabilities jsonb not null default '[]',
  created_at timestamptz not null default now(),
  -- Lookups compare this column, not lower(handle): lower() is not LEAKPROOF, so under
  -- row-level security an index on the expression could not be used.
  handle_key text generated always as (lower(handle)) stored,
  primary key (tenant_id, id),
  constraint workers_handle_format check (handle ~ '^@[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$'),
  constraint workers_type_check check (type in ('human', 'agent')),
  constraint workers_email_format check (email is null or (char_length(email) <= 254 and email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$')),
  constraint workers_capabilities_strings check (
    jsonb_typeof(capabilities) = 'array'
    and not jsonb_path_exists(capabilities, 'strict $[*] ? (@.type() != "string")')
  )
);
-- Handles are unique per tenant regardless of case: @John and @john are one worker.
create unique index workers_handle_key on workers (tenant_id, handle_key);
create index workers_type_idx on workers (tenant_id, type, id);

create table projects (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  id bigint generated always as identity,
  name text not null,
  description text not null default '',
  status text not null default 'active',
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  version bigint not null default 1,
  primary key (tenant_id, id),
  constraint projects_name_length check (char_length(name) between 1 and 200),
  constraint projects_description_size check (octet_length(description) <= 65536),
  constraint projects_status_check check (status in ('active', 'completed', 'archived')),
  constraint projects_metadata_object check (jsonb_typeof(metadata) = 'object' and octet_length(metadata::text) <= 65536),
  constraint projects_version_positive check (version >= 1)
);
create index projects_status_idx on projects (tenant_id, status, id);

create table tasks (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  id bigint generated always as identity,
  project_id bigint not null,
  title text not null,
  description text not null default '',
  status text not null default 'pending',
  priority text not null default 'medium',
  -- Sort key for priority ordering (critical first) without a CASE in every query.
  priority_rank smallint generated always as (
    case priority when 'low' then 1 when 'medium' then 2 when 'high' then 3 when 'critical' then 4 end
  ) stored,
  tags jsonb not null default '[]',
  assignee_id bigint,
  created_by_id bigint not null,
  parent_task_id bigint,
  due_date timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  version bigint not null default 1,
  -- Leases (SPEC §6): the fencing token grows with every claim of the task.
  lease_token bigint not null default 0,
  lease_expires_at timestamptz,
  primary key (tenant_id, id),
  -- Target of the parent foreign key below: a parent is always in the same project.
  constraint tasks_project_id_key unique (tenant_id, project_id, id),
  constraint tasks_title_length check (char_length(title) between 1 and 500),
  constraint tasks_description_size check (octet_length(description) <= 65536),
  constraint tasks_status_check check (status in ('pending', 'in_progress', 'review', 'completed', 'blocked')),
  constraint tasks_priority_check check (priority in ('low', 'medium', 'high', 'critical')),
  constraint tasks_tags_strings check (
    jsonb_typeof(tags) = 'array'
    and not jsonb_path_exists(tags, 'strict $[*] ? (@.type() != "string")')
  ),
  constraint tasks_not_own_parent check (parent_task_id is distinct from id),
  constraint tasks_version_positive check (version >= 1),
  constraint tasks_project_fkey foreign key (tenant_id, project_id)
    references projects (tenant_id, id) on delete cascade,
  -- Deleting a worker unassigns its tasks. The column list matters: a bare SET NULL would null
  -- tenant_id as well and fail the NOT NULL.
  constraint tasks_assignee_fkey foreign key (tenant_id, assignee_id)
    references workers (tenant_id, id) on delete set null (assignee_id),
  constraint tasks_created_by_fkey foreign key (tenant_id, created_by_id)
    references workers (tenant_id, id) on delete restrict,
  constraint tasks_parent_fkey foreign key (tenant_id, project_id, parent_task_id)
    references tasks (tenant_id, project_id, id) on delete cascade
);
create index tasks_project_status_idx on tasks (tenant_id, project_id, status, id);
create index tasks_project_due_idx on tasks (tenant_id, project_id, due_date, id);
create index tasks_project_priority_idx on tasks (tenant_id, project_id, priority_rank desc, id);
create index tasks_assignee_idx on tasks (tenant_id, assignee_id, id) where assignee_id is not null;
create index tasks_created_by_idx on tasks (tenant_id, created_by_id, id);
create index tasks_parent_idx on tasks (tenant_id, parent_task_id, id) where parent_task_id is not null;
create index tasks_claimable_idx on tasks (tenant_id, status, lease_expires_at);
-- tags_all filters (tags @> '["a","b"]'): btree_gin puts tenant_id first in the GIN index.
create index tasks_tags_idx on tasks using gin (tenant_id, tags jsonb_path_ops);
-- tenant_id and project_id are far from independent; without this the planner underestimates
-- tenant+project filters by 20x on realistic data (docs/stack-notes.md).
create statistics tasks_tenant_project_stats (dependencies) on tenant_id, project_id from tasks;

-- Append-only history (SPEC §6). No foreign key to tasks: history outlives its task.
create table task_events (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  id bigint generated always as identity,
  task_id bigint not null,
  project_id bigint not null,
  kind text not null,
  actor_id bigint,
  data jsonb not null default '{}',
  created_at timestamptz not null default now(),
  primary key (tenant_id, id),
  constraint task_events_kind_format check (kind ~ '^[a-z_]{1,40}$'),
  constraint task_events_data_object check (jsonb_typeof(data) = 'object')
);
create index task_events_task_idx on task_events (tenant_id, task_id, id);
create index task_events_project_idx on task_events (tenant_id, project_id, id);

-- API keys: only a SHA-256 of the secret is kept. A key may be bound to a worker, who is then
-- the actor of its writes; deleting the worker deletes its keys.
create table api_keys (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  id bigint generated always as identity,
  name text not null default '',
  worker_id bigint,
  secret_hash bytea not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  primary key (tenant_id, id),
  constraint api_keys_name_length check (char_length(name) <= 200),
  constraint api_keys_secret_hash_size check (octet_length(secret_hash) = 32),
  constraint api_keys_worker_fkey foreign key (tenant_id, worker_id)
    references workers (tenant_id, id) on delete cascade
);
create unique index api_keys_secret_hash_key on api_keys (tenant_id, secret_hash);
create index api_keys_worker_idx on api_keys (tenant_id, worker_id) where worker_id is not null;

-- Idempotency records of create RPCs: the first response, kept per (tenant, request_id). The
-- request hash covers the operation too, so reusing an id for another request is detected.
create table idempotency_records (
  tenant_id bigint not null references public.tenants (id) on delete cascade,
  request_id text not null,
  request_hash bytea not null,
  response jsonb,
  created_at timestamptz not null default now(),
  primary key (tenant_id, request_id),
  constraint idempotency_records_request_id_length check (char_length(request_id) between 1 and 200)
);
create index idempotency_records_created_idx on idempotency_records (tenant_id, created_at);

-- Down Migration

drop table idempotency_records;
drop table api_keys;
drop table task_events;
drop table tasks;
drop table projects;
drop table workers;
