-- Up Migration

-- The API-key check every tenant call starts with, as a statement that REFUSES: it raises
-- 28000 (invalid_authorization_specification) when no key of the transaction's tenant has the
-- hash, or when the key was revoked, and otherwise returns the key's worker (null for a key
-- bound to no worker). A scalar function: as cheap as the plain lookup it replaces (pgbench,
-- backend CPU; a set-returning one cost ~20 µs more per call). A statement
-- that fails makes PostgreSQL skip everything after it up to the next Sync, so the service can
-- send a read in the same round trip as BEGIN, the settings and this check (and COMMIT after
-- it): the read never runs for a caller whose key does not hold (src/db/database.ts,
-- `oneStatement`). It reads api_keys as the caller's role, under row-level security.
--
-- Created in the schema being migrated (each tenant's, in schema mode), naming its own
-- api_keys, so that it never depends on the search_path of the caller.
do $migration$
begin
  execute format($fn$
    create function api_key_check(tenant bigint, secret_hash bytea) returns bigint
    language plpgsql stable as $body$
    declare
      worker bigint;
      revoked timestamptz;
    begin
      select k.worker_id, k.revoked_at into worker, revoked
        from %1$I.api_keys k
       where k.tenant_id = api_key_check.tenant and k.secret_hash = api_key_check.secret_hash;
      if not found then
        raise exception 'invalid API key' using errcode = '28000';
      end if;
      if revoked is not null then
        raise exception 'the API key was revoked' using errcode = '28000';
      end if;
      return worker;
    end
    $body$ $fn$, current_schema());
end
$migration$;

-- Down Migration

drop function api_key_check(bigint, bytea);
