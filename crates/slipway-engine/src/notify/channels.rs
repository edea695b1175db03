//! A channel's settings, what it subscribes to, and how an event reads in each channel's format:
//! Slipway's own JSON (webhooks, signed), Slack's and Discord's incoming-webhook messages, and
//! an email.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use slipway_core::SecretsKey;
use slipway_store::{Event, NotificationChannel};

/// The event types a channel gets when it names none: every failure.
pub const FAILURES: &str = "failures";
/// Every event type.
pub const ALL: &str = "*";
/// Identical failures (same type and resource) within this many seconds are folded into one
/// notification, unless the channel says otherwise.
pub const DEFAULT_REPEAT_WINDOW_SECONDS: u64 = 900;

/// A channel's settings without secrets (`notification_channels.config`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Event types, `failures` (every failure type) or `*` (everything).
    pub events: Vec<String>,
    /// Only events about these servers (none: all).
    #[serde(default)]
    pub server_ids: Vec<String>,
    /// Only events about these sites (none: all).
    #[serde(default)]
    pub site_ids: Vec<String>,
    /// Identical failures within this window are folded (0: never).
    pub repeat_window_seconds: u64,
    /// Email channels: where and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
}

/// An email channel's settings (the password is sealed with the other secrets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmailSettings {
    pub to: Vec<String>,
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `starttls`, `tls` (implicit TLS) or `none`.
    pub smtp_security: String,
    pub smtp_username: Option<String>,
}

/// A channel's secrets, sealed together (`notification_channels.secret`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ChannelSecret {
    /// Webhook, Slack and Discord: the URL (Slack's and Discord's carry their own token).
    pub url: Option<String>,
    /// Webhook: the HMAC key for `Slipway-Signature`.
    pub signing_secret: Option<String>,
    pub smtp_password: Option<String>,
}

/// The context a channel's secrets are sealed under.
pub fn secret_context(channel_id: &str) -> String {
    format!("notification-channel:{channel_id}")
}

impl ChannelSecret {
    pub fn seal(&self, secrets: &SecretsKey, channel_id: &str) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("secrets serialise");
        secrets.seal(&secret_context(channel_id), &json)
    }

    pub fn open(secrets: &SecretsKey, channel: &NotificationChannel) -> Result<Self, String> {
        let json = secrets
            .open(&secret_context(&channel.id), &channel.secret)
            .map_err(|e| format!("cannot open the channel's secrets: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("the channel's secrets are unreadable: {e}"))
    }
}

/// A new signing secret for a webhook channel.
pub fn new_signing_secret() -> String {
    format!("whsec_{}", slipway_core::token::random_base62(32))
}

impl ChannelConfig {
    pub fn of(channel: &NotificationChannel) -> Result<Self, String> {
        serde_json::from_str(&channel.config).map_err(|e| format!("the channel's settings are unreadable: {e}"))
    }

    /// Whether the channel wants `event`.
    pub fn subscribes(&self, event: &Event) -> bool {
        let wanted = self
            .events
            .iter()
            .any(|t| t == ALL || t == &event.event_type || (t == FAILURES && super::is_failure(&event.event_type)));
        let in_scope =
            |ids: &[String], id: &Option<String>| ids.is_empty() || id.as_ref().is_some_and(|i| ids.contains(i));
        wanted && in_scope(&self.server_ids, &event.server_id) && in_scope(&self.site_ids, &event.site_id)
    }
}

/// The dashboard page for a resource at `api_path`: the same path without `/api/v1` for the
/// pages that mirror the API (servers, sites, deployments, operations), else the nearest page
/// that shows it (a site's or a server's), else the home page.
pub fn dashboard_path(api_path: &str) -> String {
    let Some(rest) = api_path.strip_prefix("/api/v1/") else { return "/".into() };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["operations", id, ..] => format!("/operations/{id}"),
        ["tokens", ..] => "/tokens".into(),
        ["servers", server, "sites", site, "deployments", deployment, ..] => {
            format!("/servers/{server}/sites/{site}/deployments/{deployment}")
        }
        ["servers", server, "sites", site, ..] => format!("/servers/{server}/sites/{site}"),
        ["servers", server, ..] => format!("/servers/{server}"),
        _ => "/".into(),
    }
}

/// An event as Slipway's webhooks send it, and as `GET /api/v1/events` shows it.
pub fn event_json(event: &Event, public_url: &str) -> serde_json::Value {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_else(|_| json!({}));
    json!({
        "id": event.id,
        "type": event.event_type,
        "occurred_at": event.occurred_at,
        "organization_id": event.organization_id,
        "summary": event.summary,
        "resource": {
            "type": event.resource_type,
            "id": event.resource_id,
            "name": event.resource_name,
            "url": event.resource_path.as_ref().map(|p| format!("{public_url}{p}")),
            "dashboard_url": event.resource_path.as_ref().map(|p| format!("{public_url}{}", dashboard_path(p))),
        },
        "server_id": event.server_id,
        "site_id": event.site_id,
        "data": data,
    })
}

