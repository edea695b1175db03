-- Durable jobs. A row is both the queue entry and the operation record the API shows.
CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY NOT NULL,
    kind                 TEXT NOT NULL,
    payload              TEXT NOT NULL,           -- JSON; never secrets in clear
    organization_id      TEXT,
    resource_key         TEXT,                    -- e.g. server:<id>; one running job per key
    idempotent           BOOLEAN NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts             BIGINT NOT NULL DEFAULT 0,
    max_attempts         BIGINT NOT NULL,
    run_at               TEXT NOT NULL,
    lease_owner          TEXT,
    lease_expires_at     TEXT,
    cancel_requested_at  TEXT,
    created_at           TEXT NOT NULL,
    started_at           TEXT,
    finished_at          TEXT,
    exit_code            BIGINT,
    failure_reason       TEXT
);
CREATE INDEX jobs_ready ON jobs (status, run_at);
CREATE INDEX jobs_by_resource ON jobs (resource_key, id);
-- The per-resource lock is the job's own status, so a reaped job frees its resource.
CREATE UNIQUE INDEX jobs_one_running_per_resource ON jobs (resource_key) WHERE status = 'running';

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    at      TEXT NOT NULL,
    stream  TEXT NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
