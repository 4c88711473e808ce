-- seq: the commit order of notifications, assigned under a transaction-level advisory lock
-- held until commit, so seq order is commit order across every replica. See
-- docs/subscribe-cursor.md.
ALTER TABLE notifications ADD COLUMN seq BIGINT;
UPDATE notifications AS n
   SET seq = ordered.rn
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM notifications) AS ordered
 WHERE ordered.id = n.id;
CREATE UNIQUE INDEX notifications_seq ON notifications (seq);

CREATE TABLE read_events (
    seq        BIGINT PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL,
    ids        TEXT NOT NULL,
    all_read   BOOLEAN NOT NULL,
    category   TEXT,
    created_at BIGINT NOT NULL
);

-- The head of each commit-ordered log. Writers bump it with UPDATE ... RETURNING; the row
-- lock is held until commit, so seq order is commit order.
CREATE TABLE feed_heads (
    name TEXT COLLATE "C" PRIMARY KEY,
    seq  BIGINT NOT NULL
);
INSERT INTO feed_heads (name, seq)
VALUES ('notifications', (SELECT COALESCE(MAX(seq), 0) FROM notifications)),
       ('read_events', 0);
