-- Timed mutes end like snoozes wake (issue 19): the waker deletes a mute that is over and
-- logs a `preferences` state event, so the person's streams send the counts the mute's end
-- changed. This index finds the next end (`NEXT_WAKE`) and the mutes that are over.
CREATE INDEX preferences_muted_until ON preferences (muted_until) WHERE muted_until IS NOT NULL;
