-- Transactional outbox (see the SQLite migration).
CREATE TABLE outbox (
    message_id      TEXT COLLATE "C" PRIMARY KEY,
    recipient_id    TEXT COLLATE "C" NOT NULL,
    sender_id       TEXT COLLATE "C" NOT NULL,
    content         TEXT NOT NULL,
    link            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);
