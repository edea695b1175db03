//! Events and notification channels. `GET /api/v1/events` lists what happened (ability
//! `event:read`); channels (`notification:*`, organisation-wide) send events out as signed
//! webhooks, Slack or Discord messages, or email, and keep a log of every delivery. Both are
//! organisation-level: tokens restricted to some servers or sites cannot reach them.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::time::now;
use slipway_core::{FieldErrors, identity};
use slipway_engine::notify::channels::{
    ALL, ChannelConfig, ChannelSecret, DEFAULT_REPEAT_WINDOW_SECONDS, EmailSettings, FAILURES, event_json,
    new_signing_secret,
};
use slipway_engine::notify::deliver::Outcome;
use slipway_engine::notify::{self, TEST_EVENT};
use slipway_store::{Event, EventFilter, NotificationChannel, NotificationDelivery};
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditSlot;
use crate::auth::{Authorized, OrganizationCaller, Shared, SharedRecord};
use crate::envelope::{Data, Paginated};
use crate::error::ApiError;
use crate::extract::{Json, Page};
use crate::state::AppState;

/// Longest repeat window: a day.
const MAX_REPEAT_WINDOW_SECONDS: u64 = 86_400;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventSubject {
    /// `deployment`, `server`, `backup`, `certificate`, `operation`, `token`.
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
    pub name: String,
    /// The resource in the API.
    pub url: Option<String>,
    /// The dashboard page that shows it (or the nearest one that does).
    pub dashboard_url: Option<String>,
}

