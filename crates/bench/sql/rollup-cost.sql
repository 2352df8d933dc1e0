-- What the ingest's hourly usage rollup costs, in PostgreSQL alone:
-- 100 batches of 1,000 usage reports (1,000 nodes, two tenants) inserted
-- (1) plainly, (2) with the per-tenant hourly rollup in the same statement as
-- the ingest does it, (3) with a per-node hourly rollup (the design not taken).
-- Run on a scratch database:
--   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE ritma_bench_rollup'
--   psql -h 127.0.0.1 -U postgres -d ritma_bench_rollup -f crates/bench/sql/rollup-cost.sql
--   psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE ritma_bench_rollup'
\set ON_ERROR_STOP on
CREATE TABLE node_usage_reports (node_id text NOT NULL, seq bigint NOT NULL,
    period_start timestamptz NOT NULL, period_end timestamptz NOT NULL, sent_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), decisions bigint NOT NULL, dig_files bigint NOT NULL,
    storage_bytes bigint NOT NULL, snapshot_exports bigint NOT NULL, PRIMARY KEY (node_id, seq));
CREATE INDEX ON node_usage_reports (received_at);
CREATE TABLE usage_hourly (org_id text NOT NULL, tenant_id text NOT NULL, hour timestamptz NOT NULL,
    decisions bigint NOT NULL DEFAULT 0, dig_files bigint NOT NULL DEFAULT 0,
    storage_bytes bigint NOT NULL DEFAULT 0, snapshot_exports bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, tenant_id, hour));
CREATE TABLE usage_hourly_per_node (node_id text NOT NULL, hour timestamptz NOT NULL,
    decisions bigint NOT NULL DEFAULT 0, PRIMARY KEY (node_id, hour));
\timing on
\echo (1) plain insert
DO $$ BEGIN FOR b IN 1..100 LOOP
  INSERT INTO node_usage_reports (node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports)
  SELECT 'n' || i, b, now(), now(), now(), 10, 1, 100, 0 FROM generate_series(1, 1000) i ON CONFLICT DO NOTHING;
END LOOP; END $$;
TRUNCATE node_usage_reports;
\echo (2) insert + per-tenant hourly rollup (what the ingest does)
DO $$ DECLARE n bigint; BEGIN FOR b IN 1..100 LOOP
  WITH src AS (SELECT DISTINCT ON (node_id, seq) * FROM (
      SELECT 'n' || i AS node_id, b::bigint AS seq, now() AS period_start, now() AS period_end, now() AS sent_at,
             10::bigint AS decisions, 1::bigint AS dig_files, 100::bigint AS storage_bytes, 0::bigint AS snapshot_exports,
             'acme'::text AS org_id, CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'dev' END AS tenant_id
      FROM generate_series(1, 1000) i) s),
  ins AS (INSERT INTO node_usage_reports (node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports)
          SELECT node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports
          FROM src ON CONFLICT (node_id, seq) DO NOTHING RETURNING node_id, seq),
  rolled AS (INSERT INTO usage_hourly (org_id, tenant_id, hour, decisions, dig_files, storage_bytes, snapshot_exports)
          SELECT s.org_id, s.tenant_id, date_trunc('hour', s.period_start), sum(s.decisions), sum(s.dig_files),
                 sum(s.storage_bytes), sum(s.snapshot_exports)
          FROM src s JOIN ins USING (node_id, seq) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
          ON CONFLICT (org_id, tenant_id, hour) DO UPDATE SET
              decisions = usage_hourly.decisions + EXCLUDED.decisions,
              dig_files = usage_hourly.dig_files + EXCLUDED.dig_files,
              storage_bytes = usage_hourly.storage_bytes + EXCLUDED.storage_bytes,
              snapshot_exports = usage_hourly.snapshot_exports + EXCLUDED.snapshot_exports)
  SELECT count(*) FROM ins INTO STRICT n;
END LOOP; END $$;
TRUNCATE node_usage_reports;
\echo (3) insert + per-node hourly rollup (not taken)
DO $$ DECLARE n bigint; BEGIN FOR b IN 1..100 LOOP
  WITH src AS (SELECT 'n' || i AS node_id, b::bigint AS seq, now() AS period_start, 10::bigint AS decisions
               FROM generate_series(1, 1000) i),
  ins AS (INSERT INTO node_usage_reports (node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports)
          SELECT node_id, seq, period_start, now(), now(), decisions, 1, 100, 0
          FROM src ON CONFLICT (node_id, seq) DO NOTHING RETURNING node_id, seq),
  rolled AS (INSERT INTO usage_hourly_per_node (node_id, hour, decisions)
          SELECT s.node_id, date_trunc('hour', s.period_start), sum(s.decisions)
          FROM src s JOIN ins USING (node_id, seq) GROUP BY 1, 2 ORDER BY 1, 2
          ON CONFLICT (node_id, hour) DO UPDATE SET decisions = usage_hourly_per_node.decisions + EXCLUDED.decisions)
  SELECT count(*) FROM ins INTO STRICT n;
END LOOP; END $$;
\timing off
SELECT (SELECT sum(decisions) FROM usage_hourly) AS per_tenant_total,
       (SELECT sum(decisions) FROM usage_hourly_per_node) AS per_node_total;
