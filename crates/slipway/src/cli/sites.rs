//! Sites, deployments and environment variables: `site …`, `deploy`, `rollback`, `deployments`,
//! `releases` and `env …`. A site is named by its id or its domain.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use slipway_client::{Accepted, Client, ClientError, Deployment, Resource, Site};

use super::errors::Missing;
use super::follow::{Echo, ended_well, follow_deployment, follow_operation};
use super::{ClientArgs, Output, confirm, connect, cut, print_json, when};

/// A site on a server.
#[derive(Debug, Args)]
pub struct SiteRef {
    /// Server name or id
    pub server: String,
    /// Site domain or id
    pub site: String,
}

impl SiteRef {
    /// For `map_err`: a 404 says which site was not found.
    pub(crate) fn missing(&self) -> impl FnOnce(ClientError) -> ClientError {
        Missing::Site { server: &self.server, site: &self.site }.describe()
    }
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum SiteCommand {
    /// A server's sites
    List {
        /// Server name or id
        server: String,
    },
    /// Create a site and wait until it is installed on the server; deploy it next
    Create {
        /// Server name or id
        server: String,
        /// The name the site answers to, e.g. shop.example.com
        domain: String,
        /// What the site runs
        #[arg(long = "type", value_parser = ["static", "php", "laravel", "node", "generic"])]
        project_type: String,
        #[command(flatten)]
        settings: SiteSettings,
        /// Another name nginx answers to (repeat)
        #[arg(long = "alias")]
        aliases: Vec<String>,
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
    /// Change how a site deploys: branch, repository, web directory, deploy script, health check
    Update(UpdateSiteArgs),
    /// Remove a site from the server and from Slipway; asks first
    Delete {
        #[command(flatten)]
        site: SiteRef,
        /// Do not ask (needed when standard input is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Make nginx answer every request with 503 and a maintenance page
    Suspend(SiteRef),
    /// Serve a suspended site again
    Resume(SiteRef),
    /// Convert an in-place site to releases with an atomic switch, without downtime (streams the
    /// conversion's log)
    EnableZeroDowntime(DeployArgs),
}

/// What a site deploys and how it is checked: set at creation, changed with `site update`.
#[derive(Debug, Args)]
pub struct SiteSettings {
    /// Git URL the server fetches (https://…, ssh://…, git@host:path, git://…)
    #[arg(long)]
    pub repo: Option<String>,
    /// Deploy a git repository of the organization instead (its id, from the API's
    /// /git-repositories): its URL and deploy key, and its branch unless --branch is given
    #[arg(long, conflicts_with = "repo", value_name = "ID")]
    pub git_repository: Option<String>,
    /// Branch to deploy (main when a site is created without one)
    #[arg(long)]
    pub branch: Option<String>,
    /// Served directory inside a release (public, dist …)
    #[arg(long)]
    pub web_dir: Option<String>,
    /// The command that runs a node or generic app; it must listen on $PORT
    #[arg(long)]
    pub command: Option<String>,
    /// Path the health check requests before a release goes live (/ when created without one)
    #[arg(long)]
    pub health_path: Option<String>,
    /// A file holding the script each release runs before it goes live
    #[arg(long)]
    pub deploy_script_file: Option<PathBuf>,
}

impl SiteSettings {
    /// The API's fields for the settings given.
    fn fields(self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let fields = [
            ("repository_url", self.repo.map(Value::from)),
            ("git_repository_id", self.git_repository.map(Value::from)),
            ("branch", self.branch.map(Value::from)),
            ("web_directory", self.web_dir.map(Value::from)),
            ("app_command", self.command.map(Value::from)),
            ("health_check_path", self.health_path.map(Value::from)),
            ("deploy_script", read_script(self.deploy_script_file)?.map(Value::from)),
        ];
        Ok(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
    }
}

#[derive(Debug, Args)]
pub struct UpdateSiteArgs {
    #[command(flatten)]
    pub site: SiteRef,
    #[command(flatten)]
    pub settings: SiteSettings,
    /// HTTP status the health check expects (100 to 599)
    #[arg(long)]
    pub health_status: Option<u16>,
    /// Seconds a new release has to pass the health check (1 to 600)
    #[arg(long)]
    pub health_timeout: Option<u32>,
    /// Releases kept for rollback (1 to 50)
    #[arg(long)]
    pub keep_releases: Option<u32>,
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

/// The first line of a commit message.
fn first_line(message: Option<&str>) -> &str {
    message.unwrap_or("").lines().next().unwrap_or("")
}

/// The contents of a deploy script file.
fn read_script(path: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        std::fs::read_to_string(&path).with_context(|| format!("cannot read the deploy script from {}", path.display()))
    })
    .transpose()
}

#[allow(clippy::print_stdout)]
fn print_site(site: &Site) {
    println!("{} {} ({})", site.id, site.domain, site.project_type);
    let reason = site.status_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
    let suspended = if site.suspended { ", suspended" } else { "" };
    println!("status: {}{reason}{suspended}", site.status);
    if !site.aliases.is_empty() {
        println!("aliases: {}", site.aliases.join(" "));
    }
    match (&site.repository.git_repository_id, &site.repository.url) {
        (Some(id), _) => println!("repository: git repository {id} ({})", site.repository.branch),
        (None, Some(url)) => println!("repository: {url} ({})", site.repository.branch),
        (None, None) => {
            println!("repository: none yet (set one with `slipway site update … --repo URL` or `--git-repository ID`)")
        }
    }
    if !site.web_directory.is_empty() {
        println!("web directory: {}", site.web_directory);
    }
    if let Some(command) = &site.app_command {
        println!("command: {command}");
    }
    if let Some(status) = &site.deployment_status {
        println!("last deployment: {status} at {}", when(site.last_deployed_at.as_ref()));
    }
    if let Some(release) = &site.current_release {
        println!("live release: {release}");
    }
    if !site.zero_downtime {
        println!("deploys: in place (see `slipway site enable-zero-downtime`)");
    }
    if !site.shared_paths.is_empty() {
        println!("shared paths: {}", site.shared_paths.join(" "));
    }
}

/// Waits for the operation that applies a site change (its log is printed only if it fails);
/// fails when it does not succeed.
async fn wait_for_site(client: &Client, site: &Site, output: Output) -> anyhow::Result<()> {
    let op = site.operation_id.as_deref().context("the API did not say which operation applies the change")?;
    ended_well(&*follow_operation(client, op, output, Echo::OnFailure).await?)
}

#[allow(clippy::print_stdout)]
pub async fn site(command: SiteCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    match command {
        SiteCommand::List { server } => {
            let page = client.sites(&server, 1).await.map_err(Missing::Server(&server).describe())?;
            if output == Output::Json {
                return print_json(&page);
            }
            println!(
                "{:<26}  {:<32}  {:<8}  {:<10}  {:<10}  LAST DEPLOYED",
                "ID", "DOMAIN", "TYPE", "STATUS", "DEPLOY"
            );
            for s in &page.data {
                let status = if s.suspended { "suspended" } else { &s.status };
                println!(
                    "{:<26}  {:<32}  {:<8}  {status:<10}  {:<10}  {}",
                    s.id,
                    cut(&s.domain, 32),
                    s.project_type,
                    s.deployment_status.as_deref().unwrap_or("-"),
                    when(s.last_deployed_at.as_ref())
                );
            }
        }
        SiteCommand::Create { server, domain, project_type, settings, aliases, shared_paths, in_place } => {
            let mut body = settings.fields()?;
            let more = [
                ("domain", json!(domain)),
                ("project_type", json!(project_type)),
                ("aliases", json!(aliases)),
                ("zero_downtime", json!(!in_place)),
            ];
            body.extend(more.into_iter().map(|(k, v)| (k.to_string(), v)));
            if !shared_paths.is_empty() {
                body.insert("shared_paths".into(), json!(shared_paths));
            }
            let created =
                client.create_site(&server, &body.into()).await.map_err(Missing::Server(&server).describe())?;
            wait_for_site(&client, &created, output).await?;
            let site = client.site(&server, &created.id).await?;
            if output == Output::Json {
                return print_json(&site);
            }
            print_site(&site);
            println!("\nDeploy it with: slipway deploy {server} {}", site.domain);
        }
        SiteCommand::Show(site) => {
            let found = client.site(&site.server, &site.site).await.map_err(site.missing())?;
            if output == Output::Json { print_json(&found)? } else { print_site(&found) }
        }
        SiteCommand::Update(args) => update(&client, args, output).await?,
        SiteCommand::Delete { site, yes } => {
            confirm(
                &format!(
                    "Delete site {} on server {}: its files, nginx block and processes are removed from the server",
                    site.site, site.server
                ),
                yes,
            )?;
            let removing = client.delete_site(&site.server, &site.site).await.map_err(site.missing())?;
            wait_for_site(&client, &removing, output).await?;
            if output == Output::Json {
                return print_json(&removing);
            }
            eprintln!("Site {} ({}) is removed.", removing.domain, removing.id);
        }
        SiteCommand::Suspend(site) => suspend(&client, &site, true, output).await?,
        SiteCommand::Resume(site) => suspend(&client, &site, false, output).await?,
        SiteCommand::EnableZeroDowntime(args) => {
            let site = &args.site;
            match client.enable_zero_downtime(&site.server, &site.site).await.map_err(site.missing())? {
                Some(accepted) => run_deployment(&client, site, accepted, args.no_follow, output).await?,
                None if output == Output::Json => print_json(&client.site(&site.server, &site.site).await?)?,
                None => eprintln!("The site was never deployed: it now deploys as releases with an atomic switch."),
            }
        }
    }
    Ok(())
}

/// Applies `site update`: changes to the web directory are applied to the server at once (and
/// waited for); the others take effect with the next deploy.
async fn update(client: &Client, args: UpdateSiteArgs, output: Output) -> anyhow::Result<()> {
    let mut body = args.settings.fields()?;
    let numbers = [
        ("health_check_status", args.health_status.map(Value::from)),
        ("health_check_timeout", args.health_timeout.map(Value::from)),
        ("keep_releases", args.keep_releases.map(Value::from)),
    ];
    body.extend(numbers.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))));
    if body.is_empty() {
        bail!("nothing to change: give at least one option (see `slipway site update --help`)");
    }
    let site = &args.site;
    let updated = client.update_site(&site.server, &site.site, &body.into()).await.map_err(site.missing())?;
    let updated = if updated.operation_id.is_some() {
        wait_for_site(client, &updated, output).await?;
        client.site(&site.server, &site.site).await?
    } else {
        updated
    };
    if output == Output::Json {
        return print_json(&updated);
    }
    print_site(&updated);
    eprintln!("Saved; the next deploy uses it.");
    Ok(())
}

