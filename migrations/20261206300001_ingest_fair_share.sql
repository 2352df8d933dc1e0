-- Dead letters keep what is needed to judge them (issue 18): the org of
-- their subject, the message's headers ({name: [values]}, bounded), at most
-- the first 4 KiB of its body and the body's original size.
ALTER TABLE dead_letters
    ADD COLUMN org_id    text NOT NULL DEFAULT '',
    ADD COLUMN headers   jsonb,
    ADD COLUMN body      bytea NOT NULL DEFAULT '\x'::bytea,
    ADD COLUMN body_size bigint NOT NULL DEFAULT 0;

-- Retention deletes dead letters and status history by age; both tables are
-- append-only in time order, so BRIN indexes serve that scan at almost no
-- cost to the writers.
CREATE INDEX dead_letters_received ON dead_letters USING brin (received_at);
CREATE INDEX node_status_history_at ON node_status_history USING brin (at);

-- What the ingest did with each org's messages, per hour: accepted, over the
-- node's or the org's budget (acked, not written), and dead letters kept or
-- dropped over the org's dead-letter budget. Added to by every controller.
CREATE TABLE org_ingest_counters (
    org_id               text NOT NULL,
    hour                 timestamptz NOT NULL,
    accepted             bigint NOT NULL DEFAULT 0,
    throttled_node       bigint NOT NULL DEFAULT 0,
    throttled_org        bigint NOT NULL DEFAULT 0,
    dead_letters_kept    bigint NOT NULL DEFAULT 0,
    dead_letters_dropped bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, hour)
);
CREATE INDEX org_ingest_counters_hour ON org_ingest_counters (hour);
