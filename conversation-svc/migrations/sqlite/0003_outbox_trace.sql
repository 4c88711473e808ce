-- The W3C trace context of the SendMessage that queued an entry, so that its delivery (perhaps
-- after a restart) belongs to the same trace. NULL for entries queued before it existed.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN tracestate TEXT;
