-- What happened (a deployment failed, a backup completed): one row per event, kept for the
-- event retention. `data` is a JSON object with the event's details.
CREATE TABLE events (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT NOT NULL,
    resource_name    TEXT NOT NULL,
    resource_path    TEXT,
    server_id        TEXT,
    site_id          TEXT,
    summary          TEXT NOT NULL,
    data             TEXT NOT NULL,
    occurred_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_organization ON events (organization_id, id);
CREATE INDEX events_by_time ON events (occurred_at);

-- Where an organisation's events are sent. `config` is JSON without secrets (subscriptions,
-- SMTP host); the URL, the signing secret and any SMTP password are sealed in `secret`.
CREATE TABLE notification_channels (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email')),
    config           TEXT NOT NULL,
    secret           BYTEA NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_channels_by_organization ON notification_channels (organization_id, id);

-- One event sent to one channel: at most one per pair. `repeats` counts identical events folded
-- into it (same type and resource within the channel's window); `folded` is the count the
-- delivery before it had, reported in this one.
CREATE TABLE notification_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    channel_id       TEXT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    organization_id  TEXT NOT NULL,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         BIGINT NOT NULL,
    repeats          BIGINT NOT NULL,
    folded           BIGINT NOT NULL,
    response_code    BIGINT,
    duration_ms      BIGINT,
    error            TEXT,
    next_attempt_at  TIMESTAMPTZ,
    deadline_at      TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (channel_id, event_id)
);
CREATE INDEX notification_deliveries_by_channel ON notification_deliveries (channel_id, id);
CREATE INDEX notification_deliveries_by_group ON notification_deliveries (channel_id, group_key, created_at);
CREATE INDEX notification_deliveries_by_event ON notification_deliveries (event_id);
