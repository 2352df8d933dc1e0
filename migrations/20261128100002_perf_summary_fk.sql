-- Ingest throughput: the summary tables' foreign keys to nodes ran one
-- RI-trigger lookup plus a FOR KEY SHARE row lock per inserted row (a tuple
-- write, and a MultiXact when two workers touch the same node), which cost
-- more than the insert itself. The ingest already admits a summary only when
-- its node exists, in its org and tenant, in the same transaction, and nodes
-- are never deleted (decommissioning keeps the row), so the constraint is
-- kept by the only writer. Lookups by node stay indexed by the primary keys.
ALTER TABLE node_slo_summaries DROP CONSTRAINT IF EXISTS node_slo_summaries_node_id_fkey;
ALTER TABLE node_usage_reports DROP CONSTRAINT IF EXISTS node_usage_reports_node_id_fkey;
ALTER TABLE node_enforcement_summaries DROP CONSTRAINT IF EXISTS node_enforcement_summaries_node_id_fkey;
