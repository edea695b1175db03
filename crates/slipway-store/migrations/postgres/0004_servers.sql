-- Servers, and the key pair each organisation uses to log in to its servers.
CREATE TABLE organization_keys (
    organization_id  TEXT PRIMARY KEY NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    public_key       TEXT NOT NULL,
    private_key      BYTEA NOT NULL,         -- sealed with the secrets key
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE servers (
    id                    TEXT PRIMARY KEY NOT NULL,
    organization_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    provider              TEXT NOT NULL,
    ip_address            TEXT NOT NULL,
    ssh_port              BIGINT NOT NULL,
    ssh_user              TEXT NOT NULL,
    region                TEXT,
    size                  TEXT,
    php_version           TEXT,
    database_type         TEXT NOT NULL,
    webserver             TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'provisioning', 'active', 'failed', 'unreachable')),
    status_reason         TEXT,
    monitoring_enabled    BOOLEAN NOT NULL,
    os                    TEXT,
    host_key              TEXT,                -- pinned at first contact (OpenSSH form)
    provisioned_at        TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX servers_by_organization ON servers (organization_id, id);
