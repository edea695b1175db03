//! `token.expiring`: once a day, every unrevoked token bound to an organisation that expires
//! within a week is announced to that organisation's channels, once per token and expiry (a
//! token whose expiry is moved is announced again when the new one nears).

use async_trait::async_trait;
use slipway_core::time::{Timestamp, now};
use slipway_jobs::{JobContext, JobError, JobHandler};

use super::{EventSpec, Subject, emit_once};
use crate::Engine;

pub const CHECK_JOB: &str = "notification.token_expiry";
const CHECK_LOCK: &str = "notification:token-expiry";
const EVERY: std::time::Duration = std::time::Duration::from_secs(86_400);
/// How long before its expiry a token is announced.
pub const WARNING_DAYS: i64 = 7;

/// Queues the check of the day that contains `at` (once, however many replicas ask).
pub async fn schedule(store: &dyn slipway_store::Store, at: Timestamp) -> Result<bool, slipway_store::StoreError> {
    slipway_jobs::schedule_slot(store, CHECK_JOB, CHECK_LOCK, at, EVERY).await
}

#[derive(Debug)]
pub struct CheckTokens(pub Engine);

#[async_trait]
impl JobHandler for CheckTokens {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let engine = &self.0;
        let store = engine.store.as_ref();
        let retryable = |e: slipway_store::StoreError| JobError::Retryable { reason: format!("database error: {e}") };
        let at = now();
        // Tomorrow's first: a run that fails still leaves one planned.
        schedule(store, at + chrono::Duration::days(1)).await.map_err(retryable)?;
        let until = at + chrono::Duration::days(WARNING_DAYS);
        let (mut after, mut announced) = (None::<String>, 0);
        loop {
            let batch = store.tokens_expiring(at, until, after.as_deref(), 200).await.map_err(retryable)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            for token in &batch {
                let (Some(org), Some(expires_at)) = (&token.organization_id, token.expires_at) else { continue };
                let days_left = (expires_at - at).num_days();
                let subject = Subject {
                    resource_type: "token",
                    id: token.id.clone(),
                    name: token.name.clone(),
                    path: Some(path(token, org)),
                    server_id: None,
                    site_id: None,
                };
                let summary = format!("Access token {:?} expires in {days_left} days; rotate it", token.name);
                let data = serde_json::json!({ "kind": token.kind, "expires_at": expires_at, "days_left": days_left });
                let event = EventSpec::new("token.expiring", org, subject, summary).data(data);
                let ms = u64::try_from(expires_at.timestamp_millis()).unwrap_or(0);
                emit_once(engine, event, slipway_core::id::id_at_for(ms, &format!("token-expiring:{}", token.id)))
                    .await;
                announced += 1;
            }
        }
        ctx.log("info", format!("==> {announced} token(s) expire within {WARNING_DAYS} days"));
        Ok(())
    }
}

/// A token's path in the API: an organisation token's under its organisation, else the owner's.
pub fn path(token: &slipway_store::AccessToken, organization_id: &str) -> String {
    if token.kind == "organization" {
        format!("/api/v1/organizations/{organization_id}/tokens/{}", token.id)
    } else {
        format!("/api/v1/tokens/{}", token.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::RunStatus;

    #[tokio::test]
    async fn a_token_expiring_within_a_week_is_announced_once() {
        let db = slipway_store::testing::TestDatabase::sqlite().await;
        let store = db.store().await;
        let org = crate::test_support::organization(&store).await;
        let token = |name: &str, days: i64| slipway_store::AccessToken {
            id: slipway_core::new_id(),
            kind: "organization".into(),
            user_id: None,
            organization_id: Some(org.clone()),
            name: name.into(),
            token_hash: slipway_core::new_id(),
            abilities: r#"["site:deploy"]"#.into(),
            server_ids: None,
            site_ids: None,
            allowed_ips: None,
            expires_at: Some(now() + chrono::Duration::days(days)),
            created_at: now(),
            created_via: "api".into(),
            created_by: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
        };
        let soon = token("ci", 3);
        store.insert_token(&soon).await.unwrap();
        store.insert_token(&token("later", 40)).await.unwrap();
        // Two checks the same day (a second replica, a restart): one event.
        let mut checks = Vec::new();
        for _ in 0..2 {
            let spec = slipway_jobs::JobSpec::new(CHECK_JOB, serde_json::json!({}));
            checks.push(slipway_jobs::enqueue(store.as_ref(), spec).await.unwrap());
        }
        let filter = slipway_store::EventFilter { event_type: Some("token.expiring".into()), ..Default::default() };
        let (orgs, page) = ([org.clone()], slipway_core::PageRequest::new(1, 10));
        let settled = || async {
            let mut finished = 0;
            for id in &checks {
                finished += usize::from(store.job(id).await.unwrap().is_some_and(|j| j.status == RunStatus::Succeeded));
            }
            finished == 2 && store.events_of(&orgs, &filter, page).await.unwrap().1 > 0
        };
        crate::test_support::run_jobs_until(&store, settled).await;
        let (events, total) = store.events_of(&orgs, &filter, page).await.unwrap();
        assert_eq!(total, 1, "{events:?}");
        assert_eq!(events[0].resource_id, soon.id);
        assert!(events[0].summary.contains("\"ci\" expires in"), "{}", events[0].summary);
    }
}
