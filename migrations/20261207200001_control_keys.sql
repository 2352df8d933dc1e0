-- Each org's control key: signs commands to its nodes, rulepack revisions
-- and policy assignments; nodes pin its public key at enrollment. The seed is
-- encrypted under the controller's master key (bound to the org and purpose),
-- and lives here, apart from the rows it signs. One active key per org;
-- a rotated-out key stays as a link of the chain nodes follow: `endorsement`
-- is the previous key's signature over the new one.
CREATE TABLE org_control_keys (
    org_id       text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    public_key   text NOT NULL,
    seed_enc     bytea NOT NULL,
    previous_key text,
    endorsement  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    PRIMARY KEY (org_id, public_key),
    CHECK ((previous_key IS NULL) = (endorsement IS NULL))
);
CREATE UNIQUE INDEX org_control_keys_active ON org_control_keys (org_id) WHERE retired_at IS NULL;

-- A rulepack revision's signature by the org's control key, made when the
-- revision is created (over org, name, revision, sha256 and frameworks).
-- Revisions made before signing existed have none: nodes refuse them until
-- the rulepack is published again.
ALTER TABLE rulepacks ADD COLUMN signed_by text, ADD COLUMN signature text;

-- Why the node last refused the policy it was served (from its heartbeats).
ALTER TABLE nodes ADD COLUMN policy_rejected text;
