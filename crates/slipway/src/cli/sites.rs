//! Sites, deployments and environment variables: `site …`, `deploy`, `rollback`, `deployments`,
//! `releases` and `env …`. A site is named by its id or its domain.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use slipway_client::{Accepted, Client};

use super::{ClientArgs, Output, connect, ended_well, follow_operation, print_json};

/// A site on a server.
#[derive(Debug, Args)]
pub struct SiteRef {
    /// Server id
    pub server: String,
    /// Site id or domain
    pub site: String,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum SiteCommand {
    /// A server's sites
    List { server: String },
    /// Create a site and wait until it is installed on the server; deploy it next
    Create {
        /// Server id
        server: String,
        /// The name the site answers to, e.g. shop.example.com
        domain: String,
        /// What the site runs
        #[arg(long = "type", value_parser = ["static", "php", "laravel", "node", "generic"])]
        project_type: String,
        /// Git URL the server fetches (https://…, ssh://…, git@host:path, git://…)
        #[arg(long)]
        repo: Option<String>,
        /// Branch to deploy [default: main]
        #[arg(long)]
        branch: Option<String>,
        /// Served directory inside a release (public, dist …)
        #[arg(long)]
        web_dir: Option<String>,
        /// Another name nginx answers to (repeat)
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// The command that runs a node or generic app; it must listen on $PORT
        #[arg(long)]
        command: Option<String>,
        /// Path the health check requests before a release goes live [default: /]
        #[arg(long)]
        health_path: Option<String>,
        /// A file holding the script each release runs before it goes live
        #[arg(long)]
        deploy_script_file: Option<PathBuf>,
        /// A path kept across releases, linked from shared/ (repeat) [default: storage for laravel]
        #[arg(long = "shared")]
        shared_paths: Vec<String>,
        /// Deploy in place into one working tree instead of releases with an atomic switch
        /// (lighter, but a deploy is not atomic and there is no rollback)
        #[arg(long)]
        in_place: bool,
    },
    /// Show one site
    Show(SiteRef),
    /// Remove a site from the server and from Slipway
    Delete(SiteRef),
    /// Make nginx answer every request with 503 and a maintenance page
    Suspend(SiteRef),
    /// Serve a suspended site again
    Resume(SiteRef),
    /// Convert an in-place site to releases with an atomic switch, without downtime (streams the
    /// conversion's log)
    EnableZeroDowntime(DeployArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub site: SiteRef,
    /// Print the deployment id and return at once instead of streaming the log
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub site: SiteRef,
    /// The release to go back to (see `slipway releases`) [default: the one before the live one]
    pub release: Option<String>,
    /// Print the deployment id and return at once instead of streaming the log
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// The site's variables; values only with --reveal (printed as a .env file)
    List {
        #[command(flatten)]
        site: SiteRef,
        #[arg(long)]
        reveal: bool,
    },
    /// Set variables; they reach the server with the next deploy
    Set {
        #[command(flatten)]
        site: SiteRef,
        /// KEY=VALUE (repeat); quote the whole argument when the value has spaces
        #[arg(value_name = "KEY=VALUE", required_unless_present = "from_file")]
        pairs: Vec<String>,
        /// Read variables from a .env file (KEY=VALUE arguments win over it)
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Deploy once they are set, streaming the log
        #[arg(long)]
        deploy: bool,
    },
    /// Import the variables in the .env on the server (replacing those with the same keys)
    Pull {
        #[command(flatten)]
        site: SiteRef,
    },
    /// Remove a variable
    Unset {
        #[command(flatten)]
        site: SiteRef,
        key: String,
        /// Deploy once it is removed, streaming the log
        #[arg(long)]
        deploy: bool,
    },
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// The first `n` characters.
fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A time as `2025-01-31 12:00:00`, or `-`.
fn when(v: &Value) -> String {
    v.as_str().map(|t| cut(t, 19).replace('T', " ")).unwrap_or_else(|| "-".into())
}

/// The site's id: given as is, or looked up by domain (ids never contain a dot).
async fn site_id(client: &Client, site: &SiteRef) -> anyhow::Result<String> {
    if !site.site.contains('.') {
        return Ok(site.site.clone());
    }
    let mut page = 1;
    loop {
        let sites = client.sites(&site.server, page).await?;
        if let Some(found) = sites.data.iter().find(|s| s["domain"].as_str() == Some(site.site.as_str())) {
            return Ok(text(found, "id"));
        }
        if sites.meta["last_page"].as_u64().unwrap_or(0) <= u64::from(page) {
            bail!("server {} has no site with the domain {}; see `slipway site list {0}`", site.server, site.site);
        }
        page += 1;
    }
}

#[allow(clippy::print_stdout)]
fn print_site(site: &Value) {
    println!("{} {} ({})", text(site, "id"), text(site, "domain"), text(site, "project_type"));
    let reason = site["status_reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
    let suspended = if site["suspended"] == true { ", suspended" } else { "" };
    println!("status: {}{reason}{suspended}", text(site, "status"));
    if let Some(aliases) = site["aliases"].as_array().filter(|a| !a.is_empty()) {
        let names: Vec<&str> = aliases.iter().filter_map(Value::as_str).collect();
        println!("aliases: {}", names.join(" "));
    }
    let repo = &site["repository"];
    println!("repository: {} ({})", repo["url"].as_str().unwrap_or("none"), text(repo, "branch"));
    println!("web directory: {}", text(site, "web_directory"));
    if let Some(command) = site["app_command"].as_str() {
        println!("command: {command}");
    }
    if let Some(status) = site["deployment_status"].as_str() {
        println!("last deployment: {status} at {}", when(&site["last_deployed_at"]));
    }
    if let Some(release) = site["current_release"].as_str() {
        println!("live release: {release}");
    }
    if site["zero_downtime"] == false {
        println!("deploys: in place (see `slipway site enable-zero-downtime`)");
    }
    if let Some(shared) = site["shared_paths"].as_array().filter(|a| !a.is_empty()) {
        let paths: Vec<&str> = shared.iter().filter_map(Value::as_str).collect();
        println!("shared paths: {}", paths.join(" "));
    }
}

/// Follows the operation that applies a site change; fails when it does not succeed.
async fn wait_for_site(client: &Client, site: &Value, output: Output) -> anyhow::Result<()> {
    let op = site["operation_id"].as_str().context("the API did not say which operation applies the change")?;
    ended_well(&follow_operation(client, op, output).await?)
}

#[allow(clippy::print_stdout)]
pub async fn site(command: SiteCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    match command {
        SiteCommand::List { server } => {
            let page = client.sites(&server, 1).await?;
            if output == Output::Json {
                return print_json(&page);
            }
            println!(
                "{:<26}  {:<32}  {:<8}  {:<10}  {:<10}  LAST DEPLOYED",
                "ID", "DOMAIN", "TYPE", "STATUS", "DEPLOY"
            );
            for s in &page.data {
                let status = if s["suspended"] == true { "suspended".to_string() } else { text(s, "status") };
                println!(
                    "{:<26}  {:<32}  {:<8}  {status:<10}  {:<10}  {}",
                    text(s, "id"),
                    cut(&text(s, "domain"), 32),
                    text(s, "project_type"),
                    s["deployment_status"].as_str().unwrap_or("-"),
                    when(&s["last_deployed_at"])
                );
            }
        }
        SiteCommand::Create {
            server,
            domain,
            project_type,
            repo,
            branch,
            web_dir,
            aliases,
            command,
            health_path,
            deploy_script_file,
            shared_paths,
            in_place,
        } => {
            let deploy_script = match deploy_script_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read the deploy script from {}", path.display()))?,
                ),
                None => None,
            };
            let mut body = json!({
                "domain": domain, "project_type": project_type, "repository_url": repo, "branch": branch,
                "web_directory": web_dir, "aliases": aliases, "app_command": command,
                "health_check_path": health_path, "deploy_script": deploy_script,
                "zero_downtime": !in_place,
            });
            if !shared_paths.is_empty() {
                body["shared_paths"] = json!(shared_paths);
            }
            let created = client.create_site(&server, &body).await?;
            wait_for_site(&client, &created, output).await?;
            let site = client.site(&server, &text(&created, "id")).await?;
            if output == Output::Json {
                return print_json(&site);
            }
            print_site(&site);
            println!("\nDeploy it with: slipway deploy {server} {}", text(&site, "id"));
        }
        SiteCommand::Show(site) => {
            let site = client.site(&site.server, &site_id(&client, &site).await?).await?;
            if output == Output::Json { print_json(&site)? } else { print_site(&site) }
        }
        SiteCommand::Delete(site) => {
            let removing = client.delete_site(&site.server, &site_id(&client, &site).await?).await?;
            wait_for_site(&client, &removing, output).await?;
            if output == Output::Json {
                return print_json(&removing);
            }
            eprintln!("Site {} ({}) is removed.", text(&removing, "domain"), text(&removing, "id"));
        }
        SiteCommand::Suspend(site) => suspend(&client, &site, true, output).await?,
        SiteCommand::Resume(site) => suspend(&client, &site, false, output).await?,
        SiteCommand::EnableZeroDowntime(args) => {
            let id = site_id(&client, &args.site).await?;
            match client.enable_zero_downtime(&args.site.server, &id).await? {
                Some(accepted) => {
                    run_deployment(&client, &args.site.server, &id, accepted, args.no_follow, output).await?
                }
                None if output == Output::Json => print_json(&client.site(&args.site.server, &id).await?)?,
                None => eprintln!("The site was never deployed: it now deploys as releases with an atomic switch."),
            }
        }
    }
    Ok(())
}

async fn suspend(client: &Client, site: &SiteRef, suspended: bool, output: Output) -> anyhow::Result<()> {
    let id = site_id(client, site).await?;
    let changed = client.suspend_site(&site.server, &id, suspended).await?;
    wait_for_site(client, &changed, output).await?;
    let now = client.site(&site.server, &id).await?;
    if output == Output::Json {
        return print_json(&now);
    }
    print_site(&now);
    Ok(())
}

pub async fn deploy(args: DeployArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let id = site_id(&client, &args.site).await?;
    let accepted = client.deploy(&args.site.server, &id, "cli").await?;
    run_deployment(&client, &args.site.server, &id, accepted, args.no_follow, client_args.output).await
}

pub async fn rollback(args: RollbackArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let id = site_id(&client, &args.site).await?;
    let accepted = client.rollback(&args.site.server, &id, args.release.as_deref()).await?;
    run_deployment(&client, &args.site.server, &id, accepted, args.no_follow, client_args.output).await
}

/// Says that a deployment was queued, then (unless `no_follow`) streams it to its end and fails
/// unless it succeeded.
#[allow(clippy::print_stdout)]
async fn run_deployment(
    client: &Client,
    server: &str,
    site: &str,
    accepted: Accepted<Value>,
    no_follow: bool,
    output: Output,
) -> anyhow::Result<()> {
    let id = text(&accepted.data, "id");
    if output == Output::Human {
        eprintln!("{} (deployment {id})", accepted.message);
    }
    if no_follow {
        if output == Output::Json {
            print_json(&accepted.data)?
        } else {
            println!("{id}")
        }
        return Ok(());
    }
    let deployment = follow_deployment(client, server, site, &id, output).await?;
    if output == Output::Json {
        print_json(&deployment)?;
    }
    deployed_well(&deployment)?;
    if output == Output::Human {
        let duration = deployment["duration"].as_f64().map(|d| format!(" in {d:.1}s")).unwrap_or_default();
        println!("Deployed {}{duration}.", describe_commit(&deployment));
    }
    Ok(())
}

/// `abc1234 commit message`, or what a rollback went back to.
fn describe_commit(d: &Value) -> String {
    match (d["commit_sha"].as_str(), d["release"].as_str()) {
        (Some(sha), _) => {
            format!("{} {}", cut(sha, 7), d["commit_message"].as_str().unwrap_or("").lines().next().unwrap_or(""))
        }
        (None, Some(release)) => format!("release {release}"),
        (None, None) => "-".into(),
    }
}

fn deployed_well(d: &Value) -> anyhow::Result<()> {
    let reason = d["failure_reason"].as_str().unwrap_or("no reason given");
    match d["status"].as_str() {
        Some("succeeded") => Ok(()),
        Some("cancelled") => bail!("deployment {} was cancelled: {reason}", text(d, "id")),
        _ => bail!(
            "deployment {} failed at the {} step: {reason}",
            text(d, "id"),
            d["failed_step"].as_str().unwrap_or("unknown")
        ),
    }
}

/// Prints a deployment's log as it grows until the deployment ends; returns its final state.
/// On a terminal, a status line on stderr shows the current step and the time so far.
#[allow(clippy::print_stdout)]
async fn follow_deployment(
    client: &Client,
    server: &str,
    site: &str,
    id: &str,
    output: Output,
) -> anyhow::Result<Value> {
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let mut after = 0;
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        // The state first: the whole log is stored before a deployment says it ended.
        let deployment = client.deployment(server, site, id).await?;
        loop {
            let lines = client.deployment_log(server, site, id, after).await?;
            progress.clear();
            for line in &lines {
                after = line["seq"].as_i64().unwrap_or(after);
                let text = line["line"].as_str().unwrap_or_default();
                progress.saw(text);
                if output == Output::Human {
                    if line["stream"] == "stderr" { eprintln!("{text}") } else { println!("{text}") }
                }
            }
            if lines.len() < 1000 {
                break;
            }
        }
        let status = deployment["status"].as_str().unwrap_or("");
        if matches!(status, "succeeded" | "failed" | "cancelled") {
            return Ok(deployment);
        }
        progress.show(status);
    }
}

/// A status line on a terminal: `[12s] running: fetching main`.
struct Progress {
    on: bool,
    shown: bool,
    step: String,
    started: Instant,
}

impl Progress {
    fn new(on: bool) -> Self {
        Progress { on, shown: false, step: String::new(), started: Instant::now() }
    }

