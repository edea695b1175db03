-- A request holding an Idempotency-Key refreshes this while it runs. A key whose holder
-- stopped refreshing (the process was killed) is released, instead of answering
-- "still being processed" until the record expires a day later.
ALTER TABLE idempotency_keys ADD COLUMN heartbeat_at TEXT;
