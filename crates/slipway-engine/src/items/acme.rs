//! ACME issuance and renewal (RFC 8555, HTTP-01) for sites' certificates, with `instant-acme`.
//!
//! One ACME account per organization and directory, its credentials sealed in Slipway's
//! settings. `certificate.issue` orders the certificate, puts each challenge's key
//! authorization where every site block answers `/.well-known/acme-challenge/` (see
//! [`super::certificates::ACME_WEBROOT`]), lets the CA validate, finalizes with a new key and
//! stores the certificate; then it is served like an uploaded one. A failure is recorded on the
//! certificate (with the CA's own words) and never touches the certificate being served.

use slipway_core::InstallStatus;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy, RevocationRequest,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, ServerItem};

use super::certificates::{ACME_WEBROOT, ActivateJob, CertificateSpec, Issued, Renewal, ServersSeen, serve};
use crate::notify::{EventSpec, Subject};
use crate::script::Script;
use crate::session::{abandoned_reason, connect, load_server, reason_to_record, run_script, store_error};
use crate::{Engine, JobKind, audit};

/// Let's Encrypt's production directory: the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Which ACME server Slipway uses.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub directory: String,
    /// A CA certificate (PEM file) to trust for the ACME server's own HTTPS instead of the
    /// system's, for private ACME servers.
    pub ca_bundle: Option<PathBuf>,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings { directory: LETS_ENCRYPT.into(), ca_bundle: None }
    }
}

/// How long before expiry a certificate is renewed.
pub const RENEW_BEFORE: chrono::Duration = chrono::Duration::days(30);

/// When an ACME certificate issued for `not_before..not_after` is due for renewal: 30 days before
/// expiry, or at a third of its life left for short-lived certificates.
pub fn renewal_due(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let life = not_after - not_before;
    not_after - RENEW_BEFORE.min(life / 3)
}

/// The wait after `failures` failed attempts in a row: 5 minutes, doubling, at most a day.
pub fn backoff(failures: u32) -> chrono::Duration {
    let minutes = 5i64.saturating_mul(1 << failures.saturating_sub(1).min(9));
    chrono::Duration::minutes(minutes.min(24 * 60))
}

pub const CERTIFICATE_ISSUE: JobKind = JobKind { name: "certificate.issue", attempts: 3 };

/// The payload of `certificate.issue` and `certificate.revoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateJob {
    pub server_id: String,
    pub certificate_id: String,
}

/// The ACME account of `organization_id` at the configured directory, created on first use.
async fn account(engine: &Engine, organization_id: &str) -> Result<Account, String> {
    let settings = &engine.acme;
    let directory_hash = Sha256::digest(settings.directory.as_bytes());
    let key = format!("acme-account:{organization_id}:{}", slipway_core::hex::encode(&directory_hash[..8]));
    let builder = || match &settings.ca_bundle {
        Some(path) => {
            Account::builder_with_root(path).map_err(|e| format!("the ACME CA bundle {}: {e}", path.display()))
        }
        None => Account::builder().map_err(|e| e.to_string()),
    };
    if let Some(sealed) = engine.store.setting(&key).await.map_err(|e| e.to_string())? {
        let sealed = STANDARD.decode(sealed).map_err(|e| e.to_string())?;
        let plain = engine.secrets.open(&key, &sealed).map_err(|e| e.to_string())?;
        let credentials: AccountCredentials = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
        return builder()?.from_credentials(credentials).await.map_err(|e| format!("the ACME account: {e}"));
    }
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?
        .create(&new, settings.directory.clone(), None)
        .await
        .map_err(|e| format!("creating an ACME account at {}: {e}", settings.directory))?;
    let plain = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    let sealed = STANDARD.encode(engine.secrets.seal(&key, &plain));
    engine.store.put_setting(&key, &sealed).await.map_err(|e| e.to_string())?;
    Ok(account)
}

