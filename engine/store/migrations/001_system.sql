-- The platform's own tables live in schema "tessera"; entity tables live in schema
-- "data" so a person browsing with psql or a BI tool sees business tables on their own.
CREATE SCHEMA IF NOT EXISTS tessera;
CREATE SCHEMA IF NOT EXISTS data;

CREATE TABLE tessera.users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}',
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_email_key ON tessera.users (lower(email));

-- Session and API tokens are stored as SHA-256 hashes: a leaked table grants nothing.
CREATE TABLE tessera.sessions (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES tessera.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON tessera.sessions (user_id);

-- Entity definitions: one row per entity, one immutable row per version.
CREATE TABLE tessera.entities (
    name            text PRIMARY KEY,
    module          text NOT NULL DEFAULT '',
    current_version integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tessera.entity_versions (
    entity     text NOT NULL REFERENCES tessera.entities (name) ON DELETE CASCADE,
    version    integer NOT NULL,
    -- json, not jsonb: the author's property order is the column and form order.
    definition json NOT NULL,
    plan       jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    PRIMARY KEY (entity, version)
);

-- Field-level history of every record change, written in the change's transaction.
CREATE TABLE tessera.record_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity     text NOT NULL,
    record_id  uuid NOT NULL,
    version    integer NOT NULL,
    op         text NOT NULL,
    changed_by uuid,
    changed_at timestamptz NOT NULL DEFAULT now(),
    diff       jsonb NOT NULL
);
CREATE INDEX record_history_record_idx ON tessera.record_history (entity, record_id, id);

-- Transactional outbox: consumed by the workflow dispatcher and webhooks.
CREATE TABLE tessera.outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity        text NOT NULL,
    record_id     uuid NOT NULL,
    event         text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_pending_idx ON tessera.outbox (id) WHERE dispatched_at IS NULL;

-- Gap-free autonumber counters, one row per entity and period, taken with FOR UPDATE.
CREATE TABLE tessera.autonumbers (
    entity text NOT NULL,
    period text NOT NULL,
    value  bigint NOT NULL,
    PRIMARY KEY (entity, period)
);
