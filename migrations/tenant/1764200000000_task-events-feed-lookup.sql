-- Up Migration

-- The feed trigger (1764100000500) looks up each task's previous event. PL/pgSQL plans that
-- query once per connection and keeps the plan; planned while task_events was still empty (a
-- fresh database, a new tenant schema), it is a sequential scan, and it stays one while the
-- table fills: an insert of N events then read the table N times (CompleteProjectTasks on
-- 10,000 tasks took seconds, growing with every call). The lookup must always use
-- task_events_task_idx, whatever the statistics said when it was planned.
alter function task_events_set_feed_xact() set enable_seqscan = off;

-- A task's first event ('created') has no previous event to look up: its columns' defaults
-- (the writer's transaction id) are what the trigger would set, so it does not run for it. A
-- 1000-task CreateProjectWithTasks is 1000 trigger calls fewer.
drop trigger task_events_feed_xact on task_events;
create trigger task_events_feed_xact before insert on task_events
  for each row when (new.kind <> 'created') execute function task_events_set_feed_xact();

-- Down Migration

drop trigger task_events_feed_xact on task_events;
create trigger task_events_feed_xact before insert on task_events
  for each row execute function task_events_set_feed_xact();
alter function task_events_set_feed_xact() reset enable_seqscan;
