-- Backup schedules for sites as well as databases: a schedule names one of the two.
ALTER TABLE backup_schedules ALTER COLUMN database_id DROP NOT NULL;
ALTER TABLE backup_schedules ADD COLUMN site_id TEXT;
ALTER TABLE backup_schedules ADD CONSTRAINT backup_schedules_one_target
    CHECK ((database_id IS NULL) <> (site_id IS NULL));
CREATE INDEX backup_schedules_by_site ON backup_schedules (site_id, id);
