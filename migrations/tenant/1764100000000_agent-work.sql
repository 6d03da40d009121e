-- Up Migration

-- Agent work (SPEC §6): capabilities, attempts, retry time and the outcome of the current lease.
-- Limits match src/limits.ts (test/integration/limits.test.ts holds them together).
alter table tasks
  add column required_capabilities jsonb not null default '[]',
  add column max_attempts integer not null default 0,
  add column attempts integer not null default 0,
  add column not_before timestamptz,
  add column last_error text not null default '',
  -- How the lease numbered lease_token ended early: released, revoked, or expired (noticed by
  -- the service). Null while it runs, or before any claim.
  add column lease_end text,
  add constraint tasks_required_capabilities_strings check (
    jsonb_typeof(required_capabilities) = 'array'
    and jsonb_array_length(required_capabilities) <= 50
    and not jsonb_path_exists(required_capabilities, 'strict $[*] ? (@.type() != "string")')
  ),
  add constraint tasks_tags_count check (jsonb_typeof(tags) <> 'array' or jsonb_array_length(tags) <= 50),
  add constraint tasks_max_attempts_range check (max_attempts between 0 and 1000),
  add constraint tasks_attempts_range check (attempts >= 0),
  add constraint tasks_last_error_size check (octet_length(last_error) <= 8192),
  add constraint tasks_lease_end_check check (lease_end in ('released', 'revoked', 'expired'));

alter table workers
  add constraint workers_capabilities_count check (jsonb_typeof(capabilities) <> 'array' or jsonb_array_length(capabilities) <= 50);

-- ClaimTask's scan (src/repositories/claims.ts): only claimable rows (pending, or in progress
-- with an expired lease; not the running ones, which a busy tenant has many of), in claim order
-- (priority, then due date with none last, then id), so the first entries of a tenant's range
-- are the ones handed out and the planner never sorts. The claim repeats this predicate word for
-- word so the planner can prove it. The old (status, lease_expires_at) index served nothing.
drop index tasks_claimable_idx;
create index tasks_claim_order_idx on tasks (tenant_id, priority_rank desc, due_date, id)
  where status = 'pending' or (status = 'in_progress' and lease_end = 'expired');
-- The same within one project (agents usually claim from theirs).
create index tasks_claim_project_order_idx on tasks (tenant_id, project_id, priority_rank desc, due_date, id)
  where status = 'pending' or (status = 'in_progress' and lease_end = 'expired');
-- Leases that ran out without anyone noticing yet (the claim and the reaper look for these).
create index tasks_lease_running_idx on tasks (tenant_id, lease_expires_at)
  where lease_end is null and lease_expires_at is not null;

-- The task's version after the write each event records. Older rows: from their data.
alter table task_events add column task_version bigint not null default 0;
update task_events
   set task_version = coalesce((data #>> '{changes,version,after}')::bigint, (data #>> '{task,version}')::bigint, 0);

-- Down Migration

alter table task_events drop column task_version;
drop index tasks_lease_running_idx;
drop index tasks_claim_project_order_idx;
drop index tasks_claim_order_idx;
create index tasks_claimable_idx on tasks (tenant_id, status, lease_expires_at);
alter table workers drop constraint workers_capabilities_count;
alter table tasks
  drop column lease_end,
  drop column last_error,
  drop column not_before,
  drop column attempts,
  drop column max_attempts,
  drop column required_capabilities,
  drop constraint tasks_tags_count;
