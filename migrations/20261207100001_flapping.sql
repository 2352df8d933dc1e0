-- Flapping (issue 20): a node whose liveness changed N times in M minutes is
-- shown as 'flapping' until it has been steady for M minutes. `status` stays
-- the node's real liveness (the ingest, the reconciler and the broker-presence
-- task keep it up to date); `flapping_since` marks the overlay and
-- `last_flip_at` the last liveness change, published or not. What the API
-- lists, filters, sorts and counts is `shown_status`.
ALTER TABLE nodes
    ADD COLUMN flapping_since timestamptz,
    ADD COLUMN last_flip_at   timestamptz,
    ADD COLUMN shown_status   text GENERATED ALWAYS AS (
        CASE WHEN flapping_since IS NOT NULL AND status <> 'decommissioned'
             THEN 'flapping' ELSE status END) STORED;

CREATE INDEX nodes_org_shown_status ON nodes (org_id, shown_status, id);
-- The settle pass: only flapping nodes, by their last flip.
CREATE INDEX nodes_flapping ON nodes (last_flip_at) WHERE flapping_since IS NOT NULL;
