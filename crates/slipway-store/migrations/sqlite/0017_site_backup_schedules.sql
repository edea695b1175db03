-- Backup schedules for sites as well as databases: a schedule names one of the two. SQLite
-- cannot drop a NOT NULL, so the table is rebuilt (nothing refers to it).
CREATE TABLE backup_schedules_new (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    server_id        TEXT NOT NULL,
    database_id      TEXT,
    site_id          TEXT,
    storage_id       TEXT NOT NULL,
    frequency        TEXT NOT NULL,
    keep_last        INTEGER NOT NULL,
    keep_daily       INTEGER NOT NULL,
    keep_weekly      INTEGER NOT NULL,
    keep_monthly     INTEGER NOT NULL,
    verify           BOOLEAN NOT NULL,
    next_run_at      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK ((database_id IS NULL) <> (site_id IS NULL))
);
INSERT INTO backup_schedules_new
    (id, organization_id, server_id, database_id, site_id, storage_id, frequency, keep_last, keep_daily,
     keep_weekly, keep_monthly, verify, next_run_at, created_at, updated_at)
SELECT id, organization_id, server_id, database_id, NULL, storage_id, frequency, keep_last, keep_daily,
       keep_weekly, keep_monthly, verify, next_run_at, created_at, updated_at
FROM backup_schedules;
DROP TABLE backup_schedules;
ALTER TABLE backup_schedules_new RENAME TO backup_schedules;
CREATE INDEX backup_schedules_by_database ON backup_schedules (database_id, id);
CREATE INDEX backup_schedules_by_site ON backup_schedules (site_id, id);
