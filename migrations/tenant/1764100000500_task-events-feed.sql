-- Up Migration

-- The change feed of WatchTasks reads task_events as an outbox. Event ids are drawn before
-- commit, so a transaction that drew a lower id can commit after one that drew a higher id: a
-- reader that resumes at "id > last" would skip it for good. Instead every event is stamped
-- with the id of its transaction, and a reader delivers only events whose transaction is
-- older than the oldest one still running (pg_snapshot_xmin of its snapshot): no event can
-- ever appear below that line again.
--
-- Ordering by transaction id alone would break the order of one task's events: a transaction
-- gets its id at its first write, so one that wrote something, then waited for a task's row
-- lock held by a younger transaction, writes that task's next event with an OLDER transaction
-- id than the event it waited for (CompleteProjectTasks racing an UpdateTask). feed_xact is
-- therefore the transaction id raised to at least the feed_xact of the task's previous event:
-- a task's events are written one after another under its row lock, so (feed_xact, id) orders
-- them as they were written, and feed_xact is still never below the writer's own transaction
-- id, which is what makes "feed_xact < oldest running transaction" mean "settled".

-- Existing rows get the migration's transaction id in both: they were all settled long ago.
alter table task_events
  add column xact_id xid8 not null default pg_current_xact_id(),
  add column feed_xact xid8 not null default pg_current_xact_id();

-- Created in the schema being migrated (each tenant's, in schema mode), naming its own
-- task_events, so that it never depends on the search_path of the writer.
do $migration$
begin
  execute format($fn$
    create function task_events_set_feed_xact() returns trigger
    language plpgsql volatile as $body$
    declare
      previous xid8;
    begin
      new.xact_id := pg_current_xact_id();
      -- VOLATILE: under READ COMMITTED this query takes a fresh snapshot, so it sees the event
      -- of the transaction whose row lock this one waited for, although the writing statement
      -- started before that transaction committed.
      select e.feed_xact into previous
        from %1$I.task_events e
       where e.tenant_id = new.tenant_id and e.task_id = new.task_id
       order by e.id desc
       limit 1;
      new.feed_xact := greatest(new.xact_id, previous);
      return new;
    end
    $body$ $fn$, current_schema());
end
$migration$;

-- Wakes the streams and waiting claims of the tenant: one notification per tenant and
-- transaction (PostgreSQL folds identical payloads), "<tenant id>", with ":claimable" when one
-- of the events may have made a task claimable (a claim, a heartbeat, a completion or a delete
-- cannot), so that waiting ClaimTask calls sleep through the rest. Only a wake-up: the table is
-- the truth.
create function task_events_notify() returns trigger
language plpgsql volatile as $body$
declare
  tenant bigint;
  claimable boolean;
begin
  for tenant, claimable in
    select i.tenant_id, bool_or(i.kind not in ('claimed', 'heartbeat', 'completed', 'deleted'))
      from inserted i group by i.tenant_id
  loop
    perform pg_notify('taskapi_task_events', tenant::text || case when claimable then ':claimable' else '' end);
  end loop;
  return null;
end
$body$;

create trigger task_events_feed_xact before insert on task_events
  for each row execute function task_events_set_feed_xact();
create trigger task_events_notify after insert on task_events
  referencing new table as inserted
  for each statement execute function task_events_notify();

create index task_events_feed_idx on task_events (tenant_id, feed_xact, id);
create index task_events_project_feed_idx on task_events (tenant_id, project_id, feed_xact, id);

-- A waiting ClaimTask sets a timer for the earliest retry time (not_before) among the tasks it
-- could claim (src/repositories/claim-wait.ts); lease expiries have tasks_lease_running_idx.
create index tasks_not_before_idx on tasks (tenant_id, not_before) where status = 'pending' and not_before is not null;

-- Down Migration

drop index tasks_not_before_idx;
drop index task_events_project_feed_idx;
drop index task_events_feed_idx;
drop trigger task_events_notify on task_events;
drop trigger task_events_feed_xact on task_events;
drop function task_events_notify();
drop function task_events_set_feed_xact();
alter table task_events drop column feed_xact, drop column xact_id;
