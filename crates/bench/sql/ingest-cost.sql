-- Where the database's share of ingest CPU goes, per batch of 1,000 usage
-- reports (200 batches over 10,000 nodes): the statement the ingest runs,
-- the plain insert under it, the scope lookup it does first, and the cost of
-- the benchmark loop itself. Run on a scratch database with the migrations:
--   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE ritma_bench_ingest'
--   for f in migrations/*.sql; do psql -h 127.0.0.1 -U postgres -d ritma_bench_ingest -q -f $f; done
--   psql -h 127.0.0.1 -U postgres -d ritma_bench_ingest -f crates/bench/sql/ingest-cost.sql
--   psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE ritma_bench_ingest'
\set ON_ERROR_STOP on
INSERT INTO orgs (id, name, nats_account_public_key, nats_account_seed_enc, nats_signing_public_key, nats_signing_seed_enc)
VALUES ('bench','bench','A','\x00','S','\x00') ON CONFLICT DO NOTHING;
INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname)
SELECT 'n' || i, 'bench', 'fleet', 'pk' || i, 'host-' || i FROM generate_series(1, 10000) i ON CONFLICT DO NOTHING;
VACUUM ANALYZE;
\timing on
\echo (A) shipped: DISTINCT ON + insert + per-tenant rollup (join src/ins)
DO $$ DECLARE n bigint; nodes text[]; seqs bigint[]; BEGIN FOR b IN 1..200 LOOP
  nodes := ARRAY(SELECT 'n' || ((b * 1000 + i) % 10000 + 1) FROM generate_series(1, 1000) i);
  seqs := ARRAY(SELECT (b * 1000 + i) / 10000 + 1 FROM generate_series(1, 1000) i);
  WITH src AS (SELECT DISTINCT ON (node_id, seq) * FROM UNNEST(nodes, seqs,
        array_fill(now(), ARRAY[1000]), array_fill(now(), ARRAY[1000]), array_fill(now(), ARRAY[1000]),
        array_fill(10::bigint, ARRAY[1000]), array_fill(1::bigint, ARRAY[1000]), array_fill(100::bigint, ARRAY[1000]),
        array_fill(0::bigint, ARRAY[1000]), array_fill('bench'::text, ARRAY[1000]), array_fill('fleet'::text, ARRAY[1000]))
        AS u(node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports, org_id, tenant_id)),
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
TRUNCATE node_usage_reports, usage_hourly;
\echo (B) plain insert, no rollup, no DISTINCT ON
DO $$ DECLARE n bigint; nodes text[]; seqs bigint[]; BEGIN FOR b IN 1..200 LOOP
  nodes := ARRAY(SELECT 'n' || ((b * 1000 + i) % 10000 + 1) FROM generate_series(1, 1000) i);
  seqs := ARRAY(SELECT (b * 1000 + i) / 10000 + 1 FROM generate_series(1, 1000) i);
  INSERT INTO node_usage_reports (node_id, seq, period_start, period_end, sent_at, decisions, dig_files, storage_bytes, snapshot_exports)
  SELECT * FROM UNNEST(nodes, seqs,
        array_fill(now(), ARRAY[1000]), array_fill(now(), ARRAY[1000]), array_fill(now(), ARRAY[1000]),
        array_fill(10::bigint, ARRAY[1000]), array_fill(1::bigint, ARRAY[1000]), array_fill(100::bigint, ARRAY[1000]),
        array_fill(0::bigint, ARRAY[1000]))
  ON CONFLICT (node_id, seq) DO NOTHING;
END LOOP; END $$;
TRUNCATE node_usage_reports, usage_hourly;
\echo (C) scope lookup only (UNNEST join nodes, what the ingest reads first)
DO $$ DECLARE n bigint; nodes text[]; BEGIN FOR b IN 1..200 LOOP
  nodes := ARRAY(SELECT DISTINCT 'n' || ((b * 1000 + i) % 10000 + 1) FROM generate_series(1, 1000) i);
  SELECT count(*) INTO n FROM (SELECT n.id, n.org_id, n.tenant_id, n.status
         FROM UNNEST(nodes) AS u(id) JOIN nodes n ON n.id = u.id) x;
END LOOP; END $$;
\echo (D) array building only: the cost of the loop itself, in every variant
DO $$ DECLARE n bigint; nodes text[]; seqs bigint[]; BEGIN FOR b IN 1..200 LOOP
  nodes := ARRAY(SELECT 'n' || ((b * 1000 + i) % 10000 + 1) FROM generate_series(1, 1000) i);
  seqs := ARRAY(SELECT (b * 1000 + i) / 10000 + 1 FROM generate_series(1, 1000) i);
END LOOP; END $$;
