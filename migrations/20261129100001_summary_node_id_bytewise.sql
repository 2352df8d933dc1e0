-- The summary tables and the per-node hourly rollups compare node ids
-- bytewise (COLLATE "C"). Every summary row is a (node_id, seq) b-tree
-- insert, and under the database's collation (C.UTF-8 here: not PostgreSQL's
-- own C fast path) each comparison in the descent went through strcoll.
-- Node ids are lowercase ASCII (ritma_protocol::NodeId), so the order is the
-- same. A lookup by a parameter (`node_id = $1`) or a join with `nodes.id`
-- (the default collation) compares under "C" and still uses these keys.
-- Only the indexes are rebuilt: the column's type does not change.
ALTER TABLE node_slo_summaries ALTER COLUMN node_id TYPE text COLLATE "C";
ALTER TABLE node_usage_reports ALTER COLUMN node_id TYPE text COLLATE "C";
ALTER TABLE node_enforcement_summaries ALTER COLUMN node_id TYPE text COLLATE "C";
ALTER TABLE slo_hourly ALTER COLUMN node_id TYPE text COLLATE "C";
ALTER TABLE enforcement_hourly ALTER COLUMN node_id TYPE text COLLATE "C";
