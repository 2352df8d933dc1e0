-- A status change no longer rewrites the indexes of the wide `nodes` row.
-- No index of `nodes` names a column a status change sets (status,
-- shown_status, last_flip_at), and its pages keep room for a new row
-- version, so the change is a heap-only (HOT) update. Measured on a copy of
-- 1,000,000 nodes (PostgreSQL 15, 128 MB shared buffers): a batch of 5,000
-- status changes took 600-750 ms with every index rewritten (14, two of
-- them GIN), 150-180 ms as HOT updates.
--
-- The list's status filter and sort read `node_statuses` instead: one narrow
-- row per node, kept equal to `nodes` by the triggers below in the same
-- statement, indexed by (org, shown status, node).
-- Writers of `nodes` (a controller still running the old build during a
-- rolling update) wait until the copy and its triggers are in place: a
-- change committed between the two would never reach `node_statuses`.
LOCK TABLE nodes IN SHARE ROW EXCLUSIVE MODE;
-- Room on each page for the new version of a row; set first, so the table
-- rewrite below (the stored flag) already leaves it.
ALTER TABLE nodes SET (fillfactor = 80);

CREATE TABLE node_statuses (
    node_id      text PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    org_id       text NOT NULL,
    shown_status text NOT NULL
);
INSERT INTO node_statuses (node_id, org_id, shown_status)
SELECT id, org_id, shown_status FROM nodes;
CREATE INDEX node_statuses_org ON node_statuses (org_id, shown_status, node_id);

CREATE FUNCTION node_statuses_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO node_statuses (node_id, org_id, shown_status)
    SELECT id, org_id, shown_status FROM new_rows;
    RETURN NULL;
END $$;
-- Planned at each run (EXECUTE), for the statement's own number of rows: a
-- PL/pgSQL statement without parameters keeps its first plan for the
-- session, and one made for a whole-org update (a hash join reading every
-- status row) would then serve every single-row update after it.
CREATE FUNCTION node_statuses_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'UPDATE node_statuses s SET org_id = n.org_id, shown_status = n.shown_status
             FROM new_rows n
             WHERE s.node_id = n.id
               AND (s.org_id, s.shown_status) IS DISTINCT FROM (n.org_id, n.shown_status)';
    RETURN NULL;
END $$;
CREATE TRIGGER nodes_statuses_inserted AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION node_statuses_insert();
CREATE TRIGGER nodes_statuses_updated AFTER UPDATE ON nodes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION node_statuses_update();

DROP INDEX nodes_org_status;
DROP INDEX nodes_org_shown_status;
-- Flapping nodes, whatever their last flip (few; the settle pass sorts them).
DROP INDEX nodes_flapping;
CREATE INDEX nodes_flapping ON nodes (flapping_since) WHERE flapping_since IS NOT NULL;
-- The drift reconciler's scan (every 2 s), by a stored flag: the planner
-- guessed that nearly every row satisfies `policy_assigned IS DISTINCT FROM
-- policy_version` and read the whole table instead of this index, which is
-- empty while every node is in step (215-425 ms a pass at 1,000,000 nodes,
-- 2 ms by the index); a plain column has statistics. Its queries still skip
-- decommissioned nodes.
ALTER TABLE nodes ADD COLUMN policy_out_of_step boolean
    GENERATED ALWAYS AS (policy_assigned IS DISTINCT FROM policy_version) STORED;
DROP INDEX nodes_policy_unsynced;
CREATE INDEX nodes_policy_unsynced ON nodes (id) WHERE policy_out_of_step;
ANALYZE nodes, node_statuses;
