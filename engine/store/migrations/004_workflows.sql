-- Workflows: definitions as immutable versions, runs with their step timeline, the
-- human-task inbox, record waits, in-app notifications and named credentials for HTTP
-- steps. Temporal holds the execution state; these tables are projections for fast
-- queries and survive Temporal's history retention.

CREATE TABLE tessera.workflows (
    name            text PRIMARY KEY,
    title           text NOT NULL DEFAULT '',
    current_version integer NOT NULL,
    -- Copied from the current version so the dispatcher finds record triggers cheaply.
    trigger         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_record_trigger_idx ON tessera.workflows ((trigger ->> 'entity'))
    WHERE trigger ->> 'type' = 'record';

CREATE TABLE tessera.workflow_versions (
    name       text NOT NULL REFERENCES tessera.workflows (name) ON DELETE CASCADE,
    version    integer NOT NULL,
    -- json, not jsonb: the author's key order is kept and shown back.
    definition json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    PRIMARY KEY (name, version)
);

-- One row per workflow execution chain; id is the Temporal workflow id, stable across
-- continue-as-new and retries.
CREATE TABLE tessera.workflow_runs (
    id              text PRIMARY KEY,
    workflow        text NOT NULL,
    version         integer NOT NULL,
    status          text NOT NULL DEFAULT 'running',
    actor           uuid,
    parent          text,
    trigger         jsonb,
    input           jsonb,
    output          jsonb,
    -- {"step": "<id>", "message": "…"} of a failed run.
    error           jsonb,
    -- Results of the completed top-level steps, for a retry from the failed step.
    state           jsonb,
    compensated     boolean NOT NULL DEFAULT false,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_runs_workflow_idx ON tessera.workflow_runs (workflow, started_at DESC);
CREATE INDEX workflow_runs_actor_idx ON tessera.workflow_runs (actor, started_at DESC);
CREATE INDEX workflow_runs_status_idx ON tessera.workflow_runs (status, started_at DESC);

-- The step timeline. key is unique per run (nested and repeated steps get a path such
-- as "loop.2.notify"); seq only grows, so a late write never undoes a newer state.
CREATE TABLE tessera.workflow_run_steps (
    run_id     text NOT NULL REFERENCES tessera.workflow_runs (id) ON DELETE CASCADE,
    key        text NOT NULL,
    step       text NOT NULL,
    type       text NOT NULL,
    status     text NOT NULL,
    position   bigint NOT NULL,
    seq        bigint NOT NULL,
    started_at timestamptz,
    ended_at   timestamptz,
    error      text,
    PRIMARY KEY (run_id, key)
);

-- Human tasks: the inbox. The workflow is the authority (claims, completion go through
-- a Temporal update); this table is its projection.
CREATE TABLE tessera.workflow_tasks (
    id            uuid PRIMARY KEY,
    run_id        text NOT NULL,
    step          text NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    assignee_user uuid,
    assignee_role text,
    claimed_by    uuid,
    outcomes      text[] NOT NULL,
    form          jsonb,
    status        text NOT NULL DEFAULT 'open',
    outcome       text,
    data          jsonb,
    completed_by  uuid,
    due_at        timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX workflow_tasks_user_idx ON tessera.workflow_tasks (assignee_user, status);
CREATE INDEX workflow_tasks_role_idx ON tessera.workflow_tasks (assignee_role, status);
CREATE INDEX workflow_tasks_run_idx ON tessera.workflow_tasks (run_id);

-- A run waiting for a record to reach a condition; the dispatcher signals it when a
-- change of that record matches.
CREATE TABLE tessera.workflow_waits (
    run_id    text NOT NULL,
    signal    text NOT NULL,
    entity    text NOT NULL,
    record_id uuid NOT NULL,
    condition text NOT NULL,
    params    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, signal)
);
CREATE INDEX workflow_waits_record_idx ON tessera.workflow_waits (entity, record_id);

-- In-app notifications; id is derived from run, step and user so a retried activity
-- notifies once.
CREATE TABLE tessera.notifications (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES tessera.users (id) ON DELETE CASCADE,
    title      text NOT NULL,
    body       text NOT NULL DEFAULT '',
    link       text NOT NULL DEFAULT '',
    run_id     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user_idx ON tessera.notifications (user_id, created_at DESC);

-- Credentials HTTP steps refer to by name, so definitions never hold secrets.
CREATE TABLE tessera.credentials (
    name       text PRIMARY KEY,
    type       text NOT NULL,
    secret     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid
);
