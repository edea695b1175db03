//! Email channels: one plain-text message per notification, through the channel's SMTP server
//! (STARTTLS, implicit TLS, or none for a relay on a trusted network).

use std::time::Instant;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channels::EmailSettings;
use super::deliver::Outcome;
use crate::Engine;

/// Why `address` is not an email address Slipway can send to or from, or `None`.
pub fn address_problem(address: &str) -> Option<String> {
    match address.parse::<lettre::Address>() {
        Ok(_) => None,
        Err(e) => Some(format!("{address:?} is not an email address: {e}")),
    }
}

/// Sends one message; SMTP's own reply code is the outcome's status.
pub async fn send(
    settings: &EmailSettings,
    password: Option<&str>,
    subject: &str,
    text: &str,
    engine: &Engine,
) -> Outcome {
    let started = Instant::now();
    let elapsed = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let failed = |error: String, retryable: bool, status: Option<u16>, duration_ms: i64| Outcome {
        status,
        error: Some(error),
        retryable,
        response: None,
        duration_ms,
    };
    // The SMTP host is chosen by a user too: the same address rule as webhooks.
    if let Err(why) = engine.notify.addresses.check_resolved(&settings.smtp_host).await {
        // A refused address stays refused; a name that does not resolve now may later.
        let retryable = !why.contains("not a public address");
        return failed(why, retryable, None, elapsed());
    }
    let mut builder = lettre::Message::builder().subject(subject).header(ContentType::TEXT_PLAIN);
    match settings.from.parse() {
        Ok(from) => builder = builder.from(from),
        Err(e) => return failed(format!("the sender address is invalid: {e}"), false, None, 0),
    }
    for to in &settings.to {
        match to.parse() {
            Ok(to) => builder = builder.to(to),
            Err(e) => return failed(format!("the recipient {to:?} is invalid: {e}"), false, None, 0),
        }
    }
    let message = match builder.body(text.to_string()) {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot build the message: {e}"), false, None, 0),
    };
    let host = settings.smtp_host.as_str();
    let transport = match settings.smtp_security.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
    };
    let mut transport = match transport {
        Ok(t) => t.port(settings.smtp_port).timeout(Some(engine.notify.timeout)),
        Err(e) => return failed(format!("cannot set up SMTP to {host}: {e}"), false, None, 0),
    };
    if let (Some(user), Some(password)) = (&settings.smtp_username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    match transport.build().send(message).await {
        Ok(reply) => Outcome {
            status: Some(reply_code(&reply.code().to_string())),
            error: None,
            retryable: false,
            response: Some(reply.message().collect::<Vec<_>>().join(" ")).filter(|t| !t.is_empty()),
            duration_ms: elapsed(),
        },
        Err(e) => {
            let status = e.status().map(|c| reply_code(&c.to_string()));
            // Permanent refusals (5xx: no such mailbox, authentication failed) are not retried.
            failed(format!("SMTP: {e}"), !e.is_permanent(), status, elapsed())
        }
    }
}

fn reply_code(text: &str) -> u16 {
    text.parse().unwrap_or(0)
}
