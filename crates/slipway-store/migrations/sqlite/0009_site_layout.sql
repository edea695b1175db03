-- In-place sites and their conversion to releases, and shared paths linked into each release.
-- `shared_paths` is a JSON array of relative paths kept across releases (under `shared/`).
-- A deployment's `action` says what it does: build and switch to a new release (`deploy`), go
-- back to a kept one (`rollback`), or turn an in-place site into releases (`enable-zero-downtime`).
ALTER TABLE sites ADD COLUMN shared_paths TEXT NOT NULL DEFAULT '[]';
ALTER TABLE deployments ADD COLUMN action TEXT NOT NULL DEFAULT 'deploy'
    CHECK (action IN ('deploy', 'rollback', 'enable-zero-downtime'));
UPDATE deployments SET action = 'rollback' WHERE release_of IS NOT NULL;
