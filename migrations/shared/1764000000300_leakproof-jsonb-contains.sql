-- Up Migration

-- Row-level security evaluates the policy before any condition of the query whose function is
-- not LEAKPROOF, and such a condition cannot be an index condition either. jsonb_contains (the
-- `@>` of tags_all) is not marked LEAKPROOF, so under RLS the (tenant_id, tags) GIN index was
-- never used: every task of the tenant was scanned and filtered. Marking it LEAKPROOF restores
-- the index. The only value-dependent error jsonb_contains can raise is "stack depth exceeded"
-- on deeply nested documents; tags are flat arrays of strings (CHECK tasks_tags_strings).
--
-- Only a superuser may do this. Without one the migration changes nothing and says so: the
-- filter still works, without the index; a DBA can run the statement below once per database.
do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    alter function pg_catalog.jsonb_contains(jsonb, jsonb) leakproof;
  else
    raise notice 'not a superuser: run "alter function pg_catalog.jsonb_contains(jsonb, jsonb) leakproof" as one so that tags_all filters use the GIN index under row-level security';
  end if;
end
$$;

-- Down Migration

do $$
begin
  if (select rolsuper from pg_roles where rolname = current_user) then
    alter function pg_catalog.jsonb_contains(jsonb, jsonb) not leakproof;
  end if;
end
$$;
