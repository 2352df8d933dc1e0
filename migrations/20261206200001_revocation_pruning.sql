-- Revocations stay in an org's account JWT only while a credential issued
-- before them could still be valid, so the JWT stays bounded.

-- The latest expiry of any credential issued to a user key in an org
-- (NULL: one of them never expires).
CREATE TABLE credential_expiries (
    org_id      text NOT NULL REFERENCES orgs(id),
    public_key  text NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (org_id, public_key)
);

-- Until when the revocation must be pushed: the latest expiry of the key's
-- credentials when it was revoked (NULL: for ever, as before).
ALTER TABLE org_revocations ADD COLUMN keep_until timestamptz;
CREATE INDEX org_revocations_keep ON org_revocations (org_id, keep_until);

-- Integrator credentials never lived longer than 366 days: revocations of
-- their keys made before this migration are kept that long.
UPDATE org_revocations r SET keep_until = r.revoked_at + interval '366 days'
FROM integrator_credentials i
WHERE i.org_id = r.org_id AND i.public_key = r.public_key;

INSERT INTO credential_expiries (org_id, public_key, expires_at)
SELECT org_id, public_key, expires_at FROM integrator_credentials
ON CONFLICT DO NOTHING;

-- Re-keys are rate-limited per node.
ALTER TABLE nodes ADD COLUMN rekeyed_at timestamptz;
