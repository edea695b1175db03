//! TLS certificates of sites. A site serves HTTPS with at most one certificate, its active one:
//! its files are `/etc/slipway/tls/<domain>/{fullchain,key}.pem` (root's; nginx's master process
//! reads them) and `/etc/nginx/slipway/tls/<domain>/tls.conf`, which the site's server block
//! includes, adds the `listen 443` and TLS settings (and the redirect to HTTPS, HSTS). Other
//! certificates of the site are kept by Slipway only.
//!
//! A sync writes every site's files from what is stored, checks the whole configuration with
//! `nginx -t` and puts the previous files back when it fails. Activating a certificate is the
//! same sync with the change made in memory: the change is stored only once nginx serves it, so
//! `active` never names a certificate that is not being served.

use slipway_core::InstallStatus;
use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::site_input::Domain;
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, specs};
use crate::script::Script;
use crate::session::{abandoned_reason, connect, load_server, reason_to_record, run_script_with, store_error};
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct Certificates;

/// Where a site's TLS settings live; its server block includes `*.conf` here.
pub fn tls_conf_dir(domain: &str) -> String {
    format!("/etc/nginx/slipway/tls/{domain}")
}

/// Where a site's active certificate and key are.
pub fn tls_files_dir(domain: &str) -> String {
    format!("/etc/slipway/tls/{domain}")
}

/// Where ACME HTTP-01 challenge answers are served from, for every site, ahead of anything the
/// site serves (`/.well-known/acme-challenge/<token>` is the file `<token>` here).
pub const ACME_WEBROOT: &str = "/var/lib/slipway/acme";

/// A certificate as stored. The private key is sealed with Slipway's secrets key (see
/// [`key_context`]) and opened only to be written to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSpec {
    pub site_id: String,
    /// The site's domain (it names the files; a site's domain does not change).
    pub domain: String,
    /// `custom` (uploaded) or `acme`.
    pub source: String,
    /// The names it was asked to cover.
    pub domains: Vec<String>,
    /// Served by nginx for the site now.
    pub active: bool,
    /// While active: plain HTTP answers with a redirect to HTTPS (ACME challenges excepted).
    pub https_redirect: bool,
    /// While active: `Strict-Transport-Security` is sent.
    pub hsts: bool,
    /// The certificate itself; `None` while an ACME certificate is first being issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<Issued>,
    /// For ACME certificates: when the next issuance or renewal is due and why the last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal: Option<Renewal>,
    /// What the server was last seen serving for the site's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
}

/// A certificate Slipway holds: what it says, the PEM chain, and its key sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the leaf, `AB:CD:…`.
    pub fingerprint: String,
    /// The leaf then its chain, PEM.
    pub full_chain_pem: String,
    /// The private key sealed with [`key_context`], base64.
    pub sealed_key: String,
}

impl Issued {
    /// `info` and `full_chain_pem` as checked, with `private_key_pem` sealed for site `site_id`.
    pub fn seal(
        secrets: &slipway_core::secrets_key::SecretsKey,
        site_id: &str,
        info: slipway_tls::CertificateInfo,
        full_chain_pem: String,
        private_key_pem: &str,
    ) -> Issued {
        let sealed = secrets.seal(&key_context(site_id, &info.fingerprint), private_key_pem.as_bytes());
        Issued {
            subject: info.subject,
            issuer: info.issuer,
            not_before: info.not_before,
            not_after: info.not_after,
            fingerprint: info.fingerprint,
            full_chain_pem,
            sealed_key: STANDARD.encode(sealed),
        }
    }
}

/// An ACME certificate's issuance and renewal schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    /// `issuing` (first issuance), `renewing`, or `None` between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Failed attempts in a row (for the backoff).
    #[serde(default)]
    pub failures: u32,
}

/// The certificate a TLS connection to the server with the site's name was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub fingerprint: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
    /// It is the certificate Slipway has as active.
    pub matches: bool,
    pub checked_at: DateTime<Utc>,
    /// Why nothing could be read (connection refused, handshake failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The associated data a certificate's key is sealed with: a key copied next to another
/// certificate does not open.
pub fn key_context(site_id: &str, fingerprint: &str) -> String {
    format!("certificate-key:{site_id}:{fingerprint}")
}

