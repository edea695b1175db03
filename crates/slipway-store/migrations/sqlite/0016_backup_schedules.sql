-- Backup schedules: a database backed up on a cron-like frequency to one storage, with its
-- retention (keep the last N, plus the newest of each of the last days, weeks and months).
CREATE TABLE backup_schedules (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id        TEXT NOT NULL,
    database_id      TEXT NOT NULL,
    storage_id       TEXT NOT NULL,
    frequency        TEXT NOT NULL,
    keep_last        INTEGER NOT NULL,
    keep_daily       INTEGER NOT NULL,
    keep_weekly      INTEGER NOT NULL,
    keep_monthly     INTEGER NOT NULL,
    verify           BOOLEAN NOT NULL,
    next_run_at      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX backup_schedules_by_database ON backup_schedules (database_id, id);
-- The schedule a backup was made by (retention applies to its own backups only).
ALTER TABLE backups ADD COLUMN schedule_id TEXT;
CREATE INDEX backups_by_schedule ON backups (schedule_id, id);
