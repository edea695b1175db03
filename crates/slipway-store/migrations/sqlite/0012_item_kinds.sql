-- Kinds of server item are declared by the engine (daemons now; more follow), which refuses an
-- unknown kind itself: the column only keeps the shape of a kind name. SQLite cannot change a
-- CHECK constraint, so the table is rebuilt (nothing references it).
CREATE TABLE server_items_new (
    id             TEXT PRIMARY KEY NOT NULL,
    server_id      TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 40 AND kind NOT GLOB '*[^a-z_]*'),
    name           TEXT NOT NULL,
    spec           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('installing', 'installed', 'removing', 'failed')),
    status_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
INSERT INTO server_items_new (id, server_id, kind, name, spec, status, status_reason, created_at, updated_at)
    SELECT id, server_id, kind, name, spec, status, status_reason, created_at, updated_at FROM server_items;
DROP TABLE server_items;
ALTER TABLE server_items_new RENAME TO server_items;
CREATE INDEX server_items_by_server ON server_items (server_id, kind, id);