/// The site's server block includes this: HTTPS on 443 with the site's certificate, TLS 1.2 and
/// 1.3 with forward-secret AEAD ciphers only, and the redirect and HSTS when asked for.
pub fn tls_conf(domain: &Domain, id: &str, https_redirect: bool, hsts: bool) -> Result<String, String> {
    check_id("certificate", id)?;
    let files = tls_files_dir(domain.as_str());
    let mut out = format!(
        "# Managed by Slipway: HTTPS for {domain} with certificate {id}.\n\
         listen 443 ssl http2;\nlisten [::]:443 ssl http2;\n\
         ssl_certificate {files}/fullchain.pem;\nssl_certificate_key {files}/key.pem;\n\
         ssl_protocols TLSv1.2 TLSv1.3;\n\
         ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
         ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;\n\
         ssl_prefer_server_ciphers off;\nssl_session_cache shared:SlipwayTLS:10m;\nssl_session_timeout 1d;\n\
         ssl_session_tickets off;\n",
        domain = domain.as_str(),
    );
    if hsts {
        out.push_str("add_header Strict-Transport-Security \"max-age=31536000\" always;\n");
    }
    if https_redirect {
        // At server level, before any location: everything but ACME challenges goes to HTTPS.
        out.push_str(
            "set $slipway_scheme $scheme;\nif ($uri ~ \"^/\\.well-known/acme-challenge/\") { set $slipway_scheme https; }\n\
             if ($slipway_scheme = http) { return 301 https://$host$request_uri; }\n",
        );
    }
    Ok(out)
}

/// Each site's active certificate among `items` (as stored, or as an activation will leave them).
fn active_by_site(items: &[(String, CertificateSpec)]) -> BTreeMap<String, (&String, &CertificateSpec)> {
    items.iter().filter(|(_, s)| s.active).map(|(id, s)| (s.domain.clone(), (id, s))).collect()
}

/// The sync script for certificates `items` (each with its id and status-independent spec).
fn script(engine: &Engine, items: &[(String, CertificateSpec)]) -> Result<Script, String> {
    let mut table = String::new();
    for (domain, (id, spec)) in active_by_site(items) {
        let domain = Domain::parse(&domain).map_err(|e| format!("invalid domain: {e}"))?;
        let issued = spec.issued.as_ref().ok_or_else(|| format!("certificate {id} is active but not issued"))?;
        let sealed = STANDARD.decode(&issued.sealed_key).map_err(|e| format!("certificate {id}: {e}"))?;
        let key = engine
            .secrets
            .open(&key_context(&spec.site_id, &issued.fingerprint), &sealed)
            .map_err(|e| format!("certificate {id}: its key: {e}"))?;
        let conf = tls_conf(&domain, id, spec.https_redirect, spec.hsts)?;
        table.push_str(&format!(
            "{} {id} {} {} {}\n",
            domain.as_str(),
            STANDARD.encode(issued.full_chain_pem.as_bytes()),
            STANDARD.encode(&key),
            STANDARD.encode(conf.as_bytes()),
        ));
    }
    Ok(Script::new("certificates", include_str!("../../scripts/certificates.sh"))
        .var("SITES", &table)
        .var("ACME_WEBROOT", ACME_WEBROOT))
}

impl ItemKind for Certificates {
    fn name(&self) -> &'static str {
        "certificate"
    }

    fn progress(&self) -> &'static str {
        "==> installing TLS certificates"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-certificates", attempts: 3 }
    }

    fn sync_script(&self, engine: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        script(engine, &specs::<CertificateSpec>(items)?)
    }
}

/// `certificate.activate`: serves a certificate for its site (and makes it the site's active one)
/// once nginx has accepted it; otherwise the certificate shows `failed` with nginx's reason and
/// the site keeps what it served.
pub const CERTIFICATE_ACTIVATE: JobKind = JobKind { name: "certificate.activate", attempts: 3 };

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivateJob {
    pub server_id: String,
    pub certificate_id: String,
    pub https_redirect: bool,
    pub hsts: bool,
}

#[derive(Debug)]
pub struct ActivateCertificate(pub Engine);

#[async_trait]
impl JobHandler for ActivateCertificate {
    async fn abandoned(&self, job: &slipway_store::Job) {
        let Ok(payload) = serde_json::from_str::<ActivateJob>(&job.payload) else { return };
        let reason = format!("{}; activate it again", abandoned_reason(job));
        let _ =
            self.0.store.set_server_items_status(&[payload.certificate_id], InstallStatus::Failed, Some(&reason)).await;
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ActivateJob = ctx.payload()?;
        let server = load_server(&self.0, &job.server_id).await?;
        serve(&self.0, ctx, &server, &job, None).await
    }
}

