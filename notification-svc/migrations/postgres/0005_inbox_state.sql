-- Same as the SQLite migration: seen, archived and snoozed state per person (direct rows on
-- their own row, broadcasts in `broadcast_states`, which replaces `broadcast_reads`; what was
-- read is seen since it was read), and the inbox counters, unread and unseen, that replace
-- migration 0003's. See the SQLite file for what each counter means.
--
-- ALTER TABLE holds notifications exclusively until the migration commits, and the lock below
-- keeps broadcast_reads still, so the fills see one state of the data. Replicas of an older
-- version do not maintain these counters: stop them before migrating.
ALTER TABLE notifications ADD COLUMN seen_at BIGINT;
ALTER TABLE notifications ADD COLUMN archived_at BIGINT;
ALTER TABLE notifications ADD COLUMN snoozed_until BIGINT;
LOCK TABLE broadcast_reads IN SHARE MODE;
UPDATE notifications SET seen_at = read_at WHERE read_at IS NOT NULL;

CREATE TABLE broadcast_states (
    user_id         TEXT COLLATE "C" NOT NULL,
    notification_id TEXT COLLATE "C" NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    read_at         BIGINT,
    seen_at         BIGINT,
    archived_at     BIGINT,
    snoozed_until   BIGINT,
    PRIMARY KEY (user_id, notification_id)
);
INSERT INTO broadcast_states (user_id, notification_id, read_at, seen_at)
SELECT user_id, notification_id, read_at, read_at FROM broadcast_reads;
DROP TABLE broadcast_reads;

CREATE INDEX notifications_snoozed ON notifications (snoozed_until)
    WHERE snoozed_until IS NOT NULL;
CREATE INDEX broadcast_states_snoozed ON broadcast_states (snoozed_until)
    WHERE snoozed_until IS NOT NULL;

DROP TABLE unread_counts;
DROP TABLE broadcast_counts;
DROP TABLE broadcast_read_counts;

CREATE TABLE inbox_counts (
    user_id  TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    unread   BIGINT NOT NULL,
    unseen   BIGINT NOT NULL,
    PRIMARY KEY (user_id, category)
);

CREATE TABLE broadcast_counts (
    category TEXT COLLATE "C" NOT NULL,
    critical BOOLEAN NOT NULL,
    total    BIGINT NOT NULL,
    PRIMARY KEY (category, critical)
);

CREATE TABLE broadcast_state_counts (
    user_id    TEXT COLLATE "C" NOT NULL,
    category   TEXT COLLATE "C" NOT NULL,
    critical   BOOLEAN NOT NULL,
    not_unread BIGINT NOT NULL,
    not_unseen BIGINT NOT NULL,
    PRIMARY KEY (user_id, category, critical)
);

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
