-- Service identities: a workflow that declares runAs acts as a user row of its own, so
-- what it writes is attributed to it ("Workflow order_to_cash") and it holds exactly
-- the roles its definition declares. Such a user can never be an administrator, sign
-- in, hold a session or an API key; the triggers refuse credentials even if the
-- application code that already refuses them is bypassed.
ALTER TABLE tessera.users ADD COLUMN service boolean NOT NULL DEFAULT false;
ALTER TABLE tessera.users ADD CONSTRAINT users_service_not_admin CHECK (NOT (service AND is_admin));

CREATE FUNCTION tessera.refuse_service_user_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tessera.users WHERE id = NEW.user_id AND service) THEN
        RAISE EXCEPTION 'user % is a service identity: it cannot sign in or hold API keys', NEW.user_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sessions_no_service_user BEFORE INSERT OR UPDATE OF user_id ON tessera.sessions
    FOR EACH ROW EXECUTE FUNCTION tessera.refuse_service_user_credentials();
CREATE TRIGGER api_keys_no_service_user BEFORE INSERT OR UPDATE OF user_id ON tessera.api_keys
    FOR EACH ROW EXECUTE FUNCTION tessera.refuse_service_user_credentials();

-- Who triggered or started a run. actor is whom the run acts as: the same user, or the
-- workflow's service identity; the person who started it keeps seeing and managing it.
ALTER TABLE tessera.workflow_runs ADD COLUMN started_by uuid;
UPDATE tessera.workflow_runs SET started_by = actor;
CREATE INDEX workflow_runs_started_by_idx ON tessera.workflow_runs (started_by, started_at DESC);
