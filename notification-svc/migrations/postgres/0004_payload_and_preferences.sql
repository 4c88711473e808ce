-- Same as the SQLite migration: `data` is the compact JSON of the Send's Struct (NULL when
-- none), `critical` the Send's flag, and `preferences` a person's category mutes (a row mutes
-- `category` and every `category.<anything>`; `muted_until` NULL means until turned off).
ALTER TABLE notifications ADD COLUMN data TEXT;
ALTER TABLE notifications ADD COLUMN critical BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE preferences (
    user_id     TEXT COLLATE "C" NOT NULL,
    category    TEXT COLLATE "C" NOT NULL,
    muted_until BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, category)
);
