//! `slipway notify channel …` and `slipway events`: where events are sent, and what happened.

use clap::Subcommand;
use serde_json::{Value, json};

use super::errors::Missing;
use super::{ClientArgs, Output, connect, print_json};

const CHANNELS: &str = "/api/v1/notification-channels";

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Notification channels: signed webhooks, Slack, Discord, email
    #[command(subcommand)]
    Channel(ChannelCommand),
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Your organizations' channels
    List,
    /// Add a channel (by default it gets every failure); test it next
    Add(Box<AddChannel>),
    /// Send a test notification now and show what the receiver answered
    Test {
        /// The channel's id
        id: String,
    },
    /// A channel's deliveries, newest first
    Deliveries {
        /// The channel's id
        id: String,
    },
    /// Remove a channel and its delivery log
    Remove {
        /// The channel's id
        id: String,
    },
}

/// `slipway notify channel add`.
#[derive(Debug, clap::Args)]
pub struct AddChannel {
    /// A name for it
    name: String,
    /// webhook (Slipway's signed JSON), slack, discord or email
    #[arg(long, default_value = "webhook")]
    kind: String,
    /// Where to POST (webhook, Slack, Discord); Slack's and Discord's URLs hold a token, so
    /// better from the environment than on a command line
    #[arg(long, env = "SLIPWAY_NOTIFY_URL", hide_env_values = true)]
    url: Option<String>,
    /// Event types, `failures` or `*`, comma-separated [default: failures]
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Only events about this server (name or id; repeatable)
    #[arg(long = "server")]
    servers: Vec<String>,
    /// Only events about this site (its id; repeatable)
    #[arg(long = "site")]
    sites: Vec<String>,
    /// Identical failures within this many seconds are sent once [default: 900]
    #[arg(long)]
    repeat_window: Option<u64>,
    /// Email: a recipient (repeatable)
    #[arg(long = "email-to")]
    email_to: Vec<String>,
    /// Email: the sender address
    #[arg(long)]
    email_from: Option<String>,
    #[arg(long)]
    smtp_host: Option<String>,
    /// [default: 587]
    #[arg(long)]
    smtp_port: Option<u16>,
    /// starttls, tls or none [default: starttls]
    #[arg(long)]
    smtp_security: Option<String>,
    #[arg(long)]
    smtp_username: Option<String>,
    #[arg(long, env = "SLIPWAY_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// The organization (if you belong to several)
    #[arg(long)]
    organization: Option<String>,
}

