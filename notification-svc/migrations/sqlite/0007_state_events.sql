-- The read-event log carries every state change (issue 19): `change` says which (read, seen,
-- unread, archived, unarchived, snoozed, unsnoozed), `read_state` the read state an `all`
-- change was narrowed to ('read', 'unread', NULL for none). Rows before this migration are
-- MarkReads, which had no narrowing.
ALTER TABLE read_events ADD COLUMN change TEXT NOT NULL DEFAULT 'read';
ALTER TABLE read_events ADD COLUMN read_state TEXT;
