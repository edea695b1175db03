-- What was proven about a backup after it was made: the last verification (restored into a
-- scratch database and compared with its manifest) and the last restore.
ALTER TABLE backups ADD COLUMN verified_at TEXT;
ALTER TABLE backups ADD COLUMN verification_error TEXT;
ALTER TABLE backups ADD COLUMN restored_at TEXT;
