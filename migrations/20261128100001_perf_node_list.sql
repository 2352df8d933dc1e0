-- Node list at 100k+ nodes per org.
-- Sorting by last seen uses COALESCE(last_seen_at, 'epoch') (a total order
-- for keyset cursors); index that exact expression so a page is an index
-- range scan, not a sort of the whole org.
CREATE INDEX nodes_org_last_seen_keyset
    ON nodes (org_id, (COALESCE(last_seen_at, 'epoch'::timestamptz)), id);

-- Text search (`q`: ILIKE '%...%' over id and hostname) with one trigram
-- index on the expression the list filters on, when pg_trgm is available
-- (PostgreSQL's contrib package). Not on the bare `id` column: gin_trgm_ops
-- also serves `=`, and the planner then picked it over the primary key for
-- the ingest's `id = ANY($1)` lookups (seconds per batch instead of ms).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX nodes_search_trgm ON nodes USING gin ((id || ' ' || hostname) gin_trgm_ops);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm not installed (no privilege): text search stays a scan';
END
$$;

-- Replaced by nodes_org_last_seen_keyset (the list never sorts by the bare
-- column); one index fewer for every heartbeat's row update to maintain.
DROP INDEX IF EXISTS nodes_org_last_seen;