/// Publishes (or, with an empty list, removes) challenge answers on the server: one line per
/// challenge, `token key-authorization`, both of the ACME alphabet (base64url and `.`).
fn challenges_script(answers: &[(String, String)]) -> Result<Script, String> {
    let acme_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut table = String::new();
    for (token, authorization) in answers {
        if token.is_empty() || !token.chars().all(acme_char) || !authorization.chars().all(acme_char) {
            return Err(format!("the ACME server sent a token Slipway will not write: {token:?}"));
        }
        table.push_str(&format!("{token} {authorization}\n"));
    }
    Ok(Script::new("acme challenges", include_str!("../../scripts/acme_challenges.sh"))
        .var("ANSWERS", &table)
        .var("ACME_WEBROOT", ACME_WEBROOT))
}

/// The reason an order failed, in the ACME server's words (each invalid challenge's error).
async fn order_failure(order: &mut instant_acme::Order, error: Option<instant_acme::Error>) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = match &authz.identifier().identifier {
            Identifier::Dns(name) => name.clone(),
            other => format!("{other:?}"),
        };
        if let Ok(state) = authz.refresh().await {
            for challenge in state.challenges.iter().filter(|c| c.error.is_some()) {
                if let Some(problem) = &challenge.error {
                    reasons.push(format!("{name}: {}", problem.detail.clone().unwrap_or_else(|| problem.to_string())));
                }
            }
        }
    }
    match (reasons.is_empty(), error) {
        (false, _) => reasons.join("; "),
        (true, Some(e)) => e.to_string(),
        (true, None) => "the ACME server did not validate the order".into(),
    }
}

/// Orders and fetches a certificate for `domains`; answers the challenges through `server`.
/// Returns the chain PEM and the new key PEM.
async fn obtain(
    engine: &Engine,
    ctx: &JobContext,
    server: &Server,
    domains: &[String],
) -> Result<(String, String), JobError> {
    let account = account(engine, &server.organization_id).await.map_err(JobError::failed)?;
    let identifiers: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| JobError::failed(format!("the ACME server refused the order: {e}")))?;
    ctx.log("info", format!("==> ordered a certificate for {} from {}", domains.join(", "), engine.acme.directory));
    let mut answers = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| JobError::failed(format!("ACME authorization: {e}")))?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| JobError::failed("the ACME server offers no HTTP-01 challenge"))?;
        answers.push((challenge.token.clone(), challenge.key_authorization().as_str().to_string()));
    }
    let connection = connect(engine, ctx, server).await?;
    let publish = challenges_script(&answers).map_err(JobError::failed)?;
    run_script(engine, ctx, &connection, &publish).await?;
    // Ready only once every answer is on the server.
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| JobError::failed(format!("ACME authorization: {e}")))?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(ChallengeType::Http01) {
            challenge.set_ready().await.map_err(|e| JobError::failed(format!("ACME challenge: {e}")))?;
        }
    }
    let retry =
        RetryPolicy::new().initial_delay(Duration::from_millis(500)).backoff(1.5).timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retry).await;
    // The answers are public, but they are not left behind.
    let _ = run_script(engine, ctx, &connection, &challenges_script(&[]).map_err(JobError::failed)?).await;
    match status {
        Ok(OrderStatus::Ready) => {}
        Ok(_) => return Err(JobError::failed(order_failure(&mut order, None).await)),
        Err(e) => return Err(JobError::failed(order_failure(&mut order, Some(e)).await)),
    }
    ctx.log("info", "==> the ACME server validated every name");
    let key = order.finalize().await.map_err(|e| JobError::failed(format!("finalizing the order: {e}")))?;
    let chain =
        order.poll_certificate(&retry).await.map_err(|e| JobError::failed(format!("fetching the certificate: {e}")))?;
    Ok((chain, key))
}

#[derive(Debug)]
pub struct IssueCertificate(pub Engine);

#[async_trait]
impl JobHandler for IssueCertificate {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let Ok(payload) = serde_json::from_str::<CertificateJob>(&job.payload) else { return };
        record_failure(&self.0, &payload.server_id, &payload.certificate_id, abandoned_reason(job)).await;
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: CertificateJob = ctx.payload()?;
        let engine = &self.0;
        let result = issue(engine, ctx, &job).await;
        if let Err(e) = &result {
            // Every attempt that ends without a certificate says why (a retry marks it issuing
            // again); so nothing stays `issuing` or `renewing` once no job works on it. An
            // attempt that resumes after a shutdown, or whose job another worker reaped, is not
            // the last one.
            if let Some(reason) = reason_to_record(ctx, e) {
                record_failure(engine, &job.server_id, &job.certificate_id, &reason).await;
            }
        }
        result
    }
}

