-- Enforcement decisions per org, tenant and hour, for the dashboard's
-- org-wide chart: a 30-day chart reads tenants x 720 rows, never every
-- node's rows (an org may have 100,000+ nodes). The ingest writes it in the
-- same statement as enforcement_hourly, from the same summaries, keyed like
-- usage_hourly.
CREATE TABLE enforcement_tenant_hourly (
    org_id         text NOT NULL,
    tenant_id      text NOT NULL,
    hour           timestamptz NOT NULL,
    allow_count    bigint NOT NULL DEFAULT 0,
    deny_count     bigint NOT NULL DEFAULT 0,
    throttle_count bigint NOT NULL DEFAULT 0,
    isolate_count  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, tenant_id, hour)
);

-- What the per-node rollup already holds, under each node's tenant now
-- (a node's tenant is fixed at enrollment), so charts start with history.
INSERT INTO enforcement_tenant_hourly
    (org_id, tenant_id, hour, allow_count, deny_count, throttle_count, isolate_count)
SELECT n.org_id, n.tenant_id, e.hour,
       LEAST(sum(e.allow_count), 9223372036854775807)::bigint,
       LEAST(sum(e.deny_count), 9223372036854775807)::bigint,
       LEAST(sum(e.throttle_count), 9223372036854775807)::bigint,
       LEAST(sum(e.isolate_count), 9223372036854775807)::bigint
FROM enforcement_hourly e
JOIN nodes n ON n.id = e.node_id
GROUP BY n.org_id, n.tenant_id, e.hour;