/// Something that happened; the body of a webhook is the same JSON (plus
/// `suppressed_since_last`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResource {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "deployment.failed")]
    pub event_type: String,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub occurred_at: DateTime<Utc>,
    pub organization_id: String,
    #[schema(
        example = "Deployment of example.com failed at build: build failed (exit 1): the deploy script failed (exit 2)"
    )]
    pub summary: String,
    pub resource: EventSubject,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
    /// Details of the event type (see the catalogue in docs/api.md).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn event_resource(event: &Event, public_url: &str) -> EventResource {
    let json = event_json(event, public_url);
    EventResource {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        occurred_at: event.occurred_at,
        organization_id: event.organization_id.clone(),
        summary: event.summary.clone(),
        resource: EventSubject {
            resource_type: event.resource_type.clone(),
            id: event.resource_id.clone(),
            name: event.resource_name.clone(),
            url: json["resource"]["url"].as_str().map(str::to_string),
            dashboard_url: json["resource"]["dashboard_url"].as_str().map(str::to_string),
        },
        server_id: event.server_id.clone(),
        site_id: event.site_id.clone(),
        data: json["data"].clone(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Only events of this type (`deployment.failed`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events about resources of this type (`deployment`).
    pub resource_type: Option<String>,
    /// Only events about this resource.
    pub resource_id: Option<String>,
    pub server_id: Option<String>,
    pub site_id: Option<String>,
}

/// Events of your organizations, newest first.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(crate::extract::PageParams, EventQuery),
    security(("token" = ["event:read"])),
    responses((status = 200, body = Paginated<EventResource>))
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Page(cursor): Page,
    Query(query): Query<EventQuery>,
) -> Result<Paginated<EventResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let filter = EventFilter {
        event_type: query.event_type,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        server_id: query.server_id,
        site_id: query.site_id,
    };
    let (rows, total) = state.store.events_of(&orgs, &filter, cursor.request).await?;
    let public_url = &state.config.public_url;
    Ok(cursor.page(rows.iter().map(|e| event_resource(e, public_url)).collect(), total))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationChannelResource {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// `webhook`, `slack`, `discord` or `email`.
    pub kind: String,
    /// The URL's host (the URL itself may carry a token and is never shown).
    pub url_host: Option<String>,
    /// Event types, `failures` or `*`.
    pub events: Vec<String>,
    pub server_ids: Vec<String>,
    pub site_ids: Vec<String>,
    pub repeat_window_seconds: u64,
    pub email_to: Option<Vec<String>>,
    pub email_from: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    pub has_smtp_password: bool,
    /// Webhook channels, in the answer to creating the channel or rotating its secret only:
    /// the key of `Slipway-Signature`. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

fn channel_resource(
    state: &AppState,
    c: &NotificationChannel,
    signing_secret: Option<String>,
) -> NotificationChannelResource {
    let config = ChannelConfig::of(c).ok();
    let secret = ChannelSecret::open(&state.secrets, c).ok();
    let url_host = secret
        .as_ref()
        .and_then(|s| s.url.as_deref())
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let email = config.as_ref().and_then(|c| c.email.clone());
    NotificationChannelResource {
        id: c.id.clone(),
        organization_id: c.organization_id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        url_host,
        events: config.as_ref().map(|c| c.events.clone()).unwrap_or_default(),
        server_ids: config.as_ref().map(|c| c.server_ids.clone()).unwrap_or_default(),
        site_ids: config.as_ref().map(|c| c.site_ids.clone()).unwrap_or_default(),
        repeat_window_seconds: config.as_ref().map(|c| c.repeat_window_seconds).unwrap_or(0),
        email_to: email.as_ref().map(|e| e.to.clone()),
        email_from: email.as_ref().map(|e| e.from.clone()),
        smtp_host: email.as_ref().map(|e| e.smtp_host.clone()),
        smtp_port: email.as_ref().map(|e| e.smtp_port),
        smtp_security: email.as_ref().map(|e| e.smtp_security.clone()),
        smtp_username: email.and_then(|e| e.smtp_username),
        has_smtp_password: secret.is_some_and(|s| s.smtp_password.is_some()),
        signing_secret,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A channel named by `{notification_channel}` that the caller may act on, or 404 / 403.
pub type VisibleChannel = Authorized<Shared<NotificationChannel>>;

impl SharedRecord for NotificationChannel {
    const PARAM: &'static str = "notification_channel";

    async fn find(state: &AppState, id: &str) -> Result<Option<Self>, slipway_store::StoreError> {
        state.store.notification_channel(id).await
    }

    fn organization_id(&self) -> &str {
        &self.organization_id
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationChannelInput {
    #[schema(example = "Ops on-call", min_length = 1, max_length = 255)]
    pub name: String,
    /// `webhook` (Slipway's signed JSON), `slack`, `discord` or `email`. Fixed once created.
    #[schema(example = "webhook")]
    pub kind: String,
    /// Webhook, Slack, Discord: where to POST (https). Stored encrypted; on update, leave it out
    /// to keep the stored one.
    #[schema(example = "https://hooks.example.com/slipway")]
    pub url: Option<String>,
    /// Event types from the catalogue, `failures` (every failure type, the default) or `*`.
    pub events: Option<Vec<String>>,
    /// Only events about these servers (default: all).
    pub server_ids: Option<Vec<String>>,
    /// Only events about these sites (default: all).
    pub site_ids: Option<Vec<String>>,
    /// Identical failures (same type and resource) within this many seconds are sent once, the
    /// next notification saying how many were folded (default 900; 0: never fold).
    #[schema(maximum = 86400)]
    pub repeat_window_seconds: Option<u64>,
    /// Email: recipients.
    pub email_to: Option<Vec<String>>,
    /// Email: the sender address.
    pub email_from: Option<String>,
    pub smtp_host: Option<String>,
    /// Email: default 587.
    pub smtp_port: Option<u16>,
    /// Email: `starttls` (default), `tls` or `none`.
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    /// Stored encrypted, never shown again; on update, leave it out to keep the stored one.
    pub smtp_password: Option<String>,
    /// For a new channel: the organisation (default: your only one).
    pub organization_id: Option<String>,
}

/// Checks `input` for organisation `org`; returns the name, config and the secrets given.
async fn checked(
    state: &AppState,
    org: &str,
    input: &NotificationChannelInput,
    current: Option<&ChannelSecret>,
) -> Result<(String, ChannelConfig, ChannelSecret), ApiError> {
    let mut errors = FieldErrors::new();
    identity::check_label(&mut errors, "name", &input.name);
    let is_email = input.kind == "email";
    if !matches!(input.kind.as_str(), "webhook" | "slack" | "discord" | "email") {
        errors.add("kind", "The kind is webhook, slack, discord or email.");
    }
    let mut secret = current.cloned().unwrap_or_default();
    if is_email {
        for (field, given) in [("url", input.url.is_some())] {
            if given {
                errors.add(field, "Not a setting of an email channel.");
            }
        }
    } else {
        let email_fields = [
            ("email_to", input.email_to.is_some()),
            ("email_from", input.email_from.is_some()),
            ("smtp_host", input.smtp_host.is_some()),
            ("smtp_port", input.smtp_port.is_some()),
            ("smtp_security", input.smtp_security.is_some()),
            ("smtp_username", input.smtp_username.is_some()),
            ("smtp_password", input.smtp_password.is_some()),
        ];
        for (field, given) in email_fields {
            if given {
                errors.add(field, format!("Not a setting of a {} channel.", input.kind));
            }
        }
        match &input.url {
            Some(url) => match url_problem(state, url).await {
                Some(why) => errors.add("url", why),
                None => secret.url = Some(url.clone()),
            },
            None if secret.url.is_none() => errors.add("url", "Give the URL to send to."),
            None => {}
        }
    }
    let events = input.events.clone().unwrap_or_else(|| vec![FAILURES.to_string()]);
    if events.is_empty() {
        errors.add("events", "Name at least one event type (or failures, or *).");
    }
    for t in &events {
        if t != FAILURES && t != ALL && !notify::is_known(t) {
            errors.add("events", format!("{t:?} is not an event type; see the catalogue in docs/api.md."));
        }
    }
    let server_ids = input.server_ids.clone().unwrap_or_default();
    for id in &server_ids {
        if state.store.server(id).await?.is_none_or(|s| s.organization_id != org) {
            errors.add("server_ids", format!("No server {id} in the channel's organisation."));
        }
    }
    let site_ids = input.site_ids.clone().unwrap_or_default();
    for id in &site_ids {
        if state.store.site(id).await?.is_none_or(|s| s.organization_id != org) {
            errors.add("site_ids", format!("No site {id} in the channel's organisation."));
        }
    }
    let repeat_window_seconds = input.repeat_window_seconds.unwrap_or(DEFAULT_REPEAT_WINDOW_SECONDS);
    if repeat_window_seconds > MAX_REPEAT_WINDOW_SECONDS {
        errors.add("repeat_window_seconds", "At most 86400 (a day).");
    }
    let email = if is_email {
        let to = input.email_to.clone().unwrap_or_default();
        if to.is_empty() {
            errors.add("email_to", "Give at least one recipient.");
        }
        for address in &to {
            if let Some(why) = notify::email::address_problem(address) {
                errors.add("email_to", why);
            }
        }
        let from = input.email_from.clone().unwrap_or_default();
        if let Some(why) = notify::email::address_problem(&from) {
            errors.add("email_from", why);
        }
        let smtp_host = input.smtp_host.clone().unwrap_or_default();
        if smtp_host.is_empty() || url::Host::parse(&smtp_host).is_err() {
            errors.add("smtp_host", "Give the SMTP server's host name or address.");
        }
        let smtp_security = input.smtp_security.clone().unwrap_or_else(|| "starttls".into());
        if !matches!(smtp_security.as_str(), "starttls" | "tls" | "none") {
            errors.add("smtp_security", "One of starttls, tls or none.");
        }
        if let Some(password) = &input.smtp_password {
            secret.smtp_password = Some(password.clone());
        }
        if input.smtp_username.is_some() != secret.smtp_password.is_some() {
            errors.add("smtp_password", "Give the SMTP username and password together.");
        }
        Some(EmailSettings {
            to,
            from,
            smtp_host,
            smtp_port: input.smtp_port.unwrap_or(587),
            smtp_security,
            smtp_username: input.smtp_username.clone(),
        })
    } else {
        None
    };
    errors.into_result()?;
    let config = ChannelConfig { events, server_ids, site_ids, repeat_window_seconds, email };
    Ok((input.name.trim().to_string(), config, secret))
}

/// Why `url` may not be a channel's URL: the address rule (by default no loopback, private or
/// link-local address, https only), checked on the name's addresses when it resolves now.
async fn url_problem(state: &AppState, url: &str) -> Option<String> {
    let policy = &state.engine.notify.addresses;
    if let Some(why) = policy.url_problem(url) {
        return Some(why);
    }
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    // A name that does not resolve here yet is checked again on every send.
    match policy.check_resolved(&host).await {
        Err(why) if why.contains("not a public address") => Some(why),
        _ => None,
    }
}

/// Notification channels of your organizations.
#[utoipa::path(
    get, path = "/api/v1/notification-channels", tag = "events",
    params(crate::extract::PageParams),
    security(("token" = ["notification:read"])),
    responses((status = 200, body = Paginated<NotificationChannelResource>))
)]
pub async fn list_notification_channels(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    Page(cursor): Page,
) -> Result<Paginated<NotificationChannelResource>, ApiError> {
    let orgs = caller.organizations(&state).await?;
    let (rows, total) = state.store.notification_channels_of(&orgs, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(|c| channel_resource(&state, c, None)).collect(), total))
}

/// Add a channel. A webhook channel's answer holds its signing secret, shown this once.
#[utoipa::path(
    post, path = "/api/v1/notification-channels", tag = "events",
    request_body = NotificationChannelInput,
    security(("token" = ["notification:create"])),
    responses((status = 201, body = Data<NotificationChannelResource>))
)]
pub async fn create_notification_channel(
    State(state): State<AppState>,
    caller: OrganizationCaller,
    audit: AuditSlot,
    Json(body): Json<NotificationChannelInput>,
) -> Result<(StatusCode, Data<NotificationChannelResource>), ApiError> {
    let org = caller.organization_for_new(&state, body.organization_id.as_deref()).await?;
    let (name, config, mut secret) = checked(&state, &org, &body, None).await?;
    if body.kind == "webhook" {
        secret.signing_secret = Some(new_signing_secret());
    }
    let id = slipway_core::new_id();
    let channel = NotificationChannel {
        secret: secret.seal(&state.secrets, &id),
        id,
        organization_id: org,
        name,
        kind: body.kind,
        config: serde_json::to_string(&config).map_err(ApiError::internal)?,
        created_at: now(),
        updated_at: now(),
    };
    state.store.insert_notification_channel(&channel).await?;
    note(&audit, &channel);
    Ok((StatusCode::CREATED, Data { data: channel_resource(&state, &channel, secret.signing_secret) }))
}

fn note(audit: &AuditSlot, channel: &NotificationChannel) {
    audit.note(|n| {
        n.organization_id = Some(channel.organization_id.clone());
        n.resource_id = Some(channel.id.clone());
    });
}

/// One notification channel.
#[utoipa::path(
    get, path = "/api/v1/notification-channels/{notification_channel}", tag = "events",
    params(("notification_channel" = String, Path)),
    security(("token" = ["notification:read"])),
    responses((status = 200, body = Data<NotificationChannelResource>))
)]
pub async fn get_notification_channel(
    State(state): State<AppState>,
    v: VisibleChannel,
) -> Result<Data<NotificationChannelResource>, ApiError> {
    Ok(Data { data: channel_resource(&state, v.record(), None) })
}

