-- Retention: the pruning job deletes old rows by time, in small batches; each of these lets a
-- batch find its rows without scanning the table.
CREATE INDEX audit_events_occurred ON audit_events (occurred_at);
CREATE INDEX access_tokens_revoked ON access_tokens (revoked_at);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
CREATE INDEX token_families_token ON token_families (token_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE INDEX deployments_by_job ON deployments (job_id);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
CREATE INDEX webhook_delivery_ids_received ON webhook_delivery_ids (received_at);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX rate_limits_expires ON rate_limits (expires_at);
