-- People, as the gateway's identity metadata describes them. username_key is the lower-cased
-- username, unique; NULL when the user has none or a newer id claimed it.
CREATE TABLE users (
    id           TEXT PRIMARY KEY NOT NULL,
    username     TEXT NOT NULL,
    username_key TEXT UNIQUE,
    avatar_url   TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One row per pair of people: the ordered pair is the unique key, so concurrent Creates from
-- either side can only ever make one conversation.
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY NOT NULL,
    user_low        TEXT NOT NULL REFERENCES users (id),
    user_high       TEXT NOT NULL REFERENCES users (id),
    created_at      INTEGER NOT NULL,
    last_message_id TEXT,
    CHECK (user_low < user_high),
    UNIQUE (user_low, user_high)
);

-- Each participant's view: unread count and the activity time List orders by.
CREATE TABLE participants (
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    user_id          TEXT NOT NULL,
    other_user_id    TEXT NOT NULL,
    unread_count     INTEGER NOT NULL DEFAULT 0,
    last_activity_at INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX participants_by_activity
    ON participants (user_id, last_activity_at, conversation_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    sender_id       TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idempotency_key TEXT
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE UNIQUE INDEX messages_idempotency ON messages (sender_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
