-- Same as the SQLite migration: a wake is an entry of the notification log (same head as new
-- notifications), one row per person whose notification woke.
CREATE TABLE wakes (
    seq             BIGINT PRIMARY KEY,
    user_id         TEXT COLLATE "C" NOT NULL,
    notification_id TEXT COLLATE "C" NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX wakes_user ON wakes (user_id, seq);
CREATE INDEX wakes_notification ON wakes (notification_id, user_id, seq);