/// Change a channel: the same fields as creating it (its kind stays); leave `url` or
/// `smtp_password` out to keep the stored one.
#[utoipa::path(
    put, path = "/api/v1/notification-channels/{notification_channel}", tag = "events",
    params(("notification_channel" = String, Path)),
    request_body = NotificationChannelInput,
    security(("token" = ["notification:update"])),
    responses((status = 200, body = Data<NotificationChannelResource>))
)]
pub async fn update_notification_channel(
    State(state): State<AppState>,
    v: VisibleChannel,
    audit: AuditSlot,
    Json(body): Json<NotificationChannelInput>,
) -> Result<Data<NotificationChannelResource>, ApiError> {
    let current = v.record();
    if body.kind != current.kind {
        return Err(ApiError::validation(
            "kind",
            format!("A channel's kind stays {}; add a new channel.", current.kind),
        ));
    }
    if body.organization_id.as_deref().is_some_and(|o| o != current.organization_id) {
        return Err(ApiError::validation("organization_id", "A channel stays in its organisation."));
    }
    let stored = ChannelSecret::open(&state.secrets, current).map_err(ApiError::internal)?;
    let (name, config, secret) = checked(&state, &current.organization_id, &body, Some(&stored)).await?;
    let channel = NotificationChannel {
        name,
        config: serde_json::to_string(&config).map_err(ApiError::internal)?,
        secret: secret.seal(&state.secrets, &current.id),
        updated_at: now(),
        ..current.clone()
    };
    if !state.store.update_notification_channel(&channel).await? {
        return Err(ApiError::NotFound);
    }
    note(&audit, &channel);
    Ok(Data { data: channel_resource(&state, &channel, None) })
}

