-- Transactional outbox: the notification of a message is written in the message's own
-- transaction and delivered by the relay until notification-svc accepts it (at least once;
-- the message id as idempotency key makes it effectively once).
CREATE TABLE outbox (
    message_id      TEXT PRIMARY KEY NOT NULL,
    recipient_id    TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    content         TEXT NOT NULL,
    link            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);
