-- What each org lets its connectors make a node touch (secret reference
-- folders and env prefixes, endpoints). No row: the built-in default.
CREATE TABLE connector_allow_lists (
    org_id     text PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    allow_list jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
