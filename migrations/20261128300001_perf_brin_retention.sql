-- Retention deletes raw summaries by `received_at`, which only grows with
-- the insert order: a BRIN index serves that scan at a fraction of a b-tree's
-- cost to the ingest (one b-tree insert per summary row, measured as part of
-- the database's share of ingest CPU; see crates/bench/README.md).
DROP INDEX IF EXISTS node_slo_summaries_received;
DROP INDEX IF EXISTS node_usage_reports_received;
DROP INDEX IF EXISTS node_enforcement_summaries_received;
CREATE INDEX node_slo_summaries_received ON node_slo_summaries USING brin (received_at);
CREATE INDEX node_usage_reports_received ON node_usage_reports USING brin (received_at);
CREATE INDEX node_enforcement_summaries_received ON node_enforcement_summaries USING brin (received_at);