#[allow(clippy::print_stdout)]
pub async fn notify(command: NotifyCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let NotifyCommand::Channel(command) = command;
    let client = connect(client_args)?;
    let output = client_args.output;
    let s = |v: &Value, k: &str| match &v[k] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match command {
        ChannelCommand::List => {
            let page = client.items(CHANNELS).await?;
            if output == Output::Json {
                return print_json(&Value::Array(page.data));
            }
            println!("{:<26}  {:<20}  {:<8}  {:<24}  EVENTS", "ID", "NAME", "KIND", "TO");
            for c in &page.data {
                let to = match c["kind"].as_str() {
                    Some("email") => c["email_to"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => s(c, "url_host"),
                };
                let events = c["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>();
                println!(
                    "{:<26}  {:<20}  {:<8}  {:<24}  {}",
                    s(c, "id"),
                    s(c, "name"),
                    s(c, "kind"),
                    to,
                    events.join(",")
                );
            }
            Ok(())
        }
        ChannelCommand::Add(add) => {
            let AddChannel {
                name,
                kind,
                url,
                events,
                servers,
                sites,
                repeat_window,
                email_to,
                email_from,
                smtp_host,
                smtp_port,
                smtp_security,
                smtp_username,
                smtp_password,
                organization,
            } = *add;
            let mut server_ids = Vec::new();
            for server in &servers {
                let found = client.item("/api/v1/servers", server).await.map_err(Missing::Server(server).describe())?;
                server_ids.push(found["id"].clone());
            }
            let email = kind == "email";
            let mut body = json!({
                "name": name, "kind": kind, "url": url, "organization_id": organization,
                "events": (!events.is_empty()).then_some(&events),
                "server_ids": (!server_ids.is_empty()).then_some(&server_ids),
                "site_ids": (!sites.is_empty()).then_some(&sites),
                "repeat_window_seconds": repeat_window,
            });
            if email {
                body["email_to"] = json!(email_to);
                body["email_from"] = json!(email_from);
                body["smtp_host"] = json!(smtp_host);
                body["smtp_port"] = json!(smtp_port);
                body["smtp_security"] = json!(smtp_security);
                body["smtp_username"] = json!(smtp_username);
                body["smtp_password"] = json!(smtp_password);
            }
            let created = client.create_item(CHANNELS, &without_nulls(body)).await?;
            if output == Output::Json {
                return print_json(&created);
            }
            eprintln!(
                "Added {} {}; send a test with: slipway notify channel test {}",
                s(&created, "id"),
                s(&created, "name"),
                s(&created, "id")
            );
            if let Some(secret) = created["signing_secret"].as_str() {
                eprintln!("Its signing secret (shown once; verify Slipway-Signature with it):");
                println!("{secret}");
            }
            Ok(())
        }
        ChannelCommand::Test { id } => {
            let missing = Missing::Item { server: "-", kind: "notification channel", id: &id };
            let test = client.item_action(CHANNELS, &id, "test", &json!({})).await.map_err(missing.describe())?;
            if output == Output::Json {
                print_json(&test)?;
            }
            match test["error"].as_str() {
                None => {
                    if output != Output::Json {
                        println!(
                            "delivered: the receiver answered {} in {} ms",
                            s(&test, "status"),
                            s(&test, "duration_ms")
                        );
                    }
                    Ok(())
                }
                Some(why) => anyhow::bail!("the test notification was not delivered: {why}"),
            }
        }
        ChannelCommand::Deliveries { id } => {
            let page = client
                .items(&format!("{CHANNELS}/{id}/deliveries"))
                .await
                .map_err(Missing::Item { server: "-", kind: "notification channel", id: &id }.describe())?;
            if output == Output::Json {
                return print_json(&Value::Array(page.data));
            }
            println!("{:<26}  {:<26}  {:<9}  {:>8}  {:>4}  ERROR", "ID", "EVENT", "STATUS", "ATTEMPTS", "CODE");
            for d in &page.data {
                println!(
                    "{:<26}  {:<26}  {:<9}  {:>8}  {:>4}  {}",
                    s(d, "id"),
                    s(d, "event_type"),
                    s(d, "status"),
                    s(d, "attempts"),
                    s(d, "response_code"),
                    s(d, "error")
                );
            }
            Ok(())
        }
        ChannelCommand::Remove { id } => {
            client.delete_path(&format!("{CHANNELS}/{id}")).await?;
            eprintln!("Done: {id} removed.");
            Ok(())
        }
    }
}

/// The body without the fields left unset, so that the API's defaults apply.
fn without_nulls(mut body: Value) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    body
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only events of this type (deployment.failed)
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events about this server (name or id)
    #[arg(long)]
    server: Option<String>,
    /// Only events about this site (its id)
    #[arg(long)]
    site: Option<String>,
}

/// `slipway events`: what happened, newest first.
#[allow(clippy::print_stdout)]
pub async fn events(args: EventsArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let server_id = match &args.server {
        Some(server) => Some(
            client.item("/api/v1/servers", server).await.map_err(Missing::Server(server).describe())?["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        None => None,
    };
    let mut filters = Vec::new();
    for (key, value) in [("type", &args.event_type), ("server_id", &server_id), ("site_id", &args.site)] {
        if let Some(value) = value {
            filters.push((key, value.as_str()));
        }
    }
    let page = client.items_where("/api/v1/events", &filters).await?;
    if client_args.output == Output::Json {
        return print_json(&Value::Array(page.data));
    }
    if page.data.is_empty() {
        eprintln!("No events.");
    }
    for e in &page.data {
        let at = e["occurred_at"].as_str().unwrap_or("");
        println!(
            "{}  {:<28}  {}",
            at.get(..19).unwrap_or(at),
            e["type"].as_str().unwrap_or(""),
            e["summary"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