/// Serves certificate `job.certificate_id` for its site, and records it as the site's active one
/// once nginx has taken it (see [`CERTIFICATE_ACTIVATE`]); then checks what is served.
///
/// With `renewed`, the certificate is served as that spec (a renewal's new certificate), which
/// is stored only once nginx serves it; if that fails the stored certificate, still the one
/// served, is left as it was and the caller records the failure. Without it, a failure marks the
/// certificate `failed`.
pub async fn serve(
    engine: &Engine,
    ctx: &JobContext,
    server: &Server,
    job: &ActivateJob,
    renewed: Option<CertificateSpec>,
) -> Result<(), JobError> {
    let (items, _) = engine.store.server_items(&server.id, Certificates.name(), None).await.map_err(store_error)?;
    let kept: Vec<&ServerItem> = items.iter().filter(|i| i.status != InstallStatus::Removing).collect();
    let mut all = specs::<CertificateSpec>(&kept).map_err(JobError::failed)?;
    let Some(site_id) = all.iter().find(|(id, _)| *id == job.certificate_id).map(|(_, s)| s.site_id.clone()) else {
        return Err(JobError::failed("the certificate was deleted"));
    };
    let renewal = renewed.is_some();
    let mut changed = Vec::new();
    if let Some(new) = renewed
        && let Some((id, spec)) = all.iter_mut().find(|(id, _)| *id == job.certificate_id)
    {
        *spec = new;
        changed.push(id.clone());
    }
    if all.iter().any(|(id, s)| *id == job.certificate_id && s.issued.is_none()) {
        return Err(JobError::failed("the certificate has not been issued yet"));
    }
    for (id, spec) in all.iter_mut().filter(|(_, s)| s.site_id == site_id) {
        let before = spec.clone();
        spec.active = *id == job.certificate_id;
        if spec.active {
            spec.https_redirect = job.https_redirect;
            spec.hsts = job.hsts;
        }
        if *spec != before && !changed.contains(id) {
            changed.push(id.clone());
        }
    }
    let outcome = match script(engine, &all) {
        Ok(script) => {
            // An unreachable server is recorded like a failed script (below).
            let reported = match connect(engine, ctx, server).await {
                Ok(connection) => run_script_with(engine, ctx, &connection, &script, ctx.cancel_receiver()).await,
                Err(e) => Err(e),
            };
            // The script leaves out a site it cannot serve HTTPS for, and says why.
            reported.and_then(|lines| {
                let prefix = format!("slipway-item-failed {} ", job.certificate_id);
                match lines.iter().find_map(|l| l.strip_prefix(&prefix)) {
                    Some(why) => Err(JobError::failed(why)),
                    None => Ok(()),
                }
            })
        }
        Err(e) => Err(JobError::failed(e)),
    };
    let id = std::slice::from_ref(&job.certificate_id);
    match &outcome {
        Ok(()) => {
            for (cert_id, spec) in all.iter().filter(|(cert_id, _)| changed.contains(cert_id)) {
                let text = serde_json::to_string(spec).map_err(|e| JobError::failed(e.to_string()))?;
                engine.store.set_server_item_spec(cert_id, &text).await.map_err(store_error)?;
            }
            engine.store.set_server_items_status(id, InstallStatus::Installed, None).await.map_err(store_error)?;
            ctx.log("info", format!("==> certificate {} is served for its site", job.certificate_id));
            if let Some((_, spec)) = all.into_iter().find(|(cert_id, _)| *cert_id == job.certificate_id) {
                let served = record_served(engine, server, &job.certificate_id, spec).await;
                match served.error {
                    None if served.matches => ctx.log("info", "==> checked: the server serves it over HTTPS"),
                    None => ctx.log("stderr", "the server serves another certificate for the site's name"),
                    Some(e) => ctx.log("stderr", format!("could not check what the server serves: {e}")),
                }
            }
        }
        Err(_) if renewal => {}
        // Not when it runs again (after a shutdown) or another worker owns its end.
        Err(e) => {
            if let Some(reason) = reason_to_record(ctx, e) {
                engine
                    .store
                    .set_server_items_status(id, InstallStatus::Failed, Some(&reason))
                    .await
                    .map_err(store_error)?;
            }
        }
    }
    outcome
}

