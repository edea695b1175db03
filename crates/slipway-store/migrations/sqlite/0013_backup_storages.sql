-- Where backups go, for a whole organisation: an S3-compatible bucket or a directory on one of
-- its servers. `config` is JSON without secrets; an S3 secret key is sealed in `secret`.
CREATE TABLE backup_storages (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('s3', 'local')),
    config           TEXT NOT NULL,
    secret           BLOB,                       -- sealed
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX backup_storages_by_organization ON backup_storages (organization_id, id);
