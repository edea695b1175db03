-- Instance-wide settings: small values Slipway itself needs to remember (for example the check
-- value that proves the configured secrets key is the one this database was written with).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