async fn suspend(client: &Client, site: &SiteRef, suspended: bool, output: Output) -> anyhow::Result<()> {
    let changed = client.suspend_site(&site.server, &site.site, suspended).await.map_err(site.missing())?;
    wait_for_site(client, &changed, output).await?;
    let now = client.site(&site.server, &site.site).await?;
    if output == Output::Json {
        return print_json(&now);
    }
    print_site(&now);
    Ok(())
}

pub async fn deploy(args: DeployArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let site = &args.site;
    let accepted = client.deploy(&site.server, &site.site, "cli").await.map_err(site.missing())?;
    run_deployment(&client, site, accepted, args.no_follow, client_args.output).await
}

pub async fn rollback(args: RollbackArgs, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let site = &args.site;
    let accepted = client.rollback(&site.server, &site.site, args.release.as_deref()).await.map_err(site.missing())?;
    run_deployment(&client, site, accepted, args.no_follow, client_args.output).await
}

/// Says that a deployment was queued, then (unless `no_follow`) streams it to its end, and fails
/// when it failed or was cancelled. Once a deployment is queued, nothing else makes the
/// command fail: if following it breaks, it says so and where to look, and exits 0 (a CI job
/// that retried would deploy twice).
#[allow(clippy::print_stdout)]
async fn run_deployment(
    client: &Client,
    site: &SiteRef,
    accepted: Accepted<Resource<Deployment>>,
    no_follow: bool,
    output: Output,
) -> anyhow::Result<()> {
    let id = accepted.data.id.clone();
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
    let deployment = match follow_deployment(client, &site.server, &site.site, &id, output).await {
        Ok(deployment) => deployment,
        Err(e) => {
            eprintln!(
                "warning: deployment {id} is queued, but following it failed: {}\nSee how it went with: \
                 slipway deployments {} {}",
                super::errors::chain_text(&e),
                site.server,
                site.site
            );
            if output == Output::Json {
                print_json(&accepted.data)?;
            }
            return Ok(());
        }
    };
    if let Err(why) = deployed_well(&deployment) {
        // With --output json, one document: the error, carrying the deployment.
        let failed = super::follow::OperationFailed {
            message: why.to_string(),
            key: "deployment",
            resource: deployment.raw().clone(),
        };
        return Err(failed.into());
    }
    if output == Output::Json {
        print_json(&deployment)?;
    }
    if output == Output::Human {
        println!("{}", done(&deployment));
        if !deployment.steps.is_empty() {
            println!("Steps: {}", steps_taken(&deployment.steps));
        }
    }
    Ok(())
}