    /// Notes the step a log line starts.
    fn saw(&mut self, line: &str) {
        if let Some(step) = line.strip_prefix("==> ") {
            self.step = step.to_string();
        }
    }

    fn show(&mut self, status: &str) {
        if self.on {
            let seconds = self.started.elapsed().as_secs();
            let step = if self.step.is_empty() { String::new() } else { format!(": {}", cut(&self.step, 60)) };
            eprint!("\r\x1b[2K[{seconds}s] {status}{step}");
            let _ = std::io::stderr().flush();
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

#[allow(clippy::print_stdout)]
pub async fn deployments(site: SiteRef, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let page = client.deployments(&site.server, &site_id(&client, &site).await?, 1).await?;
    if client_args.output == Output::Json {
        return print_json(&page);
    }
    println!(
        "{:<26}  {:<9}  {:<8}  {:<40}  {:<19}  {:>8}  FAILED STEP",
        "ID", "STATUS", "TRIGGER", "COMMIT", "STARTED", "DURATION"
    );
    for d in &page.data {
        let duration = d["duration"].as_f64().map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
        println!(
            "{:<26}  {:<9}  {:<8}  {:<40}  {:<19}  {duration:>8}  {}",
            text(d, "id"),
            text(d, "status"),
            text(d, "trigger"),
            cut(&describe_commit(d), 40),
            when(&d["started_at"]),
            d["failed_step"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn releases(site: SiteRef, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let releases = client.releases(&site.server, &site_id(&client, &site).await?).await?;
    if client_args.output == Output::Json {
        return print_json(&releases);
    }
    println!("  {:<26}  {:<19}  COMMIT", "RELEASE", "CREATED");
    for r in &releases {
        let mark = if r["current"] == true { "*" } else { " " };
        let commit = format!(
            "{} {}",
            cut(r["commit_sha"].as_str().unwrap_or("-"), 7),
            r["commit_message"].as_str().unwrap_or("").lines().next().unwrap_or("")
        );
        println!("{mark} {:<26}  {:<19}  {commit}", text(r, "id"), when(&r["created_at"]));
    }
    println!("\n* live");
    Ok(())
}

/// `KEY=VALUE` arguments (split at the first `=`) over the variables of a .env file.
fn variables(pairs: &[String], from_file: Option<&PathBuf>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    if let Some(path) = from_file {
        let content = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let parsed = slipway_core::dotenv::parse(&content).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        vars.extend(parsed);
    }
    for pair in pairs {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => vars.insert(key.to_string(), value.to_string()),
            _ => bail!(
                "{pair:?} is not KEY=VALUE: write the name, an equals sign and the value, e.g. APP_ENV=production"
            ),
        };
    }
    if vars.is_empty() {
        bail!("no variables to set: give KEY=VALUE arguments or a --from-file with assignments");
    }
    Ok(vars)
}

impl EnvCommand {
    fn site(&self) -> &SiteRef {
        match self {
            EnvCommand::List { site, .. }
            | EnvCommand::Set { site, .. }
            | EnvCommand::Unset { site, .. }
            | EnvCommand::Pull { site } => site,
        }
    }
}

#[allow(clippy::print_stdout)]
pub async fn env(command: EnvCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    let server = command.site().server.clone();
    let id = site_id(&client, command.site()).await?;
    let (change, deploy) = match command {
        EnvCommand::List { reveal, .. } => {
            let vars = client.env_vars(&server, &id, reveal).await?;
            if output == Output::Json {
                return print_json(&vars);
            }
            for v in &vars {
                match v["value"].as_str() {
                    Some(value) => println!("{}", slipway_core::dotenv::line(&text(v, "key"), value)),
                    None => println!("{:<40}  updated {}", text(v, "key"), when(&v["updated_at"])),
                }
            }
            if !reveal && !vars.is_empty() {
                eprintln!("Values are hidden; --reveal prints them as a .env file.");
            }
            return Ok(());
        }
        EnvCommand::Set { pairs, from_file, deploy, .. } => {
            let vars = variables(&pairs, from_file.as_ref())?;
            let change = client.set_env_vars(&server, &id, &vars, deploy).await?;
            if output == Output::Human {
                eprintln!("Set {}.", vars.keys().cloned().collect::<Vec<_>>().join(", "));
            }
            (change, deploy)
        }
        EnvCommand::Pull { .. } => {
            let op = client.pull_env(&server, &id).await?;
            // The operation's log never holds values; it says how many were imported.
            return ended_well(&follow_operation(&client, &op, output).await?);
        }
        EnvCommand::Unset { key, deploy, .. } => {
            let change = client.unset_env_var(&server, &id, &key, deploy).await?;
            if output == Output::Human {
                eprintln!("Removed {key}.");
            }
            (change, deploy)
        }
    };
    match &change["deployment"] {
        Value::Null => {
            if output == Output::Json {
                print_json(&change)?;
            } else if deploy {
                eprintln!("The site has no repository to deploy yet; the change applies with its first deploy.");
            } else {
                eprintln!("It applies with the next deploy (or pass --deploy).");
            }
            Ok(())
        }
        deployment => {
            let accepted = Accepted { message: "Deploying the change.".into(), data: deployment.clone() };
            run_deployment(&client, &server, &id, accepted, false, output).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign_over_a_dotenv_file() {
        let dir = std::env::temp_dir().join(format!("slipway-env-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".env");
        std::fs::write(&file, "# comment\nA=\"from file\"\nB=kept\n").unwrap();
        let pairs = ["A=x=y".to_string(), "EMPTY=".to_string()];
        let vars = variables(&pairs, Some(&file)).unwrap();
        let expected = [("A", "x=y"), ("B", "kept"), ("EMPTY", "")];
        assert_eq!(vars, expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let _ = std::fs::remove_dir_all(&dir);

        for bad in ["NOEQUALS", "=value"] {
            let e = variables(&[bad.to_string()], None).unwrap_err().to_string();
            assert!(e.contains("is not KEY=VALUE"), "{e}");
        }
        assert!(variables(&[], None).is_err());
    }
}
