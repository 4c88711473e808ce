-- Notifications: one row per recipient, or one row for a broadcast (recipient_id NULL).
-- Ids are UUIDv7 text (time ordered, so ORDER BY id is newest/oldest first); times are
-- microseconds since the Unix epoch.
CREATE TABLE notifications (
    id           TEXT PRIMARY KEY NOT NULL,
    send_id      TEXT NOT NULL,
    recipient_id TEXT,
    category     TEXT NOT NULL,
    content      TEXT NOT NULL,
    link         TEXT NOT NULL,
    sender_id    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    read_at      INTEGER
);

-- List and replay of a user's direct notifications, newest or oldest first.
CREATE INDEX notifications_recipient ON notifications (recipient_id, id);
-- Unread counts and mark-all touch only the unread rows.
CREATE INDEX notifications_recipient_unread ON notifications (recipient_id, category)
    WHERE read_at IS NULL;
-- Broadcasts are few; their own index keeps them cheap to merge into every user's list.
CREATE INDEX notifications_broadcast ON notifications (id) WHERE recipient_id IS NULL;
-- Idempotent replays return the notifications of one Send.
CREATE INDEX notifications_send ON notifications (send_id);

-- Per-user read state of broadcasts: a row means "this user has read it".
CREATE TABLE broadcast_reads (
    user_id         TEXT NOT NULL,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    read_at         INTEGER NOT NULL,
    PRIMARY KEY (user_id, notification_id)
);

-- A Send with an idempotency key, so a repeat from the same caller returns the original.
CREATE TABLE idempotency_keys (
    caller_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    send_id         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (caller_id, idempotency_key)
);