/// One notification ready to send: the body and its content type, or an email.
#[derive(Debug, Clone)]
pub enum Message {
    Http { body: Vec<u8> },
    Email { subject: String, text: String },
}

/// `event` in the format of a channel of `kind`; `suppressed` identical events were folded
/// into it since the last notification about the same thing.
pub fn render(kind: &str, event: &Event, suppressed: i64, public_url: &str) -> Message {
    // People follow the link in a chat message or an email: it opens the dashboard's page.
    let url = event.resource_path.as_ref().map(|p| format!("{public_url}{}", dashboard_path(p)));
    let api_url = event.resource_path.as_ref().map(|p| format!("{public_url}{p}"));
    let repeats = match suppressed {
        0 => String::new(),
        1 => " (1 more like it since the last notification)".to_string(),
        n => format!(" ({n} more like it since the last notification)"),
    };
    match kind {
        "slack" => {
            // Slack's mrkdwn: &, < and > are escaped; a link is <url|text>.
            let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let headline = match &url {
                Some(u) => format!("*<{}|{}>*", escape(u), escape(&event.summary)),
                None => format!("*{}*", escape(&event.summary)),
            };
            let text =
                format!("{headline}{}\n`{}` · {}", escape(&repeats), event.event_type, escape(&event.resource_name));
            let body = json!({
                "text": format!("{}{repeats}", event.summary),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": format!("Slipway · {}", event.occurred_at.to_rfc3339())}
                    ]}
                ]
            });
            Message::Http { body: body.to_string().into_bytes() }
        }
        "discord" => {
            let color = if super::is_failure(&event.event_type) { 0xd93f0b } else { 0x2da44e };
            let mut embed = json!({
                "title": truncate(&event.summary, 256),
                "description": truncate(&format!("{}{repeats}", event.resource_name), 4096),
                "color": color,
                "timestamp": event.occurred_at.to_rfc3339(),
                "fields": [
                    {"name": "Event", "value": truncate(&event.event_type, 1024), "inline": true},
                    {"name": "Resource", "value": truncate(&format!("{} {}", event.resource_type, event.resource_id), 1024), "inline": true}
                ],
                "footer": {"text": "Slipway"}
            });
            if let Some(u) = &url {
                embed["url"] = json!(u);
            }
            // Names in the text (a site called @everyone) must never ping anyone.
            let body = json!({"username": "Slipway", "embeds": [embed], "allowed_mentions": {"parse": []}});
            Message::Http { body: body.to_string().into_bytes() }
        }
        "email" => {
            let mut text = format!(
                "{}{repeats}\n\nEvent: {}\nResource: {} {} ({})\nAt: {}\n",
                event.summary,
                event.event_type,
                event.resource_type,
                event.resource_name,
                event.resource_id,
                event.occurred_at.to_rfc3339()
            );
            if let Some(u) = &url {
                text.push_str(&format!("Open: {u}\n"));
            }
            if let Some(u) = &api_url {
                text.push_str(&format!("API: {u}\n"));
            }
            if event.data != "{}" {
                text.push_str(&format!("\nDetails: {}\n", event.data));
            }
            // One line: a reason carried into the summary may hold line breaks.
            let line: String = event.summary.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            Message::Email { subject: format!("[Slipway] {}", truncate(&line, 200)), text }
        }
        _ => {
            let mut body = event_json(event, public_url);
            body["suppressed_since_last"] = json!(suppressed);
            Message::Http { body: body.to_string().into_bytes() }
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `Slipway-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("t={timestamp},v1={}", slipway_core::hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_links_lead_to_the_page_that_shows_the_resource() {
        for (api, page) in [
            ("/api/v1/servers/s", "/servers/s"),
            ("/api/v1/servers/s/sites/x", "/servers/s/sites/x"),
            ("/api/v1/servers/s/sites/x/deployments/d", "/servers/s/sites/x/deployments/d"),
            ("/api/v1/servers/s/sites/x/certificates/c", "/servers/s/sites/x"),
            ("/api/v1/servers/s/databases/b/backups/k", "/servers/s"),
            ("/api/v1/operations/o", "/operations/o"),
            ("/api/v1/tokens/t", "/tokens"),
            ("/api/v1/backups/k", "/"),
            ("/elsewhere", "/"),
        ] {
            assert_eq!(dashboard_path(api), page, "{api}");
        }
    }

    fn event(event_type: &str, server: Option<&str>) -> Event {
        Event {
            id: "01J0000000000000000000000A".into(),
            organization_id: "o".into(),
            event_type: event_type.into(),
            resource_type: "deployment".into(),
            resource_id: "d".into(),
            resource_name: "<@everyone> & co".into(),
            resource_path: Some("/api/v1/servers/s/sites/x/deployments/d".into()),
            server_id: server.map(str::to_string),
            site_id: None,
            summary: "Deployment of <a> failed".into(),
            data: "{}".into(),
            occurred_at: slipway_core::time::now(),
        }
    }

    #[test]
    fn subscriptions_follow_types_failures_and_scope() {
        let config = |events: &[&str], servers: &[&str]| ChannelConfig {
            events: events.iter().map(|s| s.to_string()).collect(),
            server_ids: servers.iter().map(|s| s.to_string()).collect(),
            site_ids: vec![],
            repeat_window_seconds: 0,
            email: None,
        };
        let failed = event("deployment.failed", Some("s1"));
        let succeeded = event("deployment.succeeded", Some("s1"));
        assert!(config(&[FAILURES], &[]).subscribes(&failed));
        assert!(!config(&[FAILURES], &[]).subscribes(&succeeded));
        assert!(config(&[ALL], &[]).subscribes(&succeeded));
        assert!(config(&["deployment.succeeded"], &["s1"]).subscribes(&succeeded));
        assert!(!config(&[ALL], &["s2"]).subscribes(&failed));
        assert!(!config(&[ALL], &["s1"]).subscribes(&event("token.created", None)));
    }

    #[test]
    fn slack_text_is_escaped_and_discord_pings_nobody() {
        let e = event("deployment.failed", None);
        let Message::Http { body } = render("slack", &e, 2, "https://cp.example") else { panic!() };
        let slack: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("&lt;@everyone&gt; &amp; co"), "{text}");
        assert!(
            text.starts_with("*<https://cp.example/servers/s/sites/x/deployments/d|Deployment of &lt;a&gt; failed>*")
        );
        assert!(slack["text"].as_str().unwrap().contains("2 more like it"));
        let Message::Http { body } = render("discord", &e, 0, "https://cp.example") else { panic!() };
        let discord: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        assert_eq!(discord["embeds"][0]["color"], json!(0xd93f0b));
    }

    /// The limits Slack (Block Kit: a section's text at most 3,000 characters) and Discord
    /// (embed title 256, description 4,096, field value 1,024, all of an embed 6,000) document,
    /// with a summary far longer than any of them.
    #[test]
    fn long_events_stay_within_what_slack_and_discord_accept() {
        let mut e = event("deployment.failed", None);
        e.summary = "x".repeat(10_000);
        e.resource_name = "y".repeat(10_000);
        let Message::Http { body } = render("slack", &e, 0, "https://cp.example") else { panic!() };
        let slack: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for block in slack["blocks"].as_array().unwrap() {
            if block["type"] == "section" {
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 3000);
            }
        }
        let Message::Http { body } = render("discord", &e, 0, "https://cp.example") else { panic!() };
        let discord: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let embed = &discord["embeds"][0];
        let len = |v: &serde_json::Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
        assert!(len(&embed["title"]) <= 256 && len(&embed["description"]) <= 4096);
        let mut total = len(&embed["title"]) + len(&embed["description"]) + len(&embed["footer"]["text"]);
        for field in embed["fields"].as_array().unwrap() {
            assert!(len(&field["name"]) <= 256 && len(&field["value"]) <= 1024);
            total += len(&field["name"]) + len(&field["value"]);
        }
        assert!(total <= 6000, "{total}");
    }

    #[test]
    fn an_email_subject_is_one_line_whatever_the_summary_holds() {
        let mut e = event("deployment.failed", None);
        e.summary = "Deployment failed: line one\r\nBcc: someone@example.com".into();
        let Message::Email { subject, text } = render("email", &e, 0, "https://cp.example") else { panic!() };
        assert!(!subject.contains('\n') && !subject.contains('\r'), "{subject:?}");
        assert!(subject.starts_with("[Slipway] Deployment failed: line one"), "{subject}");
        assert!(text.contains("API: https://cp.example/api/v1/"), "{text}");
        assert!(text.contains("Open: https://cp.example/servers/s/sites/x/deployments/d\n"), "{text}");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Checked against `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=".to_string() + &openssl_hmac("whsec_test", r#"1700000000.{"a":1}"#)
        );
    }

    fn openssl_hmac(key: &str, text: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", key])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl runs");
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        out.trim().rsplit(' ').next().unwrap().to_string()
    }
}
