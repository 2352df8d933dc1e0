-- Bulk jobs: one operator action (assign a rulepack, add or remove labels,
-- decommission) over a selection of an org's nodes, run by the controller's
-- bulk worker in pages, with a result per node.
--
-- A selection is either explicit ids (resolved into items at creation: ids
-- not in the org are recorded as skipped, never acted on) or a node-list
-- filter, expanded into items page by page (`expand_cursor`) by the worker.
-- The worker holds a lease (`lease_until`, `lease_token`); every page is one
-- transaction that also checks the lease, so a restarted or second
-- controller resumes where the last committed page ended and no node is
-- acted on twice.
CREATE TABLE bulk_jobs (
    id              uuid PRIMARY KEY,
    org_id          text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    action          text NOT NULL
        CHECK (action IN ('assign_rulepack', 'add_labels', 'remove_labels', 'decommission')),
    params          jsonb NOT NULL DEFAULT '{}',
    -- {"ids": [...]} or {"filter": {...}} (the node list's query parameters).
    selection       jsonb NOT NULL,
    idempotency_key text,
    state           text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'failed')),
    expanded        boolean NOT NULL DEFAULT false,
    expand_cursor   text,
    total           integer NOT NULL DEFAULT 0,
    succeeded       integer NOT NULL DEFAULT 0,
    failed          integer NOT NULL DEFAULT 0,
    skipped         integer NOT NULL DEFAULT 0,
    error           text,
    created_by      text NOT NULL,
    source          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    lease_until     timestamptz,
    lease_token     uuid,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX bulk_jobs_org ON bulk_jobs (org_id, created_at DESC);
CREATE INDEX bulk_jobs_active ON bulk_jobs (created_at) WHERE state IN ('pending', 'running');

CREATE TABLE bulk_job_items (
    job_id   uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    node_id  text NOT NULL,
    state    text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'succeeded', 'failed', 'skipped')),
    detail   text,
    done_at  timestamptz,
    PRIMARY KEY (job_id, node_id)
);
CREATE INDEX bulk_job_items_pending ON bulk_job_items (job_id, node_id) WHERE state = 'pending';
