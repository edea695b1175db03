//! The command-line client: `login`, `logout`, `whoami`, `token …`, `server …`, `ssh-key …`,
//! `network-rule …`, (in [`programs`]) `daemon …`, `worker …`, (in [`redirects`]) `redirect …`, and (in [`sites`]) `site …`, `deploy`, `rollback`, `deployments`,
//! `releases`, `env …`. It talks to a Slipway server over its API, with a token from the
//! credentials file or `SLIPWAY_TOKEN`.

pub mod backup_storages;
pub mod backups;
pub mod certificates;
pub mod credentials;
pub mod cron;
pub mod database_users;
pub mod databases;
pub mod errors;
pub mod follow;
pub mod notify;
pub mod programs;
pub mod redirects;
pub mod sites;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use slipway_client::{
    Client, ClientError, CreateToken, LoginRequest, NewToken, Server, ServerAction, ServerItems, Token,
};

use self::credentials::{Credentials, DEFAULT_PROFILE, Profile};
use self::errors::Missing;
use self::follow::{Echo, ended_well, follow_operation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Which saved login to use
    #[arg(long, env = "SLIPWAY_PROFILE", default_value = DEFAULT_PROFILE, global = true)]
    pub profile: String,
    /// Output format; with json, errors are JSON on stdout too: {"message", "errors", "status"}
    #[arg(long, value_enum, default_value = "human", global = true)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Slipway's URL [asked when missing]; without a scheme, http:// is assumed for localhost
    /// and loopback addresses, https:// for any other host
    #[arg(long)]
    pub url: Option<String>,
    /// Account email [asked when missing]
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of standard input instead of asking
    #[arg(long)]
    pub password_stdin: bool,
    /// One-time code, when two-factor authentication is on [asked when needed]
    #[arg(long)]
    pub otp: Option<String>,
    /// Label of the token this login creates
    #[arg(long, default_value = "slipway CLI")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List your tokens
    List,
    /// Create a token; its secret is printed once. Without --ability it gets every ability
    /// your role allows (*)
    Create {
        name: String,
        /// An ability or pattern (repeat): server:read, site:*, *:read, site:deploy …
        /// [default: *, every ability your role allows]
        #[arg(long = "ability")]
        abilities: Vec<String>,
        /// Restrict to one organization id
        #[arg(long)]
        organization: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2027-01-31T00:00:00Z)
        #[arg(long)]
        expires_at: Option<String>,
        /// Allowed client network (repeat), e.g. 203.0.113.0/24
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
    },
    /// Give a token a new secret (the old one stops working at once)
    Rotate { id: String },
    /// Revoke a token
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List your servers
    List,
    /// Register a server you already have; prints the command that authorises Slipway on it
    Create {
        name: String,
        /// IP address or host name
        #[arg(long)]
        ip: String,
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The user Slipway logs in as (root, or one with passwordless sudo)
        #[arg(long, default_value = "root")]
        user: String,
        /// Organization id (needed when you belong to several)
        #[arg(long)]
        organization: Option<String>,
        /// PHP-FPM version provisioning installs (8.1 to 8.4)
        #[arg(long)]
        php: Option<String>,
        /// Database provisioning installs: mysql, mariadb, postgres or none
        #[arg(long, default_value = "none")]
        database: String,
        /// Install Node.js
        #[arg(long)]
        node: bool,
    },
    /// Show one server
    Show {
        /// Server name or id
        server: String,
    },
    /// Rename a server, change how Slipway reaches it, or the PHP version provisioning installs
    Update {
        /// Server name or id
        server: String,
        /// A new name
        #[arg(long)]
        name: Option<String>,
        /// A new IP address or host name
        #[arg(long)]
        ip: Option<String>,
        /// A new SSH port
        #[arg(long)]
        port: Option<u16>,
        /// PHP-FPM version provisioning installs (8.1 to 8.4); provision again to apply it
        #[arg(long)]
        php: Option<String>,
    },
    /// Forget a server in Slipway (nothing on the machine is changed); asks first
    Delete {
        /// Server name or id
        server: String,
        /// Do not ask (needed when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Check that Slipway can reach the server (pins its host key at first contact)
    Verify {
        /// Server name or id
        id: String,
    },
    /// Provision the server (again), streaming the log; fails when provisioning fails
    Provision {
        /// Server name or id
        id: String,
    },
    /// Restart services (repeat --service), or reboot
    Restart {
        /// Server name or id
        id: String,
        /// nginx, php-fpm, supervisor, cron or database
        #[arg(long = "service")]
        services: Vec<String>,
        #[arg(long)]
        reboot: bool,
    },
    /// Trust the new host key a reinstalled server presents (give its fingerprint)
    AcceptHostKey { id: String, fingerprint: String },
    /// The server's operations; with --follow, stream the latest one's log until it ends
    Logs {
        id: String,
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SshKeyCommand {
    /// Keys that may log in to a server as its deploy user
    List { server: String },
    /// Let a key log in as the deploy user
    Add {
        server: String,
        name: String,
        /// The public key (or use --file)
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        key: Option<String>,
        /// A .pub file holding the key
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Remove a key from the server
    Delete { server: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum NetworkRuleCommand {
    /// A server's firewall rules
    List { server: String },
    /// Add a firewall rule (allow by default)
    Add {
        server: String,
        name: String,
        /// A port (3306) or a range (8000-8100)
        #[arg(long)]
        port: String,
        /// tcp or udp
        #[arg(long, default_value = "tcp")]
        protocol: String,
        /// any, or an address or CIDR network
        #[arg(long, default_value = "any")]
        from: String,
        /// Deny instead of allow
        #[arg(long)]
        deny: bool,
    },
    /// Remove a firewall rule
    Delete { server: String, id: String },
}

/// A client for `url`, that says on stderr when it waits out a rate limit.
fn client_for(url: &str, token: Option<String>) -> anyhow::Result<Client> {
    let url = slipway_client::base_url(url).map_err(anyhow::Error::msg)?;
    Ok(Client::new(&url, token).on_rate_limited(|wait| eprintln!("rate-limited, retrying in {} s", wait.as_secs())))
}

/// Where the token a command uses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenFrom {
    Environment,
    Profile,
}

/// The server and token to use: `SLIPWAY_URL`/`SLIPWAY_TOKEN` first, then the profile. A
/// profile's token goes only to the profile's own URL: with `SLIPWAY_URL` naming another
/// server, it is never sent there.
fn resolve(args: &ClientArgs) -> anyhow::Result<(Client, TokenFrom)> {
    let creds = Credentials::load()?;
    let profile = creds.profiles.get(&args.profile);
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let from_env = env("SLIPWAY_URL");
    let url = from_env.clone().or_else(|| profile.map(|p| p.url.clone()));
    let Some(url) = url else {
        bail!("not logged in (profile {:?}): run `slipway login`, or set SLIPWAY_URL and SLIPWAY_TOKEN", args.profile)
    };
    if let Some(token) = env("SLIPWAY_TOKEN") {
        return Ok((client_for(&url, Some(token))?, TokenFrom::Environment));
    }
    let same_server = |saved: &str| {
        let base = |u: &str| slipway_client::base_url(u).ok();
        from_env.is_none() || base(saved).is_some_and(|saved| base(&url) == Some(saved))
    };
    match profile {
        Some(p) if !same_server(&p.url) => bail!(
            "SLIPWAY_URL ({url}) is not the server profile {:?} logged in to ({}), so its token is not sent there: \
             set SLIPWAY_TOKEN for {url}, or run `slipway login --url {url} --profile NAME`",
            args.profile,
            p.url
        ),
        Some(p) if p.token.is_some() => Ok((client_for(&url, p.token.clone())?, TokenFrom::Profile)),
        _ => bail!(
            "not logged in (profile {:?}): run `slipway login`, or set SLIPWAY_URL and SLIPWAY_TOKEN",
            args.profile
        ),
    }
}

/// A client for the server and token to use (see [`resolve`]).
pub(crate) fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    Ok(resolve(args)?.0)
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{prompt} is needed: pass it as a flag (standard input is not a terminal)");
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Goes on when the user confirms `what` (or gave `--yes`); refuses without a terminal to ask on.
fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: pass --yes to confirm (standard input is not a terminal, so there is no one to ask)");
    }
    let answer = ask(&format!("{what}? [y/N]"))?;
    if matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled; nothing was changed")
    }
}

/// The first `n` characters.
pub(crate) fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A time as `2025-01-31 12:00:00` (UTC), or `-`.
pub(crate) fn when(at: Option<&chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
}

#[allow(clippy::print_stdout)]
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn login(args: LoginArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let mut creds = Credentials::load()?;
    let saved_url = creds.profiles.get(&client_args.profile).map(|p| p.url.clone());
    let url = match args.url.or(saved_url) {
        Some(url) => url,
        None => ask("Slipway URL (e.g. https://slipway.example.com)")?,
    };
    let url = slipway_client::base_url(&url).map_err(anyhow::Error::msg)?;
    let email = match args.email {
        Some(e) => e,
        None => ask("Email")?,
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")?
    } else {
        bail!("the password is needed: use --password-stdin (standard input is not a terminal)");
    };
    let client = client_for(&url, None)?;
    let mut request = LoginRequest { email, password, otp: args.otp, name: Some(args.name), abilities: None };
    let token = match client.login(&request).await {
        Err(e) if e.field_error("otp").is_some() && request.otp.is_none() && std::io::stdin().is_terminal() => {
            request.otp = Some(ask("One-time code")?);
            client.login(&request).await?
        }
        other => other?,
    };
    creds
        .profiles
        .insert(client_args.profile.clone(), Profile { url: url.clone(), token: Some(token.plain_text_token.clone()) });
    let path = creds.save()?;
    match client_args.output {
        Output::Json => print_json(
            &serde_json::json!({"profile": client_args.profile, "url": url, "token": token.token, "credentials_file": path}),
        )?,
        Output::Human => println!(
            "Logged in to {url} as {} (profile {:?}; token saved in {}).",
            request.email,
            client_args.profile,
            path.display()
        ),
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn logout(client_args: &ClientArgs) -> anyhow::Result<()> {
    let (client, from) = resolve(client_args)?;
    match client.logout().await {
        Ok(()) => {}
        // Already revoked or expired: forgetting it locally is all that is left to do.
        Err(ClientError::Api { status: 401, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // The profile forgets its token only when that is the one revoked: a token given in
    // SLIPWAY_TOKEN is not the profile's, which stays logged in.
    if from == TokenFrom::Profile {
        let mut creds = Credentials::load()?;
        if let Some(profile) = creds.profiles.get_mut(&client_args.profile) {
            profile.token = None;
            creds.save()?;
        }
    }
    let (message, revoked) = match from {
        TokenFrom::Profile => ("Logged out; the token is revoked.".to_string(), "profile"),
        TokenFrom::Environment => (
            format!("The token in SLIPWAY_TOKEN is revoked; profile {:?} keeps its own login.", client_args.profile),
            "SLIPWAY_TOKEN",
        ),
    };
    if client_args.output == Output::Human {
        println!("{message}");
    } else {
        print_json(&serde_json::json!({"logged_out": true, "revoked": revoked}))?;
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn whoami(client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let token = client.current_token().await?;
    let user = match client.user().await {
        Ok(user) => Some(user),
        Err(ClientError::Api { status: 403, .. }) => None, // an organization token has no user
        Err(e) => return Err(e.into()),
    };
    match client_args.output {
        Output::Json => print_json(&serde_json::json!({"url": client.base_url(), "user": user, "token": token}))?,
        Output::Human => {
            match &user {
                Some(u) => println!("{} <{}> on {}", u.name, u.email, client.base_url()),
                None => println!("Organization token on {}", client.base_url()),
            }
            println!("token: {} ({}), abilities: {}", token.name, token.id, token.abilities.join(" "));
            if let Some(at) = &token.expires_at {
                println!("expires: {at}");
            }
            for org in user.iter().flat_map(|u| &u.organizations) {
                println!("organization: {} ({}) as {}", org.name, org.id, org.role);
            }
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_new_token(token: &NewToken, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => print_json(token),
        Output::Human => {
            println!("{}", token.plain_text_token);
            eprintln!(
                "Token {:?} ({}). This secret is shown only once; store it now.",
                token.token.name, token.token.id
            );
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_tokens(tokens: &[Token]) {
    println!("{:<26}  {:<24}  {:<28}  {:<20}  LAST USED", "ID", "NAME", "ABILITIES", "EXPIRES");
    for t in tokens {
        let abilities = t.abilities.join(",");
        let expires = match (&t.expires_at, t.expired) {
            (_, true) => "expired".to_string(),
            (Some(at), false) => at.chars().take(19).collect(),
            (None, false) => "never".to_string(),
        };
        let used =
            t.last_used_at.as_deref().map(|a| a.chars().take(19).collect::<String>()).unwrap_or_else(|| "never".into());
        let name: String = t.name.chars().take(24).collect();
        println!(
            "{:<26}  {:<24}  {:<28}  {:<20}  {used}",
            t.id,
            name,
            abilities.chars().take(28).collect::<String>(),
            expires
        );
    }
}

pub async fn token(command: TokenCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    match command {
        TokenCommand::List => {
            let page = client.tokens(1).await?;
            match client_args.output {
                Output::Json => print_json(&page)?,
                Output::Human => print_tokens(&page.data),
            }
        }
        TokenCommand::Create { name, abilities, organization, expires_at, allowed_ips } => {
            let every = abilities.is_empty();
            let request = CreateToken {
                name,
                abilities: (!every).then_some(abilities),
                organization_id: organization,
                expires_at,
                allowed_ips: (!allowed_ips.is_empty()).then_some(allowed_ips),
            };
            print_new_token(&client.create_token(&request).await?, client_args.output)?;
            if every && client_args.output == Output::Human {
                eprintln!("It has every ability your role allows (*); give --ability (repeat) to limit it.");
            }
        }
        TokenCommand::Rotate { id } => {
            let current = client.current_token().await?;
            let rotated = client.rotate_token(&id).await.map_err(Missing::Token(&id).describe())?;
            // Rotating the token this client logs in with: keep the saved login working.
            if current.id == id && std::env::var("SLIPWAY_TOKEN").is_err() {
                let mut creds = Credentials::load()?;
                if let Some(profile) = creds.profiles.get_mut(&client_args.profile) {
                    profile.token = Some(rotated.plain_text_token.clone());
                    creds.save()?;
                    eprintln!(
                        "This was the token of profile {:?}; the saved login now uses the new secret.",
                        client_args.profile
                    );
                }
            }
            print_new_token(&rotated, client_args.output)?;
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await.map_err(Missing::Token(&id).describe())?;
            match client_args.output {
                Output::Json => print_json(&serde_json::json!({"revoked": id}))?,
                Output::Human => eprintln!("Token {id} is revoked."),
            }
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_server(server: &Server) {
    let s = server;
    println!("{} {} ({}@{}:{})", s.id, s.name, s.ssh_user, s.ip_address, s.ssh_port);
    println!("status: {}{}", s.status, s.status_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default());
    for (label, value) in [("os", &s.os), ("php", &s.php_version), ("host key", &s.host_key_fingerprint)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            println!("{label}: {value}");
        }
    }
    if s.database_type != "none" && !s.database_type.is_empty() {
        println!("database: {}", s.database_type);
    }
    if s.sites_count > 0 {
        println!("sites: {}", s.sites_count);
    }
    if let Some(fp) = &s.offered_host_key_fingerprint {
        println!("offered host key: {fp} (accept with `slipway server accept-host-key ID {fp}` if it was reinstalled)");
    }
}

#[allow(clippy::print_stdout)]
pub async fn server(command: ServerCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let json = client_args.output == Output::Json;
    match command {
        ServerCommand::List => {
            let page = client.servers(1).await?;
            if json {
                return print_json(&page);
            }
            println!("{:<26}  {:<20}  {:<24}  {:<12}  OS", "ID", "NAME", "ADDRESS", "STATUS");
            for s in &page.data {
                let address = format!("{}:{}", s.ip_address, s.ssh_port);
                println!(
                    "{:<26}  {:<20}  {:<24}  {:<12}  {}",
                    s.id,
                    cut(&s.name, 20),
                    address,
                    s.status,
                    s.os.as_deref().unwrap_or("-")
                );
            }
        }
        ServerCommand::Create { name, ip, port, user, organization, php, database, node } => {
            let mut body = serde_json::json!({
                "name": name, "provider": "custom", "ip_address": ip, "ssh_port": port, "ssh_user": user,
                "php_version": php, "database_type": database, "node": node,
            });
            if let Some(org) = organization {
                body["organization_id"] = org.into();
            }
            let created = client.create_server(&body).await?;
            if json {
                return print_json(&created);
            }
            print_server(&created.server);
            println!(
                "\nAuthorise Slipway on the server by running, as {user} there:\n\n  {}\n",
                created.authorization.command
            );
            println!("then: slipway server verify {name}");
        }
        ServerCommand::Show { server } => {
            let found = client.server(&server).await.map_err(Missing::Server(&server).describe())?;
            if json {
                return print_json(&found);
            }
            print_server(&found);
            // Until Slipway has reached the server, the way to let it in is what matters.
            if found.host_key_fingerprint.is_none() {
                let authorization = client.server_authorization(&found.id).await?;
                println!(
                    "\nAuthorise Slipway on the server by running, as {} there:\n\n  {}\n",
                    found.ssh_user, authorization.command
                );
                println!("then: slipway server verify {}", found.name);
            }
        }
        ServerCommand::Update { server, name, ip, port, php } => {
            let mut body = serde_json::Map::new();
            let fields = [
                ("name", name.map(Into::into)),
                ("ip_address", ip.map(Into::into)),
                ("ssh_port", port.map(Into::into)),
                ("php_version", php.map(Into::into)),
            ];
            body.extend(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))));
            if body.is_empty() {
                bail!("nothing to change: give --name, --ip, --port or --php");
            }
            let php_changed = body.contains_key("php_version");
            let updated =
                client.update_server(&server, &body.into()).await.map_err(Missing::Server(&server).describe())?;
            if json {
                return print_json(&updated);
            }
            print_server(&updated);
            if php_changed {
                eprintln!("Provision the server again to install that PHP version: slipway server provision {server}");
            }
        }
        ServerCommand::Delete { server, yes } => {
            let found = client.server(&server).await.map_err(Missing::Server(&server).describe())?;
            let label = format!("Forget server {} ({}, {})", found.name, found.id, found.ip_address);
            confirm(&label, yes)?;
            client.delete_server(&found.id).await.map_err(Missing::Server(&server).describe())?;
            if json {
                return print_json(&found);
            }
            eprintln!(
                "Server {} is forgotten. Nothing on the machine was changed: remove Slipway's key from its \
                 authorized_keys if it should no longer get in.",
                found.name
            );
        }
        ServerCommand::Verify { id } => {
            run_server_action(&client, &id, ServerAction::Verify, serde_json::json!({}), client_args.output).await?;
        }
        ServerCommand::Provision { id } => {
            run_server_action(&client, &id, ServerAction::Provision, serde_json::json!({}), client_args.output).await?;
        }
        ServerCommand::Restart { id, services, reboot } => {
            let body = serde_json::json!({"services": services, "reboot": reboot});
            run_server_action(&client, &id, ServerAction::Restart, body, client_args.output).await?;
        }
        ServerCommand::AcceptHostKey { id, fingerprint } => {
            let body = serde_json::json!({"fingerprint": fingerprint});
            run_server_action(&client, &id, ServerAction::AcceptHostKey, body, client_args.output).await?;
        }
        ServerCommand::Logs { id, follow } => {
            let ops = client.server_operations(&id).await.map_err(Missing::Server(&id).describe())?;
            if follow {
                let latest = ops.data.first().ok_or_else(|| anyhow::anyhow!("the server has no operations yet"))?;
                let op = follow_operation(&client, &latest.id, client_args.output, Echo::Always).await?;
                return follow::finish(&op, client_args.output);
            }
            if json {
                return print_json(&ops);
            }
            for op in &ops.data {
                println!(
                    "{}  {:<16}  {:<10}  {}  {}",
                    op.id,
                    op.kind,
                    op.status,
                    when(Some(&op.created_at)),
                    op.failure_reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// Starts an action, streams its operation's log, and prints the server afterwards; fails when
/// the operation does not succeed.
pub(crate) async fn run_server_action(
    client: &Client,
    id: &str,
    action: ServerAction,
    body: serde_json::Value,
    output: Output,
) -> anyhow::Result<()> {
    let op = client.server_action(id, action, &body).await.map_err(Missing::Server(id).describe())?;
    let op = follow_operation(client, &op.id, output, Echo::Always).await?;
    follow::finish(&op, output)?;
    if output == Output::Human {
        print_server(&*client.server(id).await?);
    }
    Ok(())
}

/// Waits for the operation a create or delete queued (if any) and says how it ended.
pub(crate) async fn wait_for_change(client: &Client, item: &serde_json::Value, output: Output) -> anyhow::Result<()> {
    match item["operation_id"].as_str() {
        Some(op) => ended_well(&*follow_operation(client, op, output, Echo::Always).await?),
        None => {
            if output == Output::Human {
                eprintln!("The server is not provisioned yet; provisioning applies this.");
            }
            Ok(())
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_items(kind: ServerItems, items: &[serde_json::Value]) {
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    match kind {
        ServerItems::SshKeys => {
            println!("{:<26}  {:<20}  {:<12}  FINGERPRINT", "ID", "NAME", "STATUS");
            for k in items {
                let name: String = s(k, "name").chars().take(20).collect();
                println!("{:<26}  {name:<20}  {:<12}  {}", s(k, "id"), s(k, "status"), s(k, "fingerprint"));
            }
        }
        ServerItems::Daemons => {
            println!("{:<26}  {:<20}  {:<11}  {:<10}  REASON", "ID", "NAME", "STATUS", "USER");
            for d in items {
                let name: String = s(d, "name").chars().take(20).collect();
                println!(
                    "{:<26}  {name:<20}  {:<11}  {:<10}  {}",
                    s(d, "id"),
                    s(d, "status"),
                    s(d, "user"),
                    s(d, "status_reason")
                );
            }
        }
        ServerItems::Crontabs => cron::print_jobs(items),
        ServerItems::Databases => databases::print_databases(items),
        ServerItems::NetworkRules => {
            println!(
                "{:<26}  {:<20}  {:<6}  {:<12}  {:<5}  {:<18}  STATUS",
                "ID", "NAME", "ACTION", "PORT", "PROTO", "FROM"
            );
            for r in items {
                let name: String = s(r, "name").chars().take(20).collect();
                println!(
                    "{:<26}  {name:<20}  {:<6}  {:<12}  {:<5}  {:<18}  {}",
                    s(r, "id"),
                    s(r, "action"),
                    s(r, "port"),
                    s(r, "protocol"),
                    s(r, "from"),
                    s(r, "status")
                );
            }
        }
    }
}

/// List, add or delete an item kept on a server, waiting for the change to be applied.
pub(crate) async fn server_items(
    client_args: &ClientArgs,
    kind: ServerItems,
    list: Option<String>,
    add: Option<(String, serde_json::Value)>,
    delete: Option<(String, String)>,
) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    if let Some(server) = list {
        let page = client.server_items(&server, kind).await.map_err(Missing::Server(&server).describe())?;
        if output == Output::Json {
            return print_json(&page);
        }
        print_items(kind, &page.data);
        return Ok(());
    }
    let item = match (add, delete) {
        (Some((server, body)), _) => {
            client.create_server_item(&server, kind, &body).await.map_err(Missing::Server(&server).describe())?
        }
        (_, Some((server, id))) => client
            .delete_server_item(&server, kind, &id)
            .await
            .map_err(Missing::Item { server: &server, kind: kind.noun(), id: &id }.describe())?,
        _ => unreachable!("one of list, add or delete"),
    };
    wait_for_change(&client, &item, output).await?;
    if output == Output::Json {
        print_json(&item)?;
    } else {
        eprintln!("Done: {} {}.", item["id"].as_str().unwrap_or(""), item["name"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub async fn ssh_key(command: SshKeyCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let kind = ServerItems::SshKeys;
    match command {
        SshKeyCommand::List { server } => server_items(client_args, kind, Some(server), None, None).await,
        SshKeyCommand::Add { server, name, key, file } => {
            let key = match (key, file) {
                (Some(key), _) => key,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the key from {}", path.display()))?,
                (None, None) => bail!("give the key with --key or --file"),
            };
            let body = serde_json::json!({"name": name, "public_key": key.trim()});
            server_items(client_args, kind, None, Some((server, body)), None).await
        }
        SshKeyCommand::Delete { server, id } => server_items(client_args, kind, None, None, Some((server, id))).await,
    }
}

pub async fn network_rule(command: NetworkRuleCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let kind = ServerItems::NetworkRules;
    match command {
        NetworkRuleCommand::List { server } => server_items(client_args, kind, Some(server), None, None).await,
        NetworkRuleCommand::Add { server, name, port, protocol, from, deny } => {
            let action = if deny { "deny" } else { "allow" };
            let body =
                serde_json::json!({"name": name, "port": port, "protocol": protocol, "from": from, "action": action});
            server_items(client_args, kind, None, Some((server, body)), None).await
        }
        NetworkRuleCommand::Delete { server, id } => {
            server_items(client_args, kind, None, None, Some((server, id))).await
        }
    }
}

/// Runs a client command on a small runtime.
pub fn run<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future)
}
