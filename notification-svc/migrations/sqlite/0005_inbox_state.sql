-- Per-person inbox state beyond read (issue 19): seen, archived and snoozed, each with its
-- time, for direct notifications on their own row and for broadcasts in `broadcast_states`
-- (which replaces `broadcast_reads`). "Snoozed" means `snoozed_until` is set: the waker
-- clears it when it is due, so List and the counters agree at every instant. Reading implies
-- seen: what was read before this migration is seen since it was read.
ALTER TABLE notifications ADD COLUMN seen_at INTEGER;
ALTER TABLE notifications ADD COLUMN archived_at INTEGER;
ALTER TABLE notifications ADD COLUMN snoozed_until INTEGER;
UPDATE notifications SET seen_at = read_at WHERE read_at IS NOT NULL;

-- One user's state of one broadcast. No row means unread, unseen, not archived, not snoozed.
CREATE TABLE broadcast_states (
    user_id         TEXT NOT NULL,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    read_at         INTEGER,
    seen_at         INTEGER,
    archived_at     INTEGER,
    snoozed_until   INTEGER,
    PRIMARY KEY (user_id, notification_id)
);
INSERT INTO broadcast_states (user_id, notification_id, read_at, seen_at)
SELECT user_id, notification_id, read_at, read_at FROM broadcast_reads;
DROP TABLE broadcast_reads;

-- The waker finds what is due without scanning history.
CREATE INDEX notifications_snoozed ON notifications (snoozed_until)
    WHERE snoozed_until IS NOT NULL;
CREATE INDEX broadcast_states_snoozed ON broadcast_states (snoozed_until)
    WHERE snoozed_until IS NOT NULL;

-- The counters of what a person's inbox holds (not archived, not snoozed), unread and
-- unseen, replacing migration 0003's unread-only ones. Every write that changes state keeps
-- them in step in its own transaction (store/sql.rs). A user's counts in a category are
--   inbox_counts (direct) + the sum over `critical` of
--   broadcast_counts.total - broadcast_state_counts.not_unread (resp. not_unseen),
-- where a muted category's non-critical broadcasts can be left out.
DROP TABLE unread_counts;
DROP TABLE broadcast_counts;
DROP TABLE broadcast_read_counts;

-- Direct notifications in the recipient's inbox that are unread / unseen.
CREATE TABLE inbox_counts (
    user_id  TEXT NOT NULL,
    category TEXT NOT NULL,
    unread   INTEGER NOT NULL,
    unseen   INTEGER NOT NULL,
    PRIMARY KEY (user_id, category)
) WITHOUT ROWID;

-- Broadcasts per category and critical flag (every user sees every broadcast).
CREATE TABLE broadcast_counts (
    category TEXT NOT NULL,
    critical INTEGER NOT NULL,
    total    INTEGER NOT NULL,
    PRIMARY KEY (category, critical)
) WITHOUT ROWID;

-- Broadcasts a user's inbox does not count as unread (read, archived or snoozed) and as
-- unseen (seen, archived or snoozed).
CREATE TABLE broadcast_state_counts (
    user_id    TEXT NOT NULL,
    category   TEXT NOT NULL,
    critical   INTEGER NOT NULL,
    not_unread INTEGER NOT NULL,
    not_unseen INTEGER NOT NULL,
    PRIMARY KEY (user_id, category, critical)
) WITHOUT ROWID;

-- Filled from the data stored before this migration (nothing is archived or snoozed yet);
-- the same definitions the service maintains from here on.
INSERT INTO inbox_counts (user_id, category, unread, unseen)
SELECT recipient_id, category,
       SUM(CASE WHEN read_at IS NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN seen_at IS NULL THEN 1 ELSE 0 END)
  FROM notifications
 WHERE recipient_id IS NOT NULL AND (read_at IS NULL OR seen_at IS NULL)
 GROUP BY recipient_id, category;

INSERT INTO broadcast_counts (category, critical, total)
SELECT category, critical, COUNT(*)
  FROM notifications
 WHERE recipient_id IS NULL
 GROUP BY category, critical;

INSERT INTO broadcast_state_counts (user_id, category, critical, not_unread, not_unseen)
SELECT s.user_id, n.category, n.critical,
       SUM(CASE WHEN s.read_at IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN s.seen_at IS NOT NULL THEN 1 ELSE 0 END)
  FROM broadcast_states s
  JOIN notifications n ON n.id = s.notification_id
 WHERE n.recipient_id IS NULL
 GROUP BY s.user_id, n.category, n.critical;
