-- Import jobs: progress of a running import is visible to other connections while the
-- import's own transaction is open.
CREATE TABLE tessera.imports (
    id            uuid PRIMARY KEY,
    entity        text NOT NULL,
    status        text NOT NULL,
    rows_read     bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    report        jsonb,
    created_by    uuid,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
