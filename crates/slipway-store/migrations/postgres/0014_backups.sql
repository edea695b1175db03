-- Backups: one object in a storage, with what proves it (size, SHA-256, the manifest of tables
-- and rows at dump time) and what happened to it.
CREATE TABLE backups (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('database', 'application')),
    server_id        TEXT NOT NULL,
    database_id      TEXT,
    site_id          TEXT,
    storage_id       TEXT NOT NULL,
    object_key       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'restored')),
    size_bytes       BIGINT,
    sha256           TEXT,
    manifest         TEXT,
    error            TEXT,
    job_id           TEXT,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX backups_by_organization ON backups (organization_id, id);
