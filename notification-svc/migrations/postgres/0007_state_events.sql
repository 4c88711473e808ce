-- Same as the SQLite migration: the read-event log carries every state change.
ALTER TABLE read_events ADD COLUMN change TEXT NOT NULL DEFAULT 'read';
ALTER TABLE read_events ADD COLUMN read_state TEXT;
