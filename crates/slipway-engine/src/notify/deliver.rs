//! Fanning an event out to channels, and sending each delivery.
//!
//! `notification.dispatch` (one per event, its id the event's) stores the event and makes one
//! delivery per subscribed channel, unless an identical failure (same type and resource) was
//! sent to that channel within its repeat window: then the earlier delivery's `repeats` grows
//! instead, and the next notification after the window says how many were folded. Dispatch jobs
//! of one organisation run one at a time, so two identical failures cannot both start a group.
//!
//! `notification.deliver` is one attempt at one delivery. Network errors, 429 and 5xx answers
//! are retried with backoff (`NotifySettings::retry_delay`) until the deadline; other answers
//! (4xx, a redirect, which is never followed) end the delivery `failed`. Each attempt is
//! recorded once (`record_notification_attempt` refuses an attempt number already recorded), and
//! a job interrupted mid-send (Slipway killed) runs again after its lease: the receiver may then
//! get that attempt twice, with the same `Slipway-Delivery` id to recognise it by. A delivery
//! job never fails as an operation: what happened is on the delivery, and a failing channel
//! cannot become another event.

use slipway_core::DeliveryStatus;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::time::{Timestamp, now};
use slipway_jobs::{JobContext, JobError, JobHandler, JobSpec};
use slipway_store::{Event, NotificationChannel, NotificationDelivery, StoreError};

use super::channels::{ChannelConfig, ChannelSecret, Message, render, signature};
use super::{NotifyJob, is_failure};
use crate::Engine;

pub const DISPATCH: NotifyJob = NotifyJob { name: "notification.dispatch", attempts: 5 };
pub const DELIVER: NotifyJob = NotifyJob { name: "notification.deliver", attempts: 3 };

/// After this many attempts a delivery ends `failed` whatever its deadline.
pub const MAX_ATTEMPTS: i64 = 12;

/// The job that stores `event` and fans it out (its id is the event's).
pub fn dispatch_job(event: &Event) -> JobSpec {
    DISPATCH
        .spec(event, &event.organization_id, Some(format!("notify:{}", event.organization_id)))
        .with_id(event.id.clone())
}

#[derive(Debug, Serialize, Deserialize)]
struct Attempt {
    delivery_id: String,
    attempt: i64,
}

/// The job for attempt `attempt` of `delivery`, to start at `at`. Its id follows from both, so
/// queueing the same attempt twice (a dispatch run again) queues it once.
fn attempt_job(delivery: &NotificationDelivery, attempt: i64, at: Timestamp) -> JobSpec {
    let ms = u64::try_from(delivery.created_at.timestamp_millis()).unwrap_or(0);
    deliver_job(delivery, attempt)
        .with_id(slipway_core::id::id_at_for(ms, &format!("{}/{attempt}", delivery.id)))
        .at(at)
}

/// One channel's attempts run one at a time: an endpoint that never answers holds one of the
/// job runner's slots (for its timeout), not one per event, so it cannot starve other work.
fn deliver_job(delivery: &NotificationDelivery, attempt: i64) -> JobSpec {
    let lock = format!("notify-channel:{}", delivery.channel_id);
    DELIVER.spec(Attempt { delivery_id: delivery.id.clone(), attempt }, &delivery.organization_id, Some(lock))
}

