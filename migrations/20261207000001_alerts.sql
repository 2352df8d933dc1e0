-- Alerting: where notifications go (channels), what to watch (rules), when
-- to keep quiet (silences), what is wrong now (alerts), and every attempt to
-- tell someone (deliveries: the outbox and the delivery log in one).

CREATE TABLE notification_channels (
    id             uuid PRIMARY KEY,
    org_id         text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    -- What people may see: the URL without path, query or credentials, or the address.
    target         text NOT NULL,
    -- The URL or address and the signing secret, AES-GCM under the master
    -- key, bound to the org and channel id.
    secret_enc     bytea NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE alert_rules (
    id           uuid PRIMARY KEY,
    org_id       text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    event        text NOT NULL,
    tenant_id    text,
    labels       jsonb NOT NULL DEFAULT '{}',
    for_secs     integer NOT NULL DEFAULT 0 CHECK (for_secs >= 0),
    repeat_secs  integer NOT NULL DEFAULT 14400 CHECK (repeat_secs >= 0),
    threshold    bigint,
    channels     uuid[] NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX alert_rules_org_event ON alert_rules (org_id, event);

CREATE TABLE alert_silences (
    id          uuid PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    rule_id     uuid REFERENCES alert_rules (id) ON DELETE CASCADE,
    event       text,
    tenant_id   text,
    node_id     text,
    labels      jsonb NOT NULL DEFAULT '{}',
    comment     text NOT NULL,
    created_by  text NOT NULL,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX alert_silences_org_end ON alert_silences (org_id, ends_at);

-- One row per condition episode: pending (waiting out `for`), firing, then
-- resolved. At most one open episode per rule and subject.
CREATE TABLE alerts (
    id                uuid PRIMARY KEY,
    org_id            text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    rule_id           uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    -- The node id, or '' for a control-plane condition.
    subject           text NOT NULL,
    tenant_id         text,
    node_id           text,
    state             text NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    detail            text NOT NULL,
    opened_at         timestamptz NOT NULL DEFAULT now(),
    fired_at          timestamptz,
    resolved_at       timestamptz,
    -- The last firing notification queued; NULL while silenced or not yet sent.
    last_notified_at  timestamptz
);
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_org_state ON alerts (org_id, state, opened_at DESC);
CREATE INDEX alerts_pending_due ON alerts (opened_at) WHERE state = 'pending';

-- Node state changes the alert evaluator has still to look at: copied from
-- the state outbox when the publisher sends them (only for orgs with rules).
CREATE TABLE alert_inbox (
    id          bigint PRIMARY KEY,
    org_id      text NOT NULL,
    tenant_id   text NOT NULL,
    node_id     text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);

-- The delivery outbox and log: one row per notification per channel
-- (channel_id NULL: the org's bus subject). Pending rows are retried with
-- back-off until delivered or out of attempts.
CREATE TABLE alert_deliveries (
    id               bigserial PRIMARY KEY,
    org_id           text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    channel_id       uuid REFERENCES notification_channels (id) ON DELETE CASCADE,
    alert_id         uuid,
    status           text NOT NULL CHECK (status IN ('firing', 'resolved', 'test')),
    notification     jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    response_status  integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, id DESC);
