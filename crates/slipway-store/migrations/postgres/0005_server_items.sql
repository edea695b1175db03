-- What first contact offered when it met a changed host key (an admin may accept it), whether
-- provisioning installs Node.js, and what Slipway keeps on a server: SSH keys of the deploy
-- user and firewall rules. Items are applied by a job that renders all of a server's items of a
-- kind at once, so their status says whether the server has them yet.
ALTER TABLE servers ADD COLUMN offered_host_key TEXT;
ALTER TABLE servers ADD COLUMN node BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE server_items (
    id             TEXT PRIMARY KEY NOT NULL,
    server_id      TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('ssh_key', 'network_rule')),
    name           TEXT NOT NULL,
    spec           TEXT NOT NULL,          -- JSON, validated by the API before it is stored
    status         TEXT NOT NULL CHECK (status IN ('installing', 'installed', 'removing', 'failed')),
    status_reason  TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX server_items_by_server ON server_items (server_id, kind, id);