async fn queue(engine: &Engine, job: JobSpec) -> Result<(), StoreError> {
    match slipway_jobs::enqueue(engine.store.as_ref(), job).await {
        Ok(_) | Err(StoreError::Conflict(_)) => {
            engine.wake_worker();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn retry(e: StoreError) -> JobError {
    JobError::Retryable { reason: format!("store: {e}") }
}

/// Sends a finished delivery again: it is pending once more, with a fresh deadline.
pub async fn redeliver(engine: &Engine, delivery: &NotificationDelivery) -> Result<bool, StoreError> {
    let deadline = now() + chrono::Duration::from_std(engine.notify.deadline).unwrap_or(chrono::Duration::days(1));
    if !engine.store.reopen_notification_delivery(&delivery.id, deadline).await? {
        return Ok(false);
    }
    queue(engine, deliver_job(delivery, delivery.attempts + 1)).await?;
    Ok(true)
}

/// `notification.dispatch`.
#[derive(Debug)]
pub struct Dispatch(pub Engine);

#[async_trait]
impl JobHandler for Dispatch {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let engine = &self.0;
        let store = engine.store.as_ref();
        let event: Event = ctx.payload()?;
        store.insert_event(&event).await.map_err(retry)?;
        let orgs = [event.organization_id.clone()];
        let mut page = 1;
        loop {
            let request = slipway_core::PageRequest::new(page, 100);
            let (channels, total) = store.notification_channels_of(&orgs, request).await.map_err(retry)?;
            for channel in &channels {
                if let Err(why) = plan(engine, channel, &event).await {
                    ctx.log("stderr", format!("channel {}: {why}", channel.id));
                }
            }
            if u64::from(page) * 100 >= total || channels.is_empty() {
                break;
            }
            page += 1;
        }
        // The first attempt of each delivery not yet tried (again on a re-run: same job ids).
        for delivery in store.notification_deliveries_of_event(&event.id).await.map_err(retry)? {
            if delivery.status == DeliveryStatus::Pending && delivery.attempts == 0 {
                queue(engine, attempt_job(&delivery, 1, now())).await.map_err(retry)?;
            }
        }
        Ok(())
    }
}

/// Makes `channel`'s delivery of `event`, or folds it into a recent identical one.
async fn plan(engine: &Engine, channel: &NotificationChannel, event: &Event) -> Result<(), String> {
    let config = ChannelConfig::of(channel)?;
    if !config.subscribes(event) {
        return Ok(());
    }
    let store = engine.store.as_ref();
    let group_key = format!("{}:{}:{}", event.event_type, event.resource_type, event.resource_id);
    let latest = store
        .latest_notification_delivery(&channel.id, &group_key)
        .await
        .map_err(|e| e.to_string())?
        .filter(|d| d.event_id != event.id);
    let window = chrono::Duration::seconds(i64::try_from(config.repeat_window_seconds).unwrap_or(i64::MAX / 2000));
    if let Some(previous) = &latest
        && is_failure(&event.event_type)
        && config.repeat_window_seconds > 0
        && event.occurred_at < previous.created_at + window
    {
        return store.add_notification_repeat(&previous.id).await.map_err(|e| e.to_string());
    }
    let deadline = chrono::Duration::from_std(engine.notify.deadline).unwrap_or(chrono::Duration::days(1));
    let delivery = NotificationDelivery {
        id: slipway_core::new_id(),
        channel_id: channel.id.clone(),
        organization_id: channel.organization_id.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        group_key,
        status: DeliveryStatus::Pending,
        attempts: 0,
        repeats: 0,
        folded: latest.map(|d| d.repeats).unwrap_or(0),
        response_code: None,
        duration_ms: None,
        error: None,
        next_attempt_at: Some(now()),
        deadline_at: event.occurred_at + deadline,
        created_at: event.occurred_at,
        updated_at: now(),
    };
    store.insert_notification_delivery(&delivery).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// `notification.deliver`: one attempt.
#[derive(Debug)]
pub struct Deliver(pub Engine);

#[async_trait]
impl JobHandler for Deliver {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let engine = &self.0;
        let store = engine.store.as_ref();
        let Attempt { delivery_id, attempt } = ctx.payload()?;
        let Some(delivery) = store.notification_delivery(&delivery_id).await.map_err(retry)? else {
            ctx.log("stdout", "the delivery is gone (its channel or event was deleted)");
            return Ok(());
        };
        if delivery.status != DeliveryStatus::Pending || delivery.attempts >= attempt {
            ctx.log("stdout", format!("attempt {attempt} is already recorded"));
            return Ok(());
        }
        let channel = store.notification_channel(&delivery.channel_id).await.map_err(retry)?;
        let event = store.event(&delivery.event_id).await.map_err(retry)?;
        let outcome = match (&channel, &event) {
            (Some(channel), Some(event)) => send(engine, channel, event, delivery.folded, &delivery.id).await,
            _ => Outcome::refused("the channel or the event is gone"),
        };
        let at = now();
        let delay =
            chrono::Duration::from_std(engine.notify.retry_delay(attempt)).unwrap_or(chrono::Duration::hours(1));
        let status = if outcome.delivered() {
            DeliveryStatus::Succeeded
        } else if outcome.retryable && attempt < MAX_ATTEMPTS && at + delay <= delivery.deadline_at {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        let recorded = NotificationDelivery {
            status,
            attempts: attempt,
            response_code: outcome.status.map(i64::from),
            duration_ms: Some(outcome.duration_ms),
            error: outcome.error.clone(),
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(at + delay),
            updated_at: at,
            ..delivery.clone()
        };
        ctx.log(
            "stdout",
            format!(
                "attempt {attempt}: {} in {} ms{} → {status}",
                outcome.status.map(|c| c.to_string()).unwrap_or_else(|| "no answer".into()),
                outcome.duration_ms,
                outcome.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
            ),
        );
        if store.record_notification_attempt(&recorded).await.map_err(retry)? && status == DeliveryStatus::Pending {
            queue(engine, attempt_job(&delivery, attempt + 1, at + delay)).await.map_err(retry)?;
        }
        Ok(())
    }
}

/// What one send did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// The receiver's HTTP status (`null`: no answer).
    pub status: Option<u16>,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Whether trying again may help (network errors, 429, 5xx).
    #[serde(skip)]
    pub retryable: bool,
    /// The start of the receiver's answer (at most 512 bytes), for `…/test`.
    pub response: Option<String>,
    pub duration_ms: i64,
}

impl Outcome {
    fn refused(why: impl Into<String>) -> Self {
        Outcome { status: None, error: Some(why.into()), retryable: false, response: None, duration_ms: 0 }
    }

    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Sends `event` to `channel` once (no retry), folding in `suppressed` repeats.
pub async fn send(
    engine: &Engine,
    channel: &NotificationChannel,
    event: &Event,
    suppressed: i64,
    delivery_id: &str,
) -> Outcome {
    let secret = match ChannelSecret::open(&engine.secrets, channel) {
        Ok(s) => s,
        Err(why) => return Outcome::refused(why),
    };
    match render(&channel.kind, event, suppressed, &engine.notify.public_url) {
        Message::Http { body } => {
            let Some(url) = secret.url else { return Outcome::refused("the channel has no URL") };
            post(engine, &channel.kind, &url, secret.signing_secret.as_deref(), event, delivery_id, body).await
        }
        Message::Email { subject, text } => {
            let config = match ChannelConfig::of(channel) {
                Ok(c) => c,
                Err(why) => return Outcome::refused(why),
            };
            match config.email {
                Some(email) => {
                    super::email::send(&email, secret.smtp_password.as_deref(), &subject, &text, engine).await
                }
                None => Outcome::refused("the channel has no email settings"),
            }
        }
    }
}

async fn post(
    engine: &Engine,
    kind: &str,
    url: &str,
    signing_secret: Option<&str>,
    event: &Event,
    delivery_id: &str,
    body: Vec<u8>,
) -> Outcome {
    let policy = &engine.notify.addresses;
    if let Some(why) = policy.url_problem(url) {
        return Outcome::refused(why);
    }
    let client = match engine.notify.client() {
        Ok(c) => c,
        Err(why) => return Outcome::refused(why),
    };
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("Slipway/", env!("CARGO_PKG_VERSION")));
    if kind == "webhook" {
        request = request.header("slipway-event", &event.event_type).header("slipway-delivery", delivery_id);
        if let Some(secret) = signing_secret {
            request = request.header("slipway-signature", signature(secret, now().timestamp(), &body));
        }
    }
    let started = Instant::now();
    let answer = request.body(body).send().await;
    let elapsed = |s: Instant| i64::try_from(s.elapsed().as_millis()).unwrap_or(i64::MAX);
    match answer {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let response = Some(text.chars().take(512).collect::<String>()).filter(|t| !t.is_empty());
            let duration_ms = elapsed(started);
            let code = status.as_u16();
            if status.is_success() {
                return Outcome { status: Some(code), error: None, retryable: false, response, duration_ms };
            }
            let (error, retryable) = if status.is_redirection() {
                (format!("the receiver answered {code} (a redirect); redirects are not followed"), false)
            } else if code == 429 || status.is_server_error() {
                (format!("the receiver answered {code}"), true)
            } else {
                (format!("the receiver answered {code}; not retried"), false)
            };
            Outcome { status: Some(code), error: Some(error), retryable, response, duration_ms }
        }
        Err(e) => {
            // Without the URL: a Slack or Discord webhook URL is a credential, and this text is
            // kept in the delivery log and shown to whoever tests the channel.
            let text = error_chain(&e.without_url());
            // A name that resolves to a refused address is not worth retrying.
            let retryable = !text.contains("not a public address");
            Outcome { status: None, error: Some(text), retryable, response: None, duration_ms: elapsed(started) }
        }
    }
}

/// A reqwest error with its causes (its own text is only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
