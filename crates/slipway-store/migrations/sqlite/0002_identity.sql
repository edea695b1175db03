-- Identity and access. Timestamps are RFC 3339 text in UTC (always "+00:00"), which sorts
-- correctly as text, so comparisons in SQL behave as on PostgreSQL's TIMESTAMPTZ.

CREATE TABLE users (
    id                TEXT PRIMARY KEY NOT NULL,
    email             TEXT NOT NULL,
    email_normalized  TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    totp_secret       BLOB,                 -- sealed with the secrets key
    totp_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_counter BIGINT,               -- refuses replay of the last accepted code
    recovery_codes    TEXT,                 -- JSON array of SHA-256 hashes, unused ones only
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE organizations (
    id                          TEXT PRIMARY KEY NOT NULL,
    name                        TEXT NOT NULL,
    max_token_lifetime_seconds  BIGINT,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE access_tokens (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('personal', 'organization')),
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    organization_id  TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    abilities        TEXT NOT NULL,          -- JSON array of ability patterns
    server_ids       TEXT,                   -- JSON array, NULL = any
    site_ids         TEXT,                   -- JSON array, NULL = any
    allowed_ips      TEXT,                   -- JSON array of CIDRs, NULL = any
    expires_at       TEXT,
    created_at       TEXT NOT NULL,
    created_via      TEXT NOT NULL,
    created_by       TEXT,                   -- the user who created an organisation token
    last_used_at     TEXT,
    last_used_ip     TEXT,
    revoked_at       TEXT
);
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at);
CREATE INDEX access_tokens_org ON access_tokens (organization_id, kind, created_at);

-- JWT exchange: a family per exchange; refresh tokens rotate inside it.
CREATE TABLE token_families (
    id          TEXT PRIMARY KEY NOT NULL,
    token_id    TEXT NOT NULL REFERENCES access_tokens (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    family_id   TEXT NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE rate_limits (
    key           TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);

CREATE TABLE idempotency_keys (
    principal     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT,                 -- NULL while the first request is still running
    content_type  TEXT,
    body          BLOB,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY NOT NULL,
    occurred_at      TEXT NOT NULL,
    actor_user_id    TEXT,
    token_id         TEXT,
    organization_id  TEXT,
    action           TEXT NOT NULL,
    method           TEXT,
    route            TEXT,
    resource_id      TEXT,
    status           BIGINT,
    outcome          TEXT NOT NULL,
    client_ip        TEXT,
    user_agent       TEXT,
    request_id       TEXT,
    detail           TEXT
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_user_id, id);
