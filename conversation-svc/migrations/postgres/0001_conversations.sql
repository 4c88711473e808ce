-- Same schema as the SQLite migration; ids and keys use the "C" collation so text order is
-- byte order (UUIDv7 time order, and the ordered-pair CHECK) exactly as in SQLite.
CREATE TABLE users (
    id           TEXT COLLATE "C" PRIMARY KEY,
    username     TEXT NOT NULL,
    username_key TEXT COLLATE "C" UNIQUE,
    avatar_url   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE conversations (
    id              TEXT COLLATE "C" PRIMARY KEY,
    user_low        TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    user_high       TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    last_message_id TEXT COLLATE "C",
    CHECK (user_low < user_high),
    UNIQUE (user_low, user_high)
);

CREATE TABLE participants (
    conversation_id  TEXT COLLATE "C" NOT NULL REFERENCES conversations (id),
    user_id          TEXT COLLATE "C" NOT NULL,
    other_user_id    TEXT COLLATE "C" NOT NULL,
    unread_count     BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_activity
    ON participants (user_id, last_activity_at, conversation_id);

CREATE TABLE messages (
    id              TEXT COLLATE "C" PRIMARY KEY,
    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations (id),
    sender_id       TEXT COLLATE "C" NOT NULL,
    content         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    idempotency_key TEXT COLLATE "C"
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE UNIQUE INDEX messages_idempotency ON messages (sender_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
