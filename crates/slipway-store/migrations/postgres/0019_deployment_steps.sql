-- Each deployment's steps with their start, duration and outcome (JSON), so a slow or failed
-- deploy shows where its time went.
ALTER TABLE deployments ADD COLUMN steps TEXT;