/// Certificate `id` and its spec, unless it is gone or being removed.
async fn load_certificate(engine: &Engine, id: &str) -> Result<(ServerItem, CertificateSpec), JobError> {
    let item = engine
        .store
        .server_item(id)
        .await
        .map_err(store_error)?
        .filter(|i| i.status != InstallStatus::Removing)
        .ok_or_else(|| JobError::failed("the certificate was deleted"))?;
    let spec = serde_json::from_str(&item.spec).map_err(|e| JobError::failed(e.to_string()))?;
    Ok((item, spec))
}

/// One attempt at issuing (or renewing) certificate `job.certificate_id` and serving it.
async fn issue(engine: &Engine, ctx: &JobContext, job: &CertificateJob) -> Result<(), JobError> {
    let server = load_server(engine, &job.server_id).await?;
    let (item, mut spec) = load_certificate(engine, &job.certificate_id).await?;
    let renewing = spec.issued.is_some();
    // Shown while this attempt runs (a retry after a failure shows it again).
    let mut renewal = spec.renewal.clone().unwrap_or_default();
    renewal.phase = Some(if renewing { "renewing" } else { "issuing" }.into());
    spec.renewal = Some(renewal);
    let text = serde_json::to_string(&spec).map_err(|e| JobError::failed(e.to_string()))?;
    engine.store.set_server_item_spec(&item.id, &text).await.map_err(store_error)?;
    if !renewing {
        engine
            .store
            .set_server_items_status(std::slice::from_ref(&item.id), InstallStatus::Installing, None)
            .await
            .map_err(store_error)?;
    }

    let (chain, key) = obtain(engine, ctx, &server, &spec.domains).await?;
    let info = slipway_tls::describe_pem(&chain).map_err(JobError::failed)?;
    let due = renewal_due(info.not_before, info.not_after);
    let fingerprint = info.fingerprint.clone();
    let mut new = spec.clone();
    new.issued = Some(Issued::seal(&engine.secrets, &spec.site_id, info, chain, &key));
    new.renewal = Some(Renewal { phase: None, next_attempt_at: Some(due), last_error: None, failures: 0 });
    ctx.log("info", format!("==> certificate issued; renewal is due {}", due.format("%Y-%m-%d %H:%M UTC")));
    let activate = ActivateJob {
        server_id: server.id.clone(),
        certificate_id: item.id.clone(),
        https_redirect: spec.https_redirect,
        hsts: spec.hsts,
    };
    if renewing && spec.active {
        // The certificate being served is replaced only once nginx serves the new one; until
        // then the old one stays stored and served.
        serve(engine, ctx, &server, &activate, Some(new.clone())).await?;
    } else {
        let text = serde_json::to_string(&new).map_err(|e| JobError::failed(e.to_string()))?;
        engine.store.set_server_item_spec(&item.id, &text).await.map_err(store_error)?;
        if renewing {
            // A renewed certificate that is not served stays as it is, only newer.
            let ids = std::slice::from_ref(&item.id);
            engine.store.set_server_items_status(ids, InstallStatus::Installed, None).await.map_err(store_error)?;
        } else {
            serve(engine, ctx, &server, &activate, None).await?;
        }
    }
    let not_after = new.issued.as_ref().map(|i| i.not_after.to_rfc3339()).unwrap_or_default();
    if renewing {
        let detail = format!("{}: renewed; now {fingerprint}, valid until {not_after}", spec.domain);
        audit::record(engine, &server.organization_id, "certificate.renew", &item.id, "success", Some(detail)).await;
    }
    let what = if renewing { "renewed" } else { "issued" };
    let summary = format!("Certificate for {} {what}, valid until {not_after}", spec.domain);
    let event =
        EventSpec::new("certificate.issued", &server.organization_id, subject(&server.id, &item.id, &spec), summary)
            .data(serde_json::json!({ "renewal": renewing, "fingerprint": fingerprint, "not_after": not_after }));
    crate::notify::emit(engine, event).await;
    Ok(())
}

