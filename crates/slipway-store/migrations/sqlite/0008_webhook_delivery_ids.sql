-- The git host's id of each push delivery (GitHub X-GitHub-Delivery, GitLab X-Gitlab-Event-UUID,
-- Bitbucket X-Request-UUID, generic X-Slipway-Delivery), so that a replayed delivery is
-- recognised and does not deploy again.
--
-- The history rows keep the id for display (a delivery has one row per site, and a duplicate is
-- recorded too, so it cannot be unique there). webhook_delivery_ids holds one row per delivery id
-- a repository has received: inserting it is the arbiter, so of two concurrent identical
-- deliveries exactly one proceeds.
ALTER TABLE webhook_deliveries ADD COLUMN delivery_id TEXT;

CREATE TABLE webhook_delivery_ids (
    repository_id  TEXT NOT NULL REFERENCES git_repositories (id) ON DELETE CASCADE,
    delivery_id    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    PRIMARY KEY (repository_id, delivery_id)
);
