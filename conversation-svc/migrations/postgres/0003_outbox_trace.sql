-- The trace context of the queuing SendMessage (see the SQLite migration).
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN tracestate TEXT;
