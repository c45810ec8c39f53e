-- Every new in-app notification is announced on the channel tessera_notifications as
-- {"id", "user_id"}, so each API node's stream hub can push it to that user's open
-- streams whichever process wrote it (a worker, usually). A trigger rather than a
-- pg_notify beside the INSERT: every writer is covered, present and future (activities,
-- scripts, seed data, hand-written SQL), and it fires only for rows really inserted, so
-- a retried activity whose INSERT meets ON CONFLICT DO NOTHING announces nothing twice.
-- NOTIFY is sent at commit, when listeners can already read the row.
CREATE FUNCTION tessera.announce_notification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tessera_notifications', json_build_object('id', NEW.id, 'user_id', NEW.user_id)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_announce AFTER INSERT ON tessera.notifications
    FOR EACH ROW EXECUTE FUNCTION tessera.announce_notification();

