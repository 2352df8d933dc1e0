-- The spine: orgs with their NATS accounts, enrollment tokens, nodes, their
-- status history, telemetry summaries, dead letters and the state-change
-- outbox.

CREATE TABLE orgs (
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    nats_account_public_key text NOT NULL UNIQUE,
    -- Seeds are AES-256-GCM encrypted under the controller's master key.
    nats_account_seed_enc   bytea NOT NULL,
    nats_signing_public_key text NOT NULL UNIQUE,
    nats_signing_seed_enc   bytea NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);

-- Users revoked in an org's NATS account; pushed in the account JWT.
CREATE TABLE org_revocations (
    org_id      text NOT NULL REFERENCES orgs(id),
    public_key  text NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, public_key)
);

CREATE TABLE enrollment_tokens (
    id          uuid PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs(id),
    tenant_id   text NOT NULL,
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    secret_hash bytea NOT NULL UNIQUE,
    labels      jsonb NOT NULL DEFAULT '{}',
    max_uses    integer NOT NULL CHECK (max_uses > 0),
    uses        integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens (org_id, created_at DESC);

CREATE TABLE nodes (
    id                      text PRIMARY KEY,
    org_id                  text NOT NULL REFERENCES orgs(id),
    tenant_id               text NOT NULL,
    public_key              text NOT NULL UNIQUE,
    hostname                text NOT NULL,
    labels                  jsonb NOT NULL DEFAULT '{}',
    capabilities            jsonb NOT NULL DEFAULT '[]',
    enrollment_token_id     uuid REFERENCES enrollment_tokens(id),
    enrolled_at             timestamptz NOT NULL DEFAULT now(),
    status                  text NOT NULL DEFAULT 'unseen',
    status_changed_at       timestamptz NOT NULL DEFAULT now(),
    interval_secs           integer NOT NULL DEFAULT 10,
    -- The controller's receive time: offline detection never trusts node clocks.
    last_seen_at            timestamptz,
    -- The node's own clock at its last heartbeat, kept beside it.
    last_sent_at            timestamptz,
    last_seq                bigint NOT NULL DEFAULT 0,
    stale_after             timestamptz,
    offline_after           timestamptz,
    agent_version           text,
    policy_version          text,
    last_policy_sync_at     timestamptz,
    last_evidence_batch_at  timestamptz,
    key_id                  text,
    slo_counters            jsonb,
    host_os                 text,
    host_kernel             text,
    host_arch               text,
    host_cpus               integer,
    host_memory_bytes       bigint,
    host_uptime_secs        bigint,
    spool_depth             bigint,
    spool_dropped           bigint,
    decommissioned_at       timestamptz,
    CONSTRAINT nodes_status_known CHECK (status IN ('unseen','online','degraded','stale','offline','decommissioned'))
);
CREATE INDEX nodes_org_id ON nodes (org_id, id);
CREATE INDEX nodes_org_tenant ON nodes (org_id, tenant_id, id);
CREATE INDEX nodes_org_status ON nodes (org_id, status, id);
CREATE INDEX nodes_org_last_seen ON nodes (org_id, last_seen_at DESC NULLS LAST, id);
CREATE INDEX nodes_labels ON nodes USING gin (labels jsonb_path_ops);
-- The reconciler's scan: only nodes that can still time out.
CREATE INDEX nodes_due ON nodes (offline_after) WHERE status IN ('online','degraded','stale');
CREATE INDEX nodes_stale_due ON nodes (stale_after) WHERE status IN ('online','degraded');

CREATE TABLE node_status_history (
    id          bigserial PRIMARY KEY,
    node_id     text NOT NULL REFERENCES nodes(id),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_status_history_node ON node_status_history (node_id, id DESC);

-- Telemetry summaries: one row per message, keyed by the node's sequence
-- number, so a redelivered message is never counted twice.
CREATE TABLE node_slo_summaries (
    node_id      text NOT NULL REFERENCES nodes(id),
    seq          bigint NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    sent_at      timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    counts       jsonb NOT NULL,
    PRIMARY KEY (node_id, seq)
);

CREATE TABLE node_usage_reports (
    node_id          text NOT NULL REFERENCES nodes(id),
    seq              bigint NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    sent_at          timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    decisions        bigint NOT NULL,
    dig_files        bigint NOT NULL,
    storage_bytes    bigint NOT NULL,
    snapshot_exports bigint NOT NULL,
    PRIMARY KEY (node_id, seq)
);

CREATE TABLE node_enforcement_summaries (
    node_id      text NOT NULL REFERENCES nodes(id),
    seq          bigint NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    sent_at      timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    allow_count    bigint NOT NULL,
    deny_count     bigint NOT NULL,
    throttle_count bigint NOT NULL,
    isolate_count  bigint NOT NULL,
    PRIMARY KEY (node_id, seq)
);

-- Messages refused by the ingest workers, keyed by their stream sequence.
CREATE TABLE dead_letters (
    stream_seq   bigint PRIMARY KEY,
    subject      text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- State changes committed with the change itself, published after commit
-- (at least once; `id` is the event id subscribers see).
CREATE TABLE state_outbox (
    id          bigserial PRIMARY KEY,
    org_id      text NOT NULL,
    tenant_id   text NOT NULL,
    node_id     text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
