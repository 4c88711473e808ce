-- Same schema as the SQLite migration. Ids are UUIDv7 text with the "C" collation so that
-- text order is byte order is time order, exactly as in SQLite; times are microseconds since
-- the Unix epoch, one encoding for both backends.
CREATE TABLE notifications (
    id           TEXT COLLATE "C" PRIMARY KEY,
    send_id      TEXT COLLATE "C" NOT NULL,
    recipient_id TEXT COLLATE "C",
    category     TEXT COLLATE "C" NOT NULL,
    content      TEXT NOT NULL,
    link         TEXT NOT NULL,
    sender_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    read_at      BIGINT
);

CREATE INDEX notifications_recipient ON notifications (recipient_id, id);
CREATE INDEX notifications_recipient_unread ON notifications (recipient_id, category)
    WHERE read_at IS NULL;
CREATE INDEX notifications_broadcast ON notifications (id) WHERE recipient_id IS NULL;
CREATE INDEX notifications_send ON notifications (send_id);

CREATE TABLE broadcast_reads (
    user_id         TEXT COLLATE "C" NOT NULL,
    notification_id TEXT COLLATE "C" NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    read_at         BIGINT NOT NULL,
    PRIMARY KEY (user_id, notification_id)
);

CREATE TABLE idempotency_keys (
    caller_id       TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT COLLATE "C" NOT NULL,
    send_id         TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (caller_id, idempotency_key)
);
