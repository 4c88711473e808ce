-- Unread counters, so List and MarkRead read a user's unread totals from a few small rows
-- instead of counting over their whole history and every broadcast. Every write that
-- changes read state keeps them in step in its own transaction (store/sql.rs).
--
-- A user's unread count in a category is
--   unread_counts.unread + broadcast_counts.total - broadcast_read_counts.read.

-- Unread direct notifications per recipient and category.
CREATE TABLE unread_counts (
    user_id  TEXT NOT NULL,
    category TEXT NOT NULL,
    unread   INTEGER NOT NULL,
    PRIMARY KEY (user_id, category)
) WITHOUT ROWID;

-- Broadcasts per category (every user sees every broadcast).
CREATE TABLE broadcast_counts (
    category TEXT PRIMARY KEY NOT NULL,
    total    INTEGER NOT NULL
) WITHOUT ROWID;

-- Broadcasts of a category the user has read (their rows in broadcast_reads).
CREATE TABLE broadcast_read_counts (
    user_id  TEXT NOT NULL,
    category TEXT NOT NULL,
    read     INTEGER NOT NULL,
    PRIMARY KEY (user_id, category)
) WITHOUT ROWID;

-- Filled from the data stored before this migration; the same definitions the service
-- maintains from here on.
INSERT INTO unread_counts (user_id, category, unread)
SELECT recipient_id, category, COUNT(*)
  FROM notifications
 WHERE recipient_id IS NOT NULL AND read_at IS NULL
 GROUP BY recipient_id, category;

INSERT INTO broadcast_counts (category, total)
SELECT category, COUNT(*)
  FROM notifications
 WHERE recipient_id IS NULL
 GROUP BY category;

INSERT INTO broadcast_read_counts (user_id, category, read)
SELECT br.user_id, n.category, COUNT(*)
  FROM broadcast_reads br
  JOIN notifications n ON n.id = br.notification_id
 WHERE n.recipient_id IS NULL
 GROUP BY br.user_id, n.category;