/// Remove a channel and its delivery log.
#[utoipa::path(
    delete, path = "/api/v1/notification-channels/{notification_channel}", tag = "events",
    params(("notification_channel" = String, Path)),
    security(("token" = ["notification:delete"])),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_notification_channel(
    State(state): State<AppState>,
    v: VisibleChannel,
    audit: AuditSlot,
) -> Result<StatusCode, ApiError> {
    state.store.delete_notification_channel(&v.record().id).await?;
    note(&audit, v.record());
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret for a webhook channel, shown once; the old one stops at once.
#[utoipa::path(
    post, path = "/api/v1/notification-channels/{notification_channel}/rotate-secret", tag = "events",
    params(("notification_channel" = String, Path)),
    security(("token" = ["notification:update"])),
    responses((status = 200, body = Data<NotificationChannelResource>))
)]
pub async fn rotate_notification_channel_secret(
    State(state): State<AppState>,
    v: VisibleChannel,
    audit: AuditSlot,
) -> Result<Data<NotificationChannelResource>, ApiError> {
    let current = v.record();
    if current.kind != "webhook" {
        return Err(ApiError::validation("kind", "Only webhook channels sign what they send."));
    }
    let mut secret = ChannelSecret::open(&state.secrets, current).map_err(ApiError::internal)?;
    let signing_secret = new_signing_secret();
    secret.signing_secret = Some(signing_secret.clone());
    let channel =
        NotificationChannel { secret: secret.seal(&state.secrets, &current.id), updated_at: now(), ..current.clone() };
    if !state.store.update_notification_channel(&channel).await? {
        return Err(ApiError::NotFound);
    }
    note(&audit, &channel);
    Ok(Data { data: channel_resource(&state, &channel, Some(signing_secret)) })
}