/// Records a failed issuance or renewal: the reason, when it is tried again, and an audit event.
/// A certificate that was issued before keeps its status (and keeps being served); a first
/// issuance fails.
pub async fn record_failure(engine: &Engine, server_id: &str, id: &str, reason: &str) {
    let Ok(Some(item)) = engine.store.server_item(id).await else { return };
    let Ok(mut spec) = serde_json::from_str::<CertificateSpec>(&item.spec) else { return };
    let mut renewal = spec.renewal.take().unwrap_or_default();
    renewal.failures = renewal.failures.saturating_add(1);
    renewal.phase = None;
    renewal.last_error = Some(reason.to_string());
    renewal.next_attempt_at = Some(slipway_core::time::now() + backoff(renewal.failures));
    let issued = spec.issued.is_some();
    spec.renewal = Some(renewal);
    if let Ok(text) = serde_json::to_string(&spec) {
        let _ = engine.store.set_server_item_spec(id, &text).await;
    }
    let ids = [id.to_string()];
    if issued {
        let _ = engine.store.set_server_items_status(&ids, InstallStatus::Installed, None).await;
    } else {
        let _ = engine.store.set_server_items_status(&ids, InstallStatus::Failed, Some(reason)).await;
    }
    if let Ok(Some(server)) = engine.store.server(server_id).await {
        let (action, what) = if issued { ("certificate.renew", "renewal") } else { ("certificate.issue", "issuance") };
        let detail = format!("{}: {what} failed: {reason}", spec.domain);
        audit::record(engine, &server.organization_id, action, id, "failure", Some(detail)).await;
        let event_type = if issued { "certificate.renewal_failed" } else { "certificate.issue_failed" };
        let summary = format!("Certificate {what} for {} failed: {reason}", spec.domain);
        let event = EventSpec::new(event_type, &server.organization_id, subject(server_id, id, &spec), summary)
            .data(serde_json::json!({ "reason": reason, "still_served": issued && spec.active }));
        crate::notify::emit(engine, event).await;
    }
}

/// What a certificate's events are about.
fn subject(server_id: &str, id: &str, spec: &CertificateSpec) -> Subject {
    Subject {
        resource_type: "certificate",
        id: id.to_string(),
        name: spec.domain.clone(),
        path: Some(format!("/api/v1/servers/{server_id}/sites/{}/certificates/{id}", spec.site_id)),
        server_id: Some(server_id.to_string()),
        site_id: Some(spec.site_id.clone()),
    }
}

/// Queues renewal for every ACME certificate whose renewal (or retry) is due; called by the
/// watch. Returns how many were queued.
pub async fn queue_due_renewals(engine: &Engine, items: &[ServerItem], servers: &mut ServersSeen) -> usize {
    let now = slipway_core::time::now();
    let mut queued = 0;
    for item in items.iter().filter(|i| i.status == InstallStatus::Installed) {
        let Ok(spec) = serde_json::from_str::<CertificateSpec>(&item.spec) else { continue };
        let renewal = spec.renewal.as_ref();
        let Some(due) = renewal.and_then(|r| r.next_attempt_at).filter(|due| *due <= now) else { continue };
        if spec.source != "acme" || renewal.and_then(|r| r.phase.as_deref()) == Some("revoking") {
            continue;
        }
        let Some(server) = servers.get(engine, &item.server_id).await else { continue };
        let payload = CertificateJob { server_id: server.id.clone(), certificate_id: item.id.clone() };
        // One job per certificate and due time: a renewal still queued or running (its job
        // moves the due time when it ends) is not queued twice, and a phase left behind by a
        // job that is gone does not stop renewals.
        let due_ms = u64::try_from(due.timestamp_millis()).unwrap_or(0);
        let id = slipway_core::id::id_at_for(due_ms, &format!("{}:{}", CERTIFICATE_ISSUE.name, item.id));
        let job = CERTIFICATE_ISSUE.about_server(&server, payload).with_id(id);
        // The job marks the certificate `renewing` when it starts.
        match slipway_jobs::enqueue(engine.store.as_ref(), job).await {
            Ok(_) => queued += 1,
            Err(slipway_store::StoreError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, certificate = %item.id, "could not queue the renewal; the next watch tries again")
            }
        }
    }
    queued
}

