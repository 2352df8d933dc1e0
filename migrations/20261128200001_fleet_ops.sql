-- Fleet operations: policies with drift, connectors, signing-key governance,
-- hourly telemetry rollups.

-- Rulepacks: immutable, content-hashed revisions.
CREATE TABLE rulepacks (
    org_id      text NOT NULL REFERENCES orgs(id),
    name        text NOT NULL,
    revision    integer NOT NULL CHECK (revision > 0),
    description text NOT NULL DEFAULT '',
    frameworks  jsonb NOT NULL DEFAULT '[]',
    -- The rules as JSON text, exactly the bytes nodes receive and hash.
    content     text NOT NULL,
    sha256      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name, revision)
);

-- Who gets which rulepack. Precedence: node > label > tenant > org, newest
-- first within a kind. `revision` NULL follows the latest revision.
CREATE TABLE policy_assignments (
    id          uuid PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs(id),
    scope_kind  text NOT NULL CHECK (scope_kind IN ('org','tenant','label','node')),
    scope_value text NOT NULL,
    -- For label scopes: {"key": "value"}, matched with labels @> selector.
    selector    jsonb,
    rulepack    text NOT NULL,
    revision    integer,
    mode        text NOT NULL CHECK (mode IN ('observe','enforce')),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policy_assignments_org ON policy_assignments (org_id, created_at DESC);

-- The policy each node must run (recomputed when assignments or rulepacks
-- change), drift tracking, and the governance state of the key it signs with.
ALTER TABLE nodes
    ADD COLUMN policy_assigned   text,
    ADD COLUMN policy_mode       text,
    ADD COLUMN policy_assignment uuid,
    ADD COLUMN drift_since       timestamptz,
    ADD COLUMN drifted           boolean NOT NULL DEFAULT false,
    ADD COLUMN key_warning       text;
-- The drift reconciler's scans: nodes out of step, and nodes marked drifted.
CREATE INDEX nodes_policy_unsynced ON nodes (id)
    WHERE policy_assigned IS DISTINCT FROM policy_version AND status <> 'decommissioned';
CREATE INDEX nodes_drift_pending ON nodes (drift_since) WHERE drift_since IS NOT NULL;
CREATE INDEX nodes_org_drifted ON nodes (org_id, id) WHERE drifted;
CREATE INDEX nodes_org_key_warning ON nodes (org_id, id) WHERE key_warning IS NOT NULL;
CREATE INDEX nodes_org_key_id ON nodes (org_id, key_id) WHERE key_id IS NOT NULL;

-- Typed connector configs per node; secrets are only references.
CREATE TABLE node_connectors (
    node_id     text NOT NULL REFERENCES nodes(id),
    id          text NOT NULL,
    org_id      text NOT NULL REFERENCES orgs(id),
    kind        text NOT NULL,
    config      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_run    jsonb,
    last_run_at timestamptz,
    last_outcome text,
    PRIMARY KEY (node_id, id)
);
CREATE INDEX node_connectors_org ON node_connectors (org_id, kind);

-- Signing keys per org and their governance.
CREATE TABLE signing_keys (
    key_id       text PRIMARY KEY,
    org_id       text NOT NULL REFERENCES orgs(id),
    label        text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active','revoked','compromised','expired')),
    source       text NOT NULL DEFAULT 'console',
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz,
    rotate_by    timestamptz,
    expires_at   timestamptz,
    last_used_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL DEFAULT 'system'
);
CREATE INDEX signing_keys_org ON signing_keys (org_id, key_id);

-- Hourly rollups, written by the ingest in the same transaction as the raw
-- rows it actually inserted (a redelivered message adds nothing). Usage is
-- rolled up per tenant (what billing needs): a batch of a thousand reports
-- touches a row or two, not a thousand; enforcement and SLO per node (the
-- node page shows them), where a node adds about one summary a minute.
CREATE TABLE usage_hourly (
    org_id           text NOT NULL,
    tenant_id        text NOT NULL,
    hour             timestamptz NOT NULL,
    decisions        bigint NOT NULL DEFAULT 0,
    dig_files        bigint NOT NULL DEFAULT 0,
    storage_bytes    bigint NOT NULL DEFAULT 0,
    snapshot_exports bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, tenant_id, hour)
);

CREATE TABLE enforcement_hourly (
    node_id        text NOT NULL,
    hour           timestamptz NOT NULL,
    allow_count    bigint NOT NULL DEFAULT 0,
    deny_count     bigint NOT NULL DEFAULT 0,
    throttle_count bigint NOT NULL DEFAULT 0,
    isolate_count  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
);

CREATE TABLE slo_hourly (
    node_id   text NOT NULL,
    hour      timestamptz NOT NULL,
    component text NOT NULL,
    operation text NOT NULL,
    outcome   text NOT NULL,
    count     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour, component, operation, outcome)
);

-- Retention deletes raw summaries by age.
CREATE INDEX node_slo_summaries_received ON node_slo_summaries (received_at);
CREATE INDEX node_usage_reports_received ON node_usage_reports (received_at);
CREATE INDEX node_enforcement_summaries_received ON node_enforcement_summaries (received_at);
