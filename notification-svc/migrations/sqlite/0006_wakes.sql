-- Wakes of snoozed notifications (issue 19). A wake is an entry of the notification log: its
-- position comes from the same head as new notifications (`feed_heads.notifications`), so the
-- feed publishes it, Subscribe replays it and resumes past it exactly like a new notification.
-- One row per person whose notification woke (a broadcast wakes for the one who snoozed it).
CREATE TABLE wakes (
    seq             INTEGER PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL
);
-- A user's wakes for replay; a notification's wakes for replay's "latest entry only" and for
-- deletes with the notification.
CREATE INDEX wakes_user ON wakes (user_id, seq);
CREATE INDEX wakes_notification ON wakes (notification_id, user_id, seq);