/// What the server serves for `domain` on port 443 now, compared with the certificate whose
/// fingerprint is `expected`.
pub async fn served(address: &str, domain: &str, expected: &str) -> Served {
    let (address, name) = (address.to_string(), domain.to_string());
    let read = tokio::task::spawn_blocking(move || {
        let leaf = crate::tls_probe::served_leaf(&address, 443, &name, std::time::Duration::from_secs(10))?;
        slipway_tls::describe_der(&leaf)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the check stopped: {e}")));
    let checked_at = slipway_core::time::now();
    match read {
        Ok(info) => Served {
            matches: info.fingerprint == expected,
            fingerprint: Some(info.fingerprint),
            not_after: Some(info.not_after),
            checked_at,
            error: None,
        },
        Err(e) => Served { fingerprint: None, not_after: None, matches: false, checked_at, error: Some(e) },
    }
}

/// Checks what the server serves for certificate `id`'s site and records it on the certificate.
/// Only the finding is written, onto the certificate as it is then: a renewal stored while the
/// probe ran is kept (and the finding, about the certificate before it, is dropped).
pub async fn record_served(engine: &Engine, server: &Server, id: &str, spec: CertificateSpec) -> Served {
    let expected = spec.issued.as_ref().map(|i| i.fingerprint.clone()).unwrap_or_default();
    let found = served(&server.ip_address, &spec.domain, &expected).await;
    if let Ok(Some(item)) = engine.store.server_item(id).await
        && let Ok(mut now) = serde_json::from_str::<CertificateSpec>(&item.spec)
        && now.issued.as_ref().map(|i| i.fingerprint.as_str()) == Some(expected.as_str())
    {
        now.served = Some(found.clone());
        if let Ok(text) = serde_json::to_string(&now) {
            let _ = engine.store.replace_server_item_spec(id, &item.spec, &text).await;
        }
    }
    found
}

/// `certificates.watch`: once a day (by default), every active certificate is checked as a
/// browser sees it (what the server serves for the site's name, and when it expires), the finding
/// is recorded on the certificate, and due ACME renewals are queued. A durable job, not a cron
/// entry on some machine: each run schedules the next first, and every start of Slipway makes
/// sure the current one exists.
pub const WATCH_JOB: &str = "certificates.watch";
const WATCH_LOCK: &str = "certificates-watch";

/// How often the watch runs unless configured otherwise.
pub const DEFAULT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Enqueues the watch run of the slot of length `every` that contains `at` (due at the start of
/// that slot, so a Slipway that was down runs it at once); false when it exists already.
pub async fn schedule_watch(
    store: &dyn slipway_store::Store,
    at: DateTime<Utc>,
    every: std::time::Duration,
) -> Result<bool, slipway_store::StoreError> {
    slipway_jobs::schedule_slot(store, WATCH_JOB, WATCH_LOCK, at, every).await
}

/// Servers read once per run of the watch, however many certificates each holds.
#[derive(Debug, Default)]
pub struct ServersSeen(std::collections::HashMap<String, Option<Server>>);

impl ServersSeen {
    /// Server `id`, read from the store the first time it is asked for; `None` if it is gone
    /// or cannot be read.
    pub async fn get(&mut self, engine: &Engine, id: &str) -> Option<Server> {
        if let Some(known) = self.0.get(id) {
            return known.clone();
        }
        let server = engine.store.server(id).await.ok().flatten();
        self.0.insert(id.to_string(), server.clone());
        server
    }
}

/// Certificates expiring within this many days are reported by the watch.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

#[derive(Debug)]
pub struct WatchCertificates(pub Engine);

#[async_trait]
impl JobHandler for WatchCertificates {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let engine = &self.0;
        let retryable = |e: slipway_store::StoreError| JobError::Retryable { reason: format!("database error: {e}") };
        // The next run first: a run that fails still leaves one scheduled.
        let now = slipway_core::time::now();
        let every = engine.certificate_check_interval;
        let next = now + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::days(1));
        schedule_watch(engine.store.as_ref(), next, every).await.map_err(retryable)?;
        let (mut after, mut checked, mut servers) = (None::<String>, 0, ServersSeen::default());
        loop {
            let batch =
                engine.store.items_of_kind(Certificates.name(), after.as_deref(), 200).await.map_err(retryable)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            let renewing = super::acme::queue_due_renewals(engine, &batch, &mut servers).await;
            if renewing > 0 {
                ctx.log("info", format!("==> {renewing} ACME certificate(s) due: issuance queued"));
            }
            for item in batch.iter().filter(|i| i.status == InstallStatus::Installed) {
                if ctx.is_cancelled() {
                    return Err(JobError::Cancelled);
                }
                let Ok(spec) = serde_json::from_str::<CertificateSpec>(&item.spec) else { continue };
                if !spec.active {
                    continue;
                }
                let Some(server) = servers.get(engine, &item.server_id).await else { continue };
                let served = record_served(engine, &server, &item.id, spec.clone()).await;
                checked += 1;
                let Some(not_after) = spec.issued.as_ref().map(|i| i.not_after) else { continue };
                let days_left = (not_after - slipway_core::time::now()).num_days();
                match (&served.error, served.matches) {
                    (Some(e), _) => ctx.log("stderr", format!("{}: could not read what is served: {e}", spec.domain)),
                    (None, false) => {
                        ctx.log("stderr", format!("{}: the server serves another certificate", spec.domain))
                    }
                    (None, true) if days_left < EXPIRY_WARNING_DAYS => {
                        ctx.log("stderr", format!("{}: the certificate expires in {days_left} days", spec.domain));
                        let subject = crate::notify::Subject {
                            resource_type: "certificate",
                            id: item.id.clone(),
                            name: spec.domain.clone(),
                            path: Some(format!(
                                "/api/v1/servers/{}/sites/{}/certificates/{}",
                                item.server_id, spec.site_id, item.id
                            )),
                            server_id: Some(item.server_id.clone()),
                            site_id: Some(spec.site_id.clone()),
                        };
                        let summary = format!("The certificate for {} expires in {days_left} days", spec.domain);
                        let data = serde_json::json!({ "not_after": not_after, "days_left": days_left });
                        let event = crate::notify::EventSpec::new(
                            "certificate.expiring",
                            &server.organization_id,
                            subject,
                            summary,
                        );
                        crate::notify::emit(engine, event.data(data)).await;
                    }
                    (None, true) => {}
                }
            }
        }
        ctx.log("info", format!("==> checked {checked} active certificate(s)"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_watch_is_scheduled_once_a_slot_whoever_asks() {
        let db = slipway_store::testing::TestDatabase::sqlite().await;
        let store = db.store().await;
        let day = DEFAULT_CHECK_INTERVAL;
        let at = DateTime::parse_from_rfc3339("2026-12-03T13:45:00Z").unwrap().with_timezone(&Utc);
        assert!(schedule_watch(store.as_ref(), at, day).await.unwrap(), "today's run is new");
        let later = at + chrono::Duration::hours(5);
        assert!(!schedule_watch(store.as_ref(), later, day).await.unwrap(), "a second start finds it");
        assert!(
            schedule_watch(store.as_ref(), at + chrono::Duration::days(1), day).await.unwrap(),
            "tomorrow's is new"
        );
        // Due at the start of its day, so a Slipway that was down runs it at once.
        let slot = u64::try_from(at.timestamp_millis()).unwrap() / 86_400_000 * 86_400_000;
        let job = store.job(&slipway_core::id::id_at_for(slot, WATCH_JOB)).await.unwrap().unwrap();
        assert_eq!((job.kind.as_str(), job.run_at.to_rfc3339()), (WATCH_JOB, "2026-12-03T00:00:00+00:00".into()));
        // A shorter interval: slots of that length.
        let minute = std::time::Duration::from_secs(60);
        assert!(schedule_watch(store.as_ref(), at + chrono::Duration::seconds(30), minute).await.unwrap());
        assert!(!schedule_watch(store.as_ref(), at + chrono::Duration::seconds(59), minute).await.unwrap());
        assert!(schedule_watch(store.as_ref(), at + chrono::Duration::seconds(61), minute).await.unwrap());
    }

    #[test]
    fn the_tls_block_holds_only_slipways_text_and_asks_for_what_was_chosen() {
        let domain = Domain::parse("shop.example.com").unwrap();
        let plain = tls_conf(&domain, "01ABC", false, false).unwrap();
        assert!(plain.contains("listen 443 ssl http2;") && plain.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        assert!(plain.contains("ssl_certificate /etc/slipway/tls/shop.example.com/fullchain.pem;"));
        assert!(!plain.contains("Strict-Transport-Security") && !plain.contains("return 301"));
        let all = tls_conf(&domain, "01ABC", true, true).unwrap();
        assert!(all.contains("max-age=31536000") && all.contains("return 301 https://$host$request_uri;"));
        assert!(tls_conf(&domain, "01ABC;\n", true, true).is_err());
    }
}
