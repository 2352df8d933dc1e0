-- Node list at 100k+ nodes per org.
-- Sorting by last seen uses COALESCE(last_seen_at, 'epoch') (a total order
-- for keyset cursors); index that exact expression so a page is an index
-- range scan, not a sort of the whole org.
CREATE INDEX nodes_org_last_seen_keyset
    ON nodes (org_id, (COALESCE(last_seen_at, 'epoch'::timestamptz)), id);

-- Text search (`q`, ILIKE '%...%' on id and hostname) with trigram indexes
-- when pg_trgm is available on this server (it ships with PostgreSQL's
-- contrib package); without it, the search stays a filtered scan.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX nodes_id_trgm ON nodes USING gin (id gin_trgm_ops);
        CREATE INDEX nodes_hostname_trgm ON nodes USING gin (hostname gin_trgm_ops);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm not installed (no privilege): text search stays a scan';
END
$$;

-- Replaced by nodes_org_last_seen_keyset (the list never sorts by the bare
-- column); one index fewer for every heartbeat's row update to maintain.
DROP INDEX IF EXISTS nodes_org_last_seen;
