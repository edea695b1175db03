-- Git providers (an access token per connection), repositories (URL, branch, deploy key, the
-- secret of their push webhook), which repository a site deploys, the commit a push asked for,
-- and every incoming webhook delivery with what came of it.
CREATE TABLE git_providers (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('github', 'gitlab', 'bitbucket', 'generic')),
    access_token     BYTEA,                       -- sealed
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX git_providers_by_organization ON git_providers (organization_id, id);

CREATE TABLE git_repositories (
    id                  TEXT PRIMARY KEY NOT NULL,
    organization_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider_id         TEXT REFERENCES git_providers (id) ON DELETE SET NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('github', 'gitlab', 'bitbucket', 'generic')),
    url                 BYTEA NOT NULL,          -- sealed: a URL may carry a token
    branch              TEXT NOT NULL,
    deploy_key_public   TEXT,
    deploy_key_private  BYTEA,                   -- sealed
    webhook_uuid        TEXT NOT NULL UNIQUE,
    webhook_secret      BYTEA,                   -- sealed; NULL while auto-deploy is off
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX git_repositories_by_organization ON git_repositories (organization_id, id);

ALTER TABLE sites ADD COLUMN git_repository_id TEXT REFERENCES git_repositories (id) ON DELETE SET NULL;
ALTER TABLE deployments ADD COLUMN requested_commit TEXT;

CREATE TABLE webhook_deliveries (
    id             TEXT PRIMARY KEY NOT NULL,
    repository_id  TEXT NOT NULL REFERENCES git_repositories (id) ON DELETE CASCADE,
    site_id        TEXT REFERENCES sites (id) ON DELETE CASCADE,
    received_at    TIMESTAMPTZ NOT NULL,
    event          TEXT,
    branch         TEXT,
    commit_sha     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
    reason         TEXT,
    deployment_id  TEXT
);
CREATE INDEX webhook_deliveries_by_site ON webhook_deliveries (site_id, id);
CREATE INDEX webhook_deliveries_by_repository ON webhook_deliveries (repository_id, id);