/// `connect 12 ms, fetch 190 ms, …`: where a deployment spent its time.
fn steps_taken(steps: &[slipway_client::DeploymentStep]) -> String {
    let took = |s: &slipway_client::DeploymentStep| match s.duration_ms {
        Some(ms) if s.status == "succeeded" => format!("{} {ms} ms", s.name),
        Some(ms) => format!("{} {ms} ms ({})", s.name, s.status),
        None => format!("{} ({})", s.name, s.status),
    };
    steps.iter().map(took).collect::<Vec<_>>().join(", ")
}

/// What a succeeded deployment did, in words.
fn done(d: &Deployment) -> String {
    let duration = d.duration.map(|d| format!(" in {d:.1}s")).unwrap_or_default();
    let commit = d.commit_sha.as_deref().map(|sha| format!(" (commit {})", cut(sha, 7))).unwrap_or_default();
    match d.action.as_str() {
        "rollback" => {
            format!("Rolled back to release {}{commit}{duration}.", d.release.as_deref().unwrap_or("?"))
        }
        "enable-zero-downtime" => {
            format!("Converted: the site now deploys as releases with an atomic switch{commit}{duration}.")
        }
        _ => format!("Deployed {}{duration}.", describe_commit(d)),
    }
}

/// `abc1234 commit message`, or what a rollback went back to.
fn describe_commit(d: &Deployment) -> String {
    match (&d.commit_sha, &d.release) {
        (Some(sha), _) => format!("{} {}", cut(sha, 7), first_line(d.commit_message.as_deref())),
        (None, Some(release)) => format!("release {release}"),
        (None, None) => "-".into(),
    }
}

