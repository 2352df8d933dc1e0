-- Signing-key ids are per org: two orgs may both call a key `sign-2026`.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_pkey;
ALTER TABLE signing_keys ADD PRIMARY KEY (org_id, key_id);
-- The primary key covers (org_id, key_id) now.
DROP INDEX signing_keys_org;
