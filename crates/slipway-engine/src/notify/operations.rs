//! `operation.failed`: any job that ends `failed`, for the kinds whose failures have no event of
//! their own (a deployment's is `deployment.failed`, a backup's `backup.failed`, …). Notification
//! jobs never report themselves: a failing channel must not become another notification.

use async_trait::async_trait;
use slipway_store::Job;

use super::{EventSpec, Subject, emit};
use crate::Engine;

/// Job kinds whose failures are reported by their own events (or never).
const OWN_EVENTS: &[&str] = &[
    crate::deploy::SITE_DEPLOY.name,
    crate::provision::SERVER_PROVISION.name,
    crate::backups::BACKUP_DATABASE.name,
    crate::backups::BACKUP_APPLICATION.name,
    crate::backup_restore::BACKUP_VERIFY.name,
    crate::items::acme::CERTIFICATE_ISSUE.name,
    super::deliver::DISPATCH.name,
    super::deliver::DELIVER.name,
];

/// The worker's [`slipway_jobs::FailureHook`].
#[derive(Debug)]
pub struct ReportFailures(pub Engine);

#[async_trait]
impl slipway_jobs::FailureHook for ReportFailures {
    async fn job_failed(&self, job: &Job, reason: &str) {
        let Some(organization_id) = &job.organization_id else { return };
        if OWN_EVENTS.contains(&job.kind.as_str()) {
            return;
        }
        let (mut server_id, mut site_id) = (None, None);
        match job.resource_key.as_deref().and_then(|k| k.split_once(':')) {
            Some(("server", id)) => server_id = Some(id.to_string()),
            Some(("site", id)) => {
                site_id = Some(id.to_string());
                server_id = self.0.store.site(id).await.ok().flatten().map(|s| s.server_id);
            }
            _ => {}
        }
        let subject = Subject {
            resource_type: "operation",
            id: job.id.clone(),
            name: job.kind.clone(),
            path: Some(format!("/api/v1/operations/{}", job.id)),
            server_id,
            site_id,
        };
        let summary = format!("Operation {} failed: {reason}", job.kind);
        let event = EventSpec::new("operation.failed", organization_id, subject, summary)
            .data(serde_json::json!({ "kind": job.kind, "reason": reason, "attempts": job.attempts }));
        emit(&self.0, event).await;
    }
}
