-- Same counters as the SQLite migration: unread totals read from a few small rows instead of
-- counting over a user's whole history and every broadcast. Every write that changes read
-- state keeps them in step in its own transaction (store/sql.rs).
--
-- A user's unread count in a category is
--   unread_counts.unread + broadcast_counts.total - broadcast_read_counts.read.
-- Categories use the "C" collation so totals come out in the same order as on SQLite.

-- Unread direct notifications per recipient and category.
CREATE TABLE unread_counts (
    user_id  TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    unread   BIGINT NOT NULL,
    PRIMARY KEY (user_id, category)
);

-- Broadcasts per category (every user sees every broadcast).
CREATE TABLE broadcast_counts (
    category TEXT COLLATE "C" PRIMARY KEY,
    total    BIGINT NOT NULL
);

-- Broadcasts of a category the user has read (their rows in broadcast_reads).
CREATE TABLE broadcast_read_counts (
    user_id  TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    read     BIGINT NOT NULL,
    PRIMARY KEY (user_id, category)
);

-- Filled from the data stored before this migration; the same definitions the service
-- maintains from here on. The migration runs in one transaction; the lock (held to its
-- commit) keeps the three fills on one state of the data. Replicas of an older version do not
-- maintain the counters: stop them before migrating.
LOCK TABLE notifications, broadcast_reads IN SHARE MODE;

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
