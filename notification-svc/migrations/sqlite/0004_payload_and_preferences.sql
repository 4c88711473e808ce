-- Structured data and the critical flag of a Send, stored on every row it creates (issue 19).
-- `data` is the compact JSON of the sender's google.protobuf.Struct, NULL when none was given.
ALTER TABLE notifications ADD COLUMN data TEXT;
ALTER TABLE notifications ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;

-- A person's category mutes. A row mutes `category` and every `category.<anything>`;
-- `muted_until` NULL means until turned off. UpdatePreferences replaces a user's rows.
CREATE TABLE preferences (
    user_id     TEXT NOT NULL,
    category    TEXT NOT NULL,
    muted_until INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, category)
) WITHOUT ROWID;