/// `certificate.revoke`: an ACME certificate is revoked at the ACME server that issued it, then
/// removed like a deleted one (the site falls back to plain HTTP if it served it). If the ACME
/// server refuses, nothing is removed and the certificate says why.
pub const CERTIFICATE_REVOKE: JobKind = JobKind { name: "certificate.revoke", attempts: 3 };

#[derive(Debug)]
pub struct RevokeCertificate(pub Engine);

#[async_trait]
impl JobHandler for RevokeCertificate {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let Ok(payload) = serde_json::from_str::<CertificateJob>(&job.payload) else { return };
        let reason = format!("{}; revoke it again", abandoned_reason(job));
        revoke_failed(&self.0, &payload.certificate_id, &reason).await;
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: CertificateJob = ctx.payload()?;
        let engine = &self.0;
        let server = load_server(engine, &job.server_id).await?;
        let (item, spec) = load_certificate(engine, &job.certificate_id).await?;
        let pem = spec
            .issued
            .as_ref()
            .map(|i| i.full_chain_pem.clone())
            .ok_or_else(|| JobError::failed("the certificate was never issued"))?;
        let der = slipway_tls::leaf_der(&pem).map_err(JobError::failed)?;
        let account = account(engine, &server.organization_id).await.map_err(JobError::failed)?;
        let certificate = rustls::pki_types::CertificateDer::from(der);
        let request = RevocationRequest { certificate: &certificate, reason: None };
        match account.revoke(&request).await {
            Ok(()) => {
                ctx.log("info", format!("==> the ACME server revoked the certificate for {}", spec.domains.join(", ")))
            }
            // Revoked by an earlier attempt whose answer was lost: done.
            Err(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:alreadyRevoked") =>
            {
                ctx.log("info", "==> the ACME server had revoked it already")
            }
            Err(e) => {
                let reason = format!("the ACME server did not revoke it: {e}");
                revoke_failed(engine, &item.id, &reason).await;
                return Err(JobError::failed(reason));
            }
        }
        engine
            .store
            .set_server_items_status(std::slice::from_ref(&item.id), InstallStatus::Removing, None)
            .await
            .map_err(store_error)?;
        super::connect_and_apply(engine, ctx, &server, &super::certificates::Certificates).await
    }
}

/// A revocation that did not happen: the certificate stays as it was, with the reason.
async fn revoke_failed(engine: &Engine, id: &str, reason: &str) {
    let Ok(Some(item)) = engine.store.server_item(id).await else { return };
    let Ok(mut spec) = serde_json::from_str::<CertificateSpec>(&item.spec) else { return };
    if let Some(renewal) = spec.renewal.as_mut() {
        renewal.phase = None;
    }
    if let Ok(text) = serde_json::to_string(&spec) {
        let _ = engine.store.set_server_item_spec(id, &text).await;
    }
    let _ = engine.store.set_server_items_status(&[id.to_string()], InstallStatus::Installed, Some(reason)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_thirty_days_before_expiry_or_at_a_third_of_a_short_life() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(renewal_due(start, start + chrono::Duration::days(90)), start + chrono::Duration::days(60));
        let short = renewal_due(start, start + chrono::Duration::seconds(300));
        assert_eq!(short, start + chrono::Duration::seconds(200));
    }

    #[test]
    fn retries_back_off_to_at_most_a_day() {
        assert_eq!(backoff(1), chrono::Duration::minutes(5));
        assert_eq!(backoff(2), chrono::Duration::minutes(10));
        assert_eq!(backoff(30), chrono::Duration::hours(24));
    }

    #[test]
    fn only_acme_alphabet_tokens_reach_the_server() {
        assert!(challenges_script(&[("abc-_1".into(), "abc.def".into())]).is_ok());
        for token in ["../x", "a b", "a;b", "", "a\nb"] {
            assert!(challenges_script(&[(token.into(), "x".into())]).is_err(), "{token:?}");
        }
        assert!(challenges_script(&[("a".into(), "x$(id)".into())]).is_err());
    }
}
