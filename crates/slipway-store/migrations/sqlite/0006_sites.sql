-- Sites on servers, their deployments (each successful one is a release kept on the server
-- until pruned) and their environment variables (values sealed with the secrets key).
CREATE TABLE sites (
    id                    TEXT PRIMARY KEY NOT NULL,
    server_id             TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    organization_id       TEXT NOT NULL,
    domain                TEXT NOT NULL,
    aliases               TEXT NOT NULL,           -- JSON array of names
    project_type          TEXT NOT NULL CHECK (project_type IN ('static', 'php', 'laravel', 'node', 'generic')),
    web_directory         TEXT NOT NULL,
    repository_url        BLOB,                   -- sealed: a URL may carry a token
    repository_branch     TEXT NOT NULL,
    deploy_script         TEXT NOT NULL,
    app_command           TEXT,
    health_check_path     TEXT NOT NULL,
    health_check_status   BIGINT NOT NULL,
    health_check_timeout  BIGINT NOT NULL,
    zero_downtime         BOOLEAN NOT NULL,
    keep_releases         BIGINT NOT NULL,
    app_port              BIGINT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('installing', 'installed', 'failed', 'removing')),
    status_reason         TEXT,
    suspended             BOOLEAN NOT NULL,
    deployment_status     TEXT,
    last_deployed_at      TEXT,
    current_release       TEXT,                   -- the deployment whose release directory is live
    active_port           BIGINT,                 -- the port the live app listens on (apps)
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    UNIQUE (server_id, domain),
    UNIQUE (server_id, app_port)
);
CREATE INDEX sites_by_organization ON sites (organization_id, id);

CREATE TABLE deployments (
    id                    TEXT PRIMARY KEY NOT NULL,
    site_id               TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    server_id             TEXT NOT NULL,
    organization_id       TEXT NOT NULL,
    job_id                TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    trigger_kind          TEXT NOT NULL CHECK (trigger_kind IN ('api', 'webhook', 'schedule', 'rollback', 'cli', 'dashboard')),
    triggered_by_user     TEXT,
    triggered_by_token    TEXT,
    release_of            TEXT,                   -- rollback: the deployment whose release is used
    commit_sha            TEXT,
    commit_message        TEXT,
    commit_author         TEXT,
    port                  BIGINT,
    failed_step           TEXT,
    failure_reason        TEXT,
    release_present       BOOLEAN NOT NULL,       -- its release directory is on the server
    created_at            TEXT NOT NULL,
    started_at            TEXT,
    finished_at           TEXT
);
CREATE INDEX deployments_by_site ON deployments (site_id, id);

CREATE TABLE site_env (
    site_id      TEXT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        BLOB NOT NULL,                  -- sealed
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (site_id, key)
);
