//! A site's TLS certificates: uploaded (`custom`) certificates, checked before anything reaches
//! the server, and the one the site serves (`active`). A certificate is served by an operation
//! that nginx checks first; only once it serves does it become the site's active one.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::FieldErrors;
use slipway_core::InstallStatus;
use slipway_core::secrets_key::SecretsKey;
use slipway_core::site_input::Domain;
use slipway_engine::items::acme::{CERTIFICATE_ISSUE, CERTIFICATE_REVOKE, CertificateJob};
use slipway_engine::items::certificates::{ActivateJob, CERTIFICATE_ACTIVATE, Issued, Renewal, Served};
use slipway_engine::items::{CertificateSpec, Certificates, ItemKind};
use slipway_store::{Server, ServerItem, Site};
use utoipa::ToSchema;

use super::{ItemRoutes, MAX_ITEMS, OnItem, OnSiteItem};
use crate::audit::AuditSlot;
use crate::auth::Authorized;
use crate::envelope::{Accepted, Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::jobs::enqueue;
use crate::routes::sites::VisibleSite;
use crate::state::AppState;

/// What a TLS connection to the server with the site's name was last given.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServedCertificate {
    /// SHA-256 of the certificate served, `AB:CD:…`; null when none could be read.
    pub fingerprint: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub not_after: Option<DateTime<Utc>>,
    /// It is this certificate.
    pub matches: bool,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub checked_at: DateTime<Utc>,
    /// Why nothing could be read.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenewalState {
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateResource {
    pub id: String,
    pub server_id: String,
    pub site_id: String,
    /// `custom` (uploaded) or `acme`.
    #[serde(rename = "type")]
    #[schema(example = "custom")]
    pub source: String,
    /// The names it covers as asked for.
    pub domains: Vec<String>,
    /// `pending` (being put in place), `issuing` (ACME, first issuance), `renewing` (ACME; the
    /// current certificate stays served meanwhile), `active` (the site serves it), `inactive`
    /// (kept, not served), `failed` (with the reason; the site serves what it served before),
    /// `revoking` (ACME; revoked at the ACME server, then removed) or `removing`.
    pub status: String,
    pub status_reason: Option<String>,
    /// The site serves it.
    pub active: bool,
    /// While active, plain HTTP is redirected to HTTPS (ACME challenges excepted).
    pub https_redirect: bool,
    /// While active, `Strict-Transport-Security` is sent.
    pub hsts: bool,
    /// What the certificate says; null while an ACME certificate is first being issued.
    #[schema(example = "CN=shop.example.com")]
    pub subject: Option<String>,
    #[schema(example = "CN=Example CA")]
    pub issuer: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub not_after: Option<DateTime<Utc>>,
    /// SHA-256 of the certificate, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: Option<String>,
    /// ACME certificates: when the next issuance attempt is due and why the last one failed
    /// (the certificate being served is never touched by a failed renewal); null for uploaded ones.
    pub renewal: Option<RenewalState>,
    /// What the server was last seen serving for the site; null until checked.
    pub served: Option<ServedCertificate>,
    pub operation_id: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCertificate {
    /// `custom` (an uploaded certificate with its key) or `acme` (issued through the ACME
    /// server Slipway is configured with, HTTP-01; served once issued, renewed by Slipway).
    #[serde(rename = "type")]
    #[schema(example = "custom")]
    pub source: String,
    /// Names it must cover; default the site's domain and aliases.
    pub domains: Option<Vec<String>>,
    /// The certificate, PEM (one `CERTIFICATE` block).
    #[schema(max_length = 65536)]
    pub certificate: Option<String>,
    /// The intermediate certificates, PEM, issuer of the certificate first.
    #[schema(max_length = 65536)]
    pub chain: Option<String>,
    /// Its private key, PEM, without a passphrase. Stored encrypted and never returned.
    #[schema(max_length = 65536)]
    pub private_key: Option<String>,
    /// Serve it at once (default true).
    pub activate: Option<bool>,
    /// When active, redirect plain HTTP to HTTPS (default true).
    pub https_redirect: Option<bool>,
    /// When active, send `Strict-Transport-Security` (default false).
    pub hsts: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateCertificate {
    /// Redirect plain HTTP to HTTPS (default true).
    pub https_redirect: Option<bool>,
    /// Send `Strict-Transport-Security` (default false).
    pub hsts: Option<bool>,
}

#[derive(Debug)]
pub struct CertificateRoutes;

impl ItemRoutes for CertificateRoutes {
    const KIND: &'static dyn ItemKind = &Certificates;
    const PARAM: &'static str = "certificate";
    const AUDIT: &'static str = "certificate";
    const REMOVING: &'static str = "Removing the certificate.";
    type Spec = CertificateSpec;
    type Create = CreateCertificate;
    type Resource = CertificateResource;

    /// Deleting the certificate the site serves returns the site to plain HTTP: said so.
    fn removing_message(spec: &CertificateSpec) -> String {
        if spec.active {
            "Removing the certificate. It was the site's active certificate: the site now serves plain HTTP only, \
             until another certificate is activated."
                .into()
        } else {
            Self::REMOVING.into()
        }
    }

    fn resource(item: &ServerItem, spec: CertificateSpec, operation_id: Option<String>) -> CertificateResource {
        let phase = spec.renewal.as_ref().and_then(|r| r.phase.as_deref());
        let status = match (item.status, spec.active, spec.issued.is_some(), phase) {
            _ if item.state.is_some() => item.shown_status(),
            (InstallStatus::Installing, _, false, _) => "issuing",
            (InstallStatus::Installing, _, true, _) => "pending",
            (InstallStatus::Installed, _, _, Some(phase @ ("renewing" | "revoking"))) => phase,
            (InstallStatus::Installed, true, _, _) => "active",
            (InstallStatus::Installed, false, _, _) => "inactive",
            (other, _, _, _) => other.as_str(),
        };
        let issued = spec.issued;
        let served = spec.served.map(|s: Served| ServedCertificate {
            fingerprint: s.fingerprint,
            not_after: s.not_after,
            matches: s.matches,
            checked_at: s.checked_at,
            error: s.error,
        });
        CertificateResource {
            id: item.id.clone(),
            server_id: item.server_id.clone(),
            site_id: spec.site_id,
            source: spec.source,
            domains: spec.domains,
            status: status.into(),
            status_reason: item.status_reason.clone(),
            active: spec.active,
            https_redirect: spec.https_redirect,
            hsts: spec.hsts,
            subject: issued.as_ref().map(|i| i.subject.clone()),
            issuer: issued.as_ref().map(|i| i.issuer.clone()),
            not_before: issued.as_ref().map(|i| i.not_before),
            not_after: issued.as_ref().map(|i| i.not_after),
            fingerprint: issued.map(|i| i.fingerprint),
            renewal: spec
                .renewal
                .map(|r| RenewalState { next_attempt_at: r.next_attempt_at, last_error: r.last_error }),
            served,
            operation_id,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// The names a certificate of `site` must cover: those asked for (each a domain name, a wildcard
/// allowed), or the site's domain and aliases.
fn wanted_domains(site: &Site, asked: Option<Vec<String>>, errors: &mut FieldErrors) -> Vec<String> {
    let asked = match asked {
        Some(list) => list,
        None => {
            let aliases: Vec<String> = serde_json::from_str(&site.aliases).unwrap_or_default();
            std::iter::once(site.domain.clone()).chain(aliases).collect()
        }
    };
    if asked.is_empty() || asked.len() > 100 {
        errors.add("domains", "Give between 1 and 100 names.");
        return Vec::new();
    }
    let mut names = Vec::new();
    for name in &asked {
        match Domain::parse_alias(name) {
            // A name is compared as given, so it must already be in its plain form.
            Ok(d) if d.as_str() == name => {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            _ => errors.add("domains", format!("{name:?} is not a domain name such as example.com or *.example.com.")),
        }
    }
    names
}

/// A certificate and key checked for `site`, its key sealed with `secrets`, or every problem found.
fn custom_spec(site: &Site, body: CreateCertificate, secrets: &SecretsKey) -> Result<CertificateSpec, ApiError> {
    let mut errors = FieldErrors::new();
    if body.source != "custom" {
        errors.add("type", "The type must be custom or acme.");
    }
    let domains = wanted_domains(site, body.domains, &mut errors);
    let certificate = body.certificate.unwrap_or_default();
    let private_key = body.private_key.unwrap_or_default();
    if certificate.trim().is_empty() {
        errors.add("certificate", "Give the certificate, PEM.");
    }
    if private_key.trim().is_empty() {
        errors.add("private_key", "Give the certificate's private key, PEM.");
    }
    errors.into_result()?;
    let checked = slipway_tls::check_upload(
        &certificate,
        body.chain.as_deref().unwrap_or(""),
        &private_key,
        &domains,
        slipway_core::time::now(),
    )
    .map_err(|problems| {
        let mut errors = FieldErrors::new();
        for (field, why) in problems {
            errors.add(field, why);
        }
        errors.into_result().expect_err("a refused upload names its problems")
    })?;
    Ok(CertificateSpec {
        site_id: site.id.clone(),
        domain: site.domain.clone(),
        source: "custom".into(),
        domains,
        active: false,
        https_redirect: body.https_redirect.unwrap_or(true),
        hsts: body.hsts.unwrap_or(false),
        issued: Some(Issued::seal(secrets, &site.id, checked.info, checked.full_chain_pem, &checked.private_key_pem)),
        renewal: None,
        served: None,
    })
}

/// Queues the operation that serves `item` for its site.
async fn activate(
    state: &AppState,
    server: &Server,
    item: &ServerItem,
    options: ActivateCertificate,
) -> Result<Option<String>, ApiError> {
    if server.provisioned_at.is_none() {
        return Err(ApiError::Conflict("The server is not provisioned yet; provision it first.".into()));
    }
    let payload = ActivateJob {
        server_id: server.id.clone(),
        certificate_id: item.id.clone(),
        https_redirect: options.https_redirect.unwrap_or(true),
        hsts: options.hsts.unwrap_or(false),
    };
    let job = enqueue(state, CERTIFICATE_ACTIVATE.about_server(server, payload)).await?;
    Ok(Some(job.id))
}

/// Issue a certificate for the site with ACME (`type: acme`; 201 with it `issuing`, follow
/// `operation_id`; a failure shows `failed` with the ACME server's reason), or upload one
/// (`type: custom`). An upload is checked first: it parses, the key
/// matches, it is valid now, the chain links it to its issuer, and it covers `domains`; each
/// problem is a 422 on its field. The key is stored encrypted and never returned. With
/// `activate` (the default) the site serves it over HTTPS once nginx accepts it: 201 with the
/// certificate `pending`; follow `operation_id`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/certificates", tag = "certificates",
    params(("server" = String, Path), ("site" = String, Path)),
    request_body = CreateCertificate,
    security(("token" = ["certificate:create"])),
    responses((status = 201, body = Data<CertificateResource>))
)]
pub async fn create_certificate(
    State(state): State<AppState>,
    v: VisibleSite,
    audit: AuditSlot,
    Json(body): Json<CreateCertificate>,
) -> Result<(StatusCode, Data<CertificateResource>), ApiError> {
    let (_, count) = state.store.server_items(&v.server.id, Certificates.name(), None).await?;
    if count >= MAX_ITEMS {
        return Err(ApiError::validation("type", format!("A server can have at most {MAX_ITEMS} certificates.")));
    }
    if body.source == "acme" {
        return create_acme(&state, &v, &audit, body).await;
    }
    let activate_now = body.activate.unwrap_or(true);
    let options = ActivateCertificate { https_redirect: body.https_redirect, hsts: body.hsts };
    let spec = custom_spec(&v.site, body, &state.engine.secrets)?;
    let name = spec.domains.first().cloned().unwrap_or_default();
    let status = if activate_now { InstallStatus::Installing } else { InstallStatus::Installed };
    let item = super::new_item::<CertificateRoutes>(&v.server, &name, &spec, status)?;
    if activate_now && v.server.provisioned_at.is_none() {
        return Err(ApiError::Conflict(
            "The server is not provisioned yet; provision it first, or upload with activate false.".into(),
        ));
    }
    state.store.insert_server_item(&item).await?;
    let operation = if activate_now { activate(&state, &v.server, &item, options).await? } else { None };
    super::audit_item(&audit, &v.server, "certificate.create".into(), &item);
    Ok((StatusCode::CREATED, Data { data: CertificateRoutes::resource(&item, spec, operation) }))
}

/// An ACME certificate for the site's names: checked, stored `issuing`, and the operation that
/// orders, validates (HTTP-01 through the site's own server block) and serves it queued.
async fn create_acme(
    state: &AppState,
    v: &crate::routes::sites::OnSite,
    audit: &AuditSlot,
    body: CreateCertificate,
) -> Result<(StatusCode, Data<CertificateResource>), ApiError> {
    let mut errors = FieldErrors::new();
    let domains = wanted_domains(&v.site, body.domains, &mut errors);
    let aliases: Vec<String> = serde_json::from_str(&v.site.aliases).unwrap_or_default();
    for name in &domains {
        if name.starts_with("*.") {
            errors.add(
                "domains",
                format!("{name}: wildcard names need DNS validation, which Slipway does not do; list the names."),
            );
        } else if *name != v.site.domain && !aliases.contains(name) {
            errors.add("domains", format!("{name} is not the site's domain or one of its aliases, so its ACME challenge would not reach this site."));
        }
    }
    for (field, given) in
        [("certificate", &body.certificate), ("chain", &body.chain), ("private_key", &body.private_key)]
    {
        if given.is_some() {
            errors.add(field, "Only for type custom: an ACME certificate is issued with a key of its own.");
        }
    }
    if body.activate == Some(false) {
        errors.add("activate", "An ACME certificate is served as soon as it is issued.");
    }
    errors.into_result()?;
    if v.server.provisioned_at.is_none() {
        return Err(ApiError::Conflict("The server is not provisioned yet; provision it first.".into()));
    }
    let spec = CertificateSpec {
        site_id: v.site.id.clone(),
        domain: v.site.domain.clone(),
        source: "acme".into(),
        domains,
        active: false,
        https_redirect: body.https_redirect.unwrap_or(true),
        hsts: body.hsts.unwrap_or(false),
        issued: None,
        renewal: Some(Renewal { phase: Some("issuing".into()), ..Renewal::default() }),
        served: None,
    };
    let name = spec.domains.first().cloned().unwrap_or_default();
    let item = super::new_item::<CertificateRoutes>(&v.server, &name, &spec, InstallStatus::Installing)?;
    state.store.insert_server_item(&item).await?;
    let payload = CertificateJob { server_id: v.server.id.clone(), certificate_id: item.id.clone() };
    let job = enqueue(state, CERTIFICATE_ISSUE.about_server(&v.server, payload)).await?;
    super::audit_item(audit, &v.server, "certificate.create".into(), &item);
    Ok((StatusCode::CREATED, Data { data: CertificateRoutes::resource(&item, spec, Some(job.id)) }))
}

/// Serve this certificate for its site (it replaces the active one once nginx accepts it; if
/// nginx refuses, it shows `failed` and the site serves what it served before). 202 with the
/// certificate; follow `operation_id`.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/certificates/{certificate}/activate", tag = "certificates",
    params(("server" = String, Path), ("site" = String, Path), ("certificate" = String, Path)),
    request_body = ActivateCertificate,
    security(("token" = ["certificate:update"])),
    responses((status = 202, body = Accepted<CertificateResource>))
)]
pub async fn activate_certificate(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<CertificateRoutes>>,
    audit: AuditSlot,
    Json(options): Json<ActivateCertificate>,
) -> Result<Accepted<CertificateResource>, ApiError> {
    let v = v.target;
    if v.item.status == InstallStatus::Removing {
        return Err(ApiError::Conflict("The certificate is being removed.".into()));
    }
    let spec: CertificateSpec = super::spec(&v.item)?;
    match spec.issued.as_ref().map(|i| i.not_after) {
        None => return Err(ApiError::Conflict("The certificate has not been issued yet.".into())),
        Some(not_after) if not_after < slipway_core::time::now() => {
            return Err(ApiError::validation("certificate", "The certificate has expired; upload or issue a new one."));
        }
        Some(_) => {}
    }
    let operation = activate(&state, &v.server, &v.item, options).await?;
    state.store.set_server_items_status(std::slice::from_ref(&v.item.id), InstallStatus::Installing, None).await?;
    let mut item = v.item.clone();
    item.status = InstallStatus::Installing;
    super::audit_item(&audit, &v.server, "certificate.activate".into(), &item);
    Ok(Accepted {
        message: "Serving the certificate.".into(),
        data: CertificateRoutes::resource(&item, spec, operation),
    })
}

/// Revoke an ACME certificate at the ACME server that issued it, then remove it (revoke a
/// certificate whose key may have leaked). 202 with the certificate `revoking`; follow
/// `operation_id`. If the ACME server refuses, nothing is removed and `status_reason` says why.
/// If the site served it, it falls back to plain HTTP and the message says so. Uploaded
/// certificates are revoked by the CA that issued them, not here.
#[utoipa::path(
    post, path = "/api/v1/servers/{server}/sites/{site}/certificates/{certificate}/revoke", tag = "certificates",
    params(("server" = String, Path), ("site" = String, Path), ("certificate" = String, Path)),
    security(("token" = ["certificate:delete"])),
    responses((status = 202, body = Accepted<CertificateResource>))
)]
pub async fn revoke_certificate(
    State(state): State<AppState>,
    v: Authorized<OnSiteItem<CertificateRoutes>>,
    audit: AuditSlot,
) -> Result<Accepted<CertificateResource>, ApiError> {
    let v = v.target;
    let mut spec: CertificateSpec = super::spec(&v.item)?;
    if spec.source != "acme" {
        return Err(ApiError::validation(
            "type",
            "Only ACME certificates are revoked through Slipway; ask the CA that issued this one, then delete it.",
        ));
    }
    if spec.issued.is_none() {
        return Err(ApiError::Conflict("The certificate has not been issued yet; delete it instead.".into()));
    }
    let busy = spec.renewal.as_ref().and_then(|r| r.phase.clone());
    if v.item.status != InstallStatus::Installed || busy.is_some() {
        let doing = busy.unwrap_or_else(|| v.item.status.to_string());
        return Err(ApiError::Conflict(format!("The certificate is busy ({doing}); try again once that is done.")));
    }
    if v.server.provisioned_at.is_none() {
        return Err(ApiError::Conflict("The server is not provisioned yet; provision it first.".into()));
    }
    // Marked before the job is queued, so the job's end (which clears it) always comes after.
    let before = v.item.spec.clone();
    spec.renewal.get_or_insert_with(Renewal::default).phase = Some("revoking".into());
    let text = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    state.store.set_server_item_spec(&v.item.id, &text).await?;
    let payload = CertificateJob { server_id: v.server.id.clone(), certificate_id: v.item.id.clone() };
    let job = match enqueue(&state, CERTIFICATE_REVOKE.about_server(&v.server, payload)).await {
        Ok(job) => job,
        Err(e) => {
            let _ = state.store.set_server_item_spec(&v.item.id, &before).await;
            return Err(e);
        }
    };
    let mut item = v.item.clone();
    item.spec = text;
    super::audit_item(&audit, &v.server, "certificate.revoke".into(), &item);
    let message = if spec.active {
        "Revoking the certificate, then removing it. It is the site's active certificate: the site will serve \
         plain HTTP only, until another certificate is activated."
    } else {
        "Revoking the certificate, then removing it."
    };
    Ok(Accepted { message: message.into(), data: CertificateRoutes::resource(&item, spec, Some(job.id)) })
}

crate::site_item_routes! {
    routes: CertificateRoutes, resource: CertificateResource, tag: "certificates",
    collection: "/api/v1/servers/{server}/sites/{site}/certificates",
    item: "/api/v1/servers/{server}/sites/{site}/certificates/{certificate}", param: "certificate",
    read: "certificate:read", delete: "certificate:delete",
    list: list_certificates = "The site's certificates.",
    show: get_certificate = "One certificate of the site.",
    delete: delete_certificate = "Remove a certificate. 202 with the certificate `removing`; if the site served it, it falls back to plain HTTP and the message says so.",
}

/// Every certificate on the server, across its sites.
#[utoipa::path(
    get, path = "/api/v1/servers/{server}/certificates", tag = "certificates",
    params(("server" = String, Path), crate::extract::PageParams),
    security(("token" = ["certificate:read"])),
    responses((status = 200, body = Paginated<CertificateResource>))
)]
pub async fn list_server_certificates(
    State(state): State<AppState>,
    v: Authorized<super::super::servers::OnServer>,
    Page(cursor): Page,
) -> Result<Paginated<CertificateResource>, ApiError> {
    super::list::<CertificateRoutes>(&state, &v.server, cursor).await
}

/// Remove one of the server's certificates (as from its site).
#[utoipa::path(
    delete, path = "/api/v1/servers/{server}/certificates/{certificate}", tag = "certificates",
    params(("server" = String, Path), ("certificate" = String, Path)),
    security(("token" = ["certificate:delete"])),
    responses((status = 202, body = Accepted<CertificateResource>))
)]
pub async fn delete_server_certificate(
    State(state): State<AppState>,
    v: Authorized<OnItem<CertificateRoutes>>,
    audit: AuditSlot,
) -> Result<Accepted<CertificateResource>, ApiError> {
    let v = v.target;
    super::delete::<CertificateRoutes>(&state, &v.server, v.item, &audit).await
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_certificates, create_certificate))
        .routes(utoipa_axum::routes!(get_certificate, delete_certificate))
        .routes(utoipa_axum::routes!(activate_certificate))
        .routes(utoipa_axum::routes!(revoke_certificate))
        .routes(utoipa_axum::routes!(list_server_certificates))
        .routes(utoipa_axum::routes!(delete_server_certificate))
}
