-- Security: roles with per-entity permissions, teams for row rules, API keys, login
-- back-off and the audit log.
ALTER TABLE tessera.users ADD COLUMN teams text[] NOT NULL DEFAULT '{}';

CREATE TABLE tessera.roles (
    name        text PRIMARY KEY,
    module      text NOT NULL DEFAULT '',
    definition  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Named API keys for integrations: only a hash is stored, the key is shown once.
CREATE TABLE tessera.api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES tessera.users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_user_idx ON tessera.api_keys (user_id);

-- Failed logins per (email, client address): exponential back-off, shared by every
-- API node. Keyed by address too, so an attacker elsewhere cannot lock the user out.
CREATE TABLE tessera.login_attempts (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Append-only audit log.
CREATE TABLE tessera.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor_id   uuid,
    actor      text NOT NULL DEFAULT '',
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    details    jsonb NOT NULL DEFAULT '{}',
    ip         text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_action_idx ON tessera.audit_log (action, id DESC);

CREATE FUNCTION tessera.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON tessera.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tessera.audit_log_append_only();
