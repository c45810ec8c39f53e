-- Scripts (goja) by name; every save is a new immutable version.
CREATE TABLE tessera.scripts (
    name            text PRIMARY KEY,
    module          text NOT NULL DEFAULT '',
    current_version integer NOT NULL,
    -- HTTP methods when the script is a custom endpoint /api/v1/x/{module}/{name}.
    methods         text[] NOT NULL DEFAULT '{}',
    budget_ms       integer NOT NULL DEFAULT 100,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tessera.script_versions (
    name       text NOT NULL REFERENCES tessera.scripts (name) ON DELETE CASCADE,
    version    integer NOT NULL,
    source     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    PRIMARY KEY (name, version)
);

-- Console output and errors of script calls, for developers to read back.
CREATE TABLE tessera.script_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    version    integer NOT NULL,
    hook       text NOT NULL,
    entity     text NOT NULL DEFAULT '',
    record_id  uuid,
    console    jsonb NOT NULL DEFAULT '[]',
    error      jsonb,
    duration_us bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX script_logs_name_idx ON tessera.script_logs (name, id DESC);
