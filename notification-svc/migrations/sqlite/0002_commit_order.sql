-- seq: the commit order of notifications. Assigned under the writers' lock (SQLite's
-- BEGIN IMMEDIATE), so seq order is commit order: the feed tails it and Subscribe resumes by
-- it, and nothing that commits late can slip behind a cursor. See docs/subscribe-cursor.md.
ALTER TABLE notifications ADD COLUMN seq INTEGER;
UPDATE notifications
   SET seq = (SELECT COUNT(*) FROM notifications AS older WHERE older.id <= notifications.id);
CREATE UNIQUE INDEX notifications_seq ON notifications (seq);

-- Read events, so every replica's streams hear of a MarkRead (same commit-ordered seq).
CREATE TABLE read_events (
    seq        INTEGER PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    ids        TEXT NOT NULL,
    all_read   INTEGER NOT NULL,
    category   TEXT,
    created_at INTEGER NOT NULL
);

-- The head of each commit-ordered log. Writers bump it with UPDATE ... RETURNING, which
-- serialises them until commit (SQLite: the write lock; PostgreSQL: the row lock).
CREATE TABLE feed_heads (
    name TEXT PRIMARY KEY NOT NULL,
    seq  INTEGER NOT NULL
);
INSERT INTO feed_heads (name, seq)
VALUES ('notifications', (SELECT COALESCE(MAX(seq), 0) FROM notifications)),
       ('read_events', 0);
