-- The dashboard's counts per org (by shown status, drifted, key warning)
-- without counting a million rows: every statement that inserts, updates or
-- deletes nodes appends what it changed as deltas (no row is shared between
-- writers, so none waits for another), and the fleet reconciler folds an
-- org's deltas into one row per bucket. A count is the sum of the org's rows.
CREATE TABLE node_count_deltas (
    org_id  text NOT NULL,
    -- 'status:<shown status>', 'drifted' or 'key_warning'.
    bucket  text NOT NULL,
    delta   bigint NOT NULL
);
CREATE INDEX node_count_deltas_org ON node_count_deltas (org_id, bucket);

INSERT INTO node_count_deltas (org_id, bucket, delta)
SELECT org_id, 'status:' || shown_status, count(*) FROM nodes GROUP BY 1, 2
UNION ALL
SELECT org_id, 'drifted', count(*) FROM nodes WHERE drifted GROUP BY 1
UNION ALL
SELECT org_id, 'key_warning', count(*) FROM nodes WHERE key_warning IS NOT NULL GROUP BY 1;

CREATE FUNCTION node_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO node_count_deltas (org_id, bucket, delta)
        SELECT org_id, bucket, sum(d) FROM (
            SELECT org_id, 'status:' || shown_status AS bucket, 1 AS d FROM new_rows
            UNION ALL SELECT org_id, 'drifted', 1 FROM new_rows WHERE drifted
            UNION ALL SELECT org_id, 'key_warning', 1 FROM new_rows WHERE key_warning IS NOT NULL
        ) c GROUP BY org_id, bucket;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO node_count_deltas (org_id, bucket, delta)
        SELECT org_id, bucket, sum(d) FROM (
            SELECT org_id, 'status:' || shown_status AS bucket, -1 AS d FROM old_rows
            UNION ALL SELECT org_id, 'drifted', -1 FROM old_rows WHERE drifted
            UNION ALL SELECT org_id, 'key_warning', -1 FROM old_rows WHERE key_warning IS NOT NULL
        ) c GROUP BY org_id, bucket;
    ELSE
        INSERT INTO node_count_deltas (org_id, bucket, delta)
        SELECT org_id, bucket, sum(d) FROM (
            SELECT org_id, 'status:' || shown_status AS bucket, -1 AS d FROM old_rows
            UNION ALL SELECT org_id, 'drifted', -1 FROM old_rows WHERE drifted
            UNION ALL SELECT org_id, 'key_warning', -1 FROM old_rows WHERE key_warning IS NOT NULL
            UNION ALL SELECT org_id, 'status:' || shown_status, 1 FROM new_rows
            UNION ALL SELECT org_id, 'drifted', 1 FROM new_rows WHERE drifted
            UNION ALL SELECT org_id, 'key_warning', 1 FROM new_rows WHERE key_warning IS NOT NULL
        ) c GROUP BY org_id, bucket HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER nodes_counts_inserted AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION node_counts_change();
CREATE TRIGGER nodes_counts_updated AFTER UPDATE ON nodes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION node_counts_change();
CREATE TRIGGER nodes_counts_deleted AFTER DELETE ON nodes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION node_counts_change();
CREATE FUNCTION node_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM node_count_deltas;
    RETURN NULL;
END $$;
CREATE TRIGGER nodes_counts_truncated AFTER TRUNCATE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION node_counts_truncated();
