-- The server a job works on, so the job runner can cap how many of one server's jobs run at
-- once (a busy server never takes every slot from the others).
ALTER TABLE jobs ADD COLUMN server_key TEXT;
CREATE INDEX jobs_running_by_server ON jobs (server_key) WHERE status = 'running';
