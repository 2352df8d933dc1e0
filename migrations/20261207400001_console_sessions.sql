-- Console sessions and pending single-sign-on starts, shared by every console
-- replica: a browser may land on any replica, a restart signs nobody out, and
-- a sign-out (a deleted row) ends the session everywhere at once.
--
-- The browser's cookie holds a random session id; only its SHA-256 is stored.
-- The bearer and refresh tokens are sealed (AES-256-GCM) with a key derived
-- from that id, so a copy of this table alone reveals no token.
CREATE TABLE console_sessions (
    id_hash        bytea PRIMARY KEY,
    sealed         bytea NOT NULL,
    token_expires  timestamptz,
    renewable      boolean NOT NULL,
    user_name      text NOT NULL,
    org            text NOT NULL,
    orgs           jsonb NOT NULL,
    expires_at     timestamptz NOT NULL,
    -- Bumped by every token renewal (renewals take the row lock and re-check).
    generation     bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- A sign-in waiting for the IdP's callback, which may reach any replica.
-- Keyed by the SHA-256 of its `state`; taken (deleted) once.
CREATE TABLE console_sso_pending (
    state_hash  bytea PRIMARY KEY,
    verifier    text NOT NULL,
    next        text NOT NULL,
    -- The starting browser's address (IPv6 by its /64): bounds per address.
    client_key  text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sso_pending_client ON console_sso_pending (client_key, expires_at);
CREATE INDEX console_sso_pending_expiry ON console_sso_pending (expires_at);