fn deployed_well(d: &Deployment) -> anyhow::Result<()> {
    let reason = d.failure_reason.as_deref().unwrap_or("no reason given");
    match d.status.as_str() {
        "succeeded" => Ok(()),
        "cancelled" => bail!("deployment {} was cancelled: {reason}", d.id),
        _ => {
            bail!("deployment {} failed at the {} step: {reason}", d.id, d.failed_step.as_deref().unwrap_or("unknown"))
        }
    }
}

#[allow(clippy::print_stdout)]
pub async fn deployments(site: SiteRef, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let page = client.deployments(&site.server, &site.site, 1).await.map_err(site.missing())?;
    if client_args.output == Output::Json {
        return print_json(&page);
    }
    println!(
        "{:<26}  {:<9}  {:<8}  {:<40}  {:<19}  {:>8}  FAILED STEP",
        "ID", "STATUS", "TRIGGER", "COMMIT", "STARTED", "DURATION"
    );
    for d in &page.data {
        let duration = d.duration.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
        println!(
            "{:<26}  {:<9}  {:<8}  {:<40}  {:<19}  {duration:>8}  {}",
            d.id,
            d.status,
            d.trigger,
            cut(&describe_commit(d), 40),
            when(d.started_at.as_ref()),
            d.failed_step.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn releases(site: SiteRef, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let releases = client.releases(&site.server, &site.site).await.map_err(site.missing())?;
    if client_args.output == Output::Json {
        return print_json(&releases);
    }
    println!("  {:<26}  {:<19}  COMMIT", "RELEASE", "CREATED");
    for r in &releases {
        let mark = if r.current { "*" } else { " " };
        let commit =
            format!("{} {}", cut(r.commit_sha.as_deref().unwrap_or("-"), 7), first_line(r.commit_message.as_deref()));
        println!("{mark} {:<26}  {:<19}  {commit}", r.id, when(Some(&r.created_at)));
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
    let site = SiteRef { server: command.site().server.clone(), site: command.site().site.clone() };
    let (server, id) = (site.server.as_str(), site.site.as_str());
    let (change, deploy) = match command {
        EnvCommand::List { reveal, .. } => {
            let vars = client.env_vars(server, id, reveal).await.map_err(site.missing())?;
            if output == Output::Json {
                return print_json(&vars);
            }
            for v in &vars {
                let key = v["key"].as_str().unwrap_or("");
                match v["value"].as_str() {
                    Some(value) => println!("{}", slipway_core::dotenv::line(key, value)),
                    None => println!(
                        "{key:<40}  updated {}",
                        cut(v["updated_at"].as_str().unwrap_or("-"), 19).replace('T', " ")
                    ),
                }
            }
            if !reveal && !vars.is_empty() {
                eprintln!("Values are hidden; --reveal prints them as a .env file.");
            }
            return Ok(());
        }
        EnvCommand::Set { pairs, from_file, deploy, .. } => {
            let vars = variables(&pairs, from_file.as_ref())?;
            let change = client.set_env_vars(server, id, &vars, deploy).await.map_err(site.missing())?;
            if output == Output::Human {
                eprintln!("Set {}.", vars.keys().cloned().collect::<Vec<_>>().join(", "));
            }
            (change, deploy)
        }
        EnvCommand::Pull { .. } => {
            let op = client.pull_env(server, id).await.map_err(site.missing())?.id.clone();
            // The operation's log never holds values; it says how many were imported.
            return ended_well(&*follow_operation(&client, &op, output, Echo::Always).await?);
        }
        EnvCommand::Unset { key, deploy, .. } => {
            let change = client.unset_env_var(server, id, &key, deploy).await.map_err(site.missing())?;
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
            let data = Resource::from_value(deployment.clone())?;
            let accepted = Accepted { message: "Deploying the change.".into(), data };
            run_deployment(&client, &site, accepted, false, output).await
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
