-- Liveness in a narrow table (issue 23): a heartbeat rewrites this row (about
-- 176 bytes, 4 indexes), not the node's wide row (labels, capabilities, host,
-- policy; 14 indexes after this migration, 18 before, two of them GIN). The
-- node row changes only when what a heartbeat reports differs from what it
-- holds (status, interval, versions, key, host, policy refusal); what moves
-- with every heartbeat (times, sequence, deadlines, counters, uptime, spool)
-- lives here.
--
-- Lock order: every writer of a node's liveness holds the node row's lock
-- first (the ingest's admission locks it; the reconciler and the broker
-- presence task lock it, then re-read the liveness row in a later statement).
--
-- Deadlines are set by heartbeats and cleared when the node stops being live
-- (offline, decommissioned, or a graceful stop), so the deadline indexes hold
-- only nodes that can still fall due.
CREATE TABLE node_liveness (
    node_id                 text PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    -- The node's org (nodes never change org), for the last-seen sort.
    org_id                  text NOT NULL,
    -- The controller's receive time: offline detection never trusts node clocks.
    last_seen_at            timestamptz,
    -- The node's own clock at its last heartbeat, kept beside it.
    last_sent_at            timestamptz,
    last_seq                bigint NOT NULL DEFAULT 0,
    stale_after             timestamptz,
    offline_after           timestamptz,
    last_policy_sync_at     timestamptz,
    last_evidence_batch_at  timestamptz,
    slo_counters            jsonb,
    host_uptime_secs        bigint,
    spool_depth             bigint,
    spool_dropped           bigint
) WITH (fillfactor = 80);

INSERT INTO node_liveness (node_id, org_id, last_seen_at, last_sent_at, last_seq, stale_after,
                           offline_after, last_policy_sync_at, last_evidence_batch_at, slo_counters, host_uptime_secs,
                           spool_depth, spool_dropped)
SELECT id, org_id, last_seen_at, last_sent_at, last_seq,
       CASE WHEN status IN ('online', 'degraded') THEN stale_after END,
       CASE WHEN status IN ('online', 'degraded', 'stale') THEN offline_after END,
       last_policy_sync_at, last_evidence_batch_at, slo_counters, host_uptime_secs, spool_depth,
       spool_dropped
FROM nodes;

-- The node list sorted by last seen (keyset on the exact sort expression).
CREATE INDEX node_liveness_org_last_seen
    ON node_liveness (org_id, (COALESCE(last_seen_at, 'epoch'::timestamptz)), node_id);
-- The reconciler's deadlines, most overdue first.
CREATE INDEX node_liveness_offline_due ON node_liveness (offline_after) WHERE offline_after IS NOT NULL;
CREATE INDEX node_liveness_stale_due ON node_liveness (stale_after) WHERE stale_after IS NOT NULL;

-- Dropping the columns drops their indexes (nodes_org_last_seen,
-- nodes_org_last_seen_keyset, nodes_due, nodes_stale_due).
ALTER TABLE nodes
    DROP COLUMN last_seen_at,
    DROP COLUMN last_sent_at,
    DROP COLUMN last_seq,
    DROP COLUMN stale_after,
    DROP COLUMN offline_after,
    DROP COLUMN last_policy_sync_at,
    DROP COLUMN last_evidence_batch_at,
    DROP COLUMN slo_counters,
    DROP COLUMN host_uptime_secs,
    DROP COLUMN spool_depth,
    DROP COLUMN spool_dropped;

-- Every node has its liveness row from enrollment on.
CREATE FUNCTION node_liveness_create() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO node_liveness (node_id, org_id) VALUES (NEW.id, NEW.org_id);
    RETURN NULL;
END $$;
CREATE TRIGGER nodes_liveness_created AFTER INSERT ON nodes
    FOR EACH ROW EXECUTE FUNCTION node_liveness_create();
