-- People's access and the audit trail.

-- Grants stored by the console (support access is time-boxed); memberships
-- from the identity provider's token claims are added to these at request time.
CREATE TABLE role_grants (
    org_id      text NOT NULL REFERENCES orgs(id),
    subject     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('org_owner','org_admin','node_admin','viewer','support')),
    expires_at  timestamptz,
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, subject, role)
);

-- Integrator credentials issued (the seed never comes here), for listing and revocation.
CREATE TABLE integrator_credentials (
    public_key  text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs(id),
    tenant_id   text,
    name        text NOT NULL,
    subjects    jsonb NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integrator_credentials_org ON integrator_credentials (org_id, created_at DESC);

-- Append-only, hash-chained: each entry carries the hash of the previous one.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    org_id      text,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    source      text,
    before      jsonb,
    after       jsonb,
    at          timestamptz NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL UNIQUE
);
CREATE INDEX audit_log_org ON audit_log (org_id, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Audit entries waiting to be published on the org's audit subject.
CREATE TABLE audit_outbox (
    audit_id bigint PRIMARY KEY REFERENCES audit_log(id)
);