/// Send a test event (`notification.test`, not stored) now and answer what the receiver said:
/// 200 with `status`, `error` (when it did not succeed), the start of its answer and the time.
#[utoipa::path(
    post, path = "/api/v1/notification-channels/{notification_channel}/test", tag = "events",
    params(("notification_channel" = String, Path)),
    security(("token" = ["notification:update"])),
    responses((status = 200, body = Data<Outcome>))
)]
pub async fn test_notification_channel(
    State(state): State<AppState>,
    v: VisibleChannel,
    audit: AuditSlot,
) -> Result<Data<Outcome>, ApiError> {
    let channel = v.record();
    let event = Event {
        id: slipway_core::new_id(),
        organization_id: channel.organization_id.clone(),
        event_type: TEST_EVENT.into(),
        resource_type: "notification_channel".into(),
        resource_id: channel.id.clone(),
        resource_name: channel.name.clone(),
        resource_path: Some(format!("/api/v1/notification-channels/{}", channel.id)),
        server_id: None,
        site_id: None,
        summary: format!("Test notification from Slipway to {}", channel.name),
        data: "{}".into(),
        occurred_at: now(),
    };
    let outcome = notify::deliver::send(&state.engine, channel, &event, 0, &event.id).await;
    note(&audit, channel);
    Ok(Data { data: outcome })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResource {
    pub id: String,
    pub channel_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending` (being sent or waiting to be retried), `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// Identical events folded into this delivery (not sent separately).
    pub repeats: i64,
    /// Identical events folded into the delivery before it, reported by this one.
    pub suppressed_since_last: i64,
    /// The receiver's last HTTP status (email: the SMTP reply code).
    pub response_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339_option")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub deadline_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "slipway_wire::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&NotificationDelivery> for DeliveryResource {
    fn from(d: &NotificationDelivery) -> Self {
        DeliveryResource {
            id: d.id.clone(),
            channel_id: d.channel_id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.to_string(),
            attempts: d.attempts,
            repeats: d.repeats,
            suppressed_since_last: d.folded,
            response_code: d.response_code,
            duration_ms: d.duration_ms,
            error: d.error.clone(),
            next_attempt_at: d.next_attempt_at,
            deadline_at: d.deadline_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A channel's deliveries, newest first.
#[utoipa::path(
    get, path = "/api/v1/notification-channels/{notification_channel}/deliveries", tag = "events",
    params(("notification_channel" = String, Path), crate::extract::PageParams),
    security(("token" = ["notification:read"])),
    responses((status = 200, body = Paginated<DeliveryResource>))
)]
pub async fn list_notification_deliveries(
    State(state): State<AppState>,
    v: VisibleChannel,
    Page(cursor): Page,
) -> Result<Paginated<DeliveryResource>, ApiError> {
    let (rows, total) = state.store.notification_deliveries_of(&v.record().id, cursor.request).await?;
    Ok(cursor.page(rows.iter().map(DeliveryResource::from).collect(), total))
}

/// Send a finished delivery again (with a fresh deadline). 409 while it is still pending.
#[utoipa::path(
    post, path = "/api/v1/notification-channels/{notification_channel}/deliveries/{delivery}/redeliver",
    tag = "events",
    params(("notification_channel" = String, Path), ("delivery" = String, Path)),
    security(("token" = ["notification:update"])),
    responses((status = 202, body = Data<DeliveryResource>))
)]
pub async fn redeliver_notification(
    State(state): State<AppState>,
    v: VisibleChannel,
    audit: AuditSlot,
    axum::extract::Path(path): axum::extract::Path<(String, String)>,
) -> Result<(StatusCode, Data<DeliveryResource>), ApiError> {
    let delivery_id = path.1;
    let delivery = state
        .store
        .notification_delivery(&delivery_id)
        .await?
        .filter(|d| d.channel_id == v.record().id)
        .ok_or(ApiError::NotFound)?;
    if !notify::deliver::redeliver(&state.engine, &delivery).await? {
        return Err(ApiError::Conflict("The delivery is still being sent; wait for it to end.".into()));
    }
    note(&audit, v.record());
    let delivery = state.store.notification_delivery(&delivery_id).await?.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::ACCEPTED, Data { data: (&delivery).into() }))
}

pub fn router(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    router
        .routes(utoipa_axum::routes!(list_events))
        .routes(utoipa_axum::routes!(list_notification_channels, create_notification_channel))
        .routes(utoipa_axum::routes!(
            get_notification_channel,
            update_notification_channel,
            delete_notification_channel
        ))
        .routes(utoipa_axum::routes!(rotate_notification_channel_secret))
        .routes(utoipa_axum::routes!(test_notification_channel))
        .routes(utoipa_axum::routes!(list_notification_deliveries))
        .routes(utoipa_axum::routes!(redeliver_notification))
}
