//! `slipway`: the control plane (`serve`) and, later, its command-line client, in one binary.

mod admin;
mod cli;
mod config;
#[cfg(test)]
mod doc_commands;
mod keys;
mod logging;
mod memory;
mod serve;
#[cfg(test)]
mod wire_schemas;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ServerArgs, Settings};

#[derive(Debug, Parser)]
#[command(name = "slipway", version, about = "Self-hosted control plane for servers and sites")]
struct Cli {
    #[command(flatten)]
    client: cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: REST API, API reference and job runner
    Serve(ServerArgs),
    /// Apply pending database migrations and exit
    Migrate(ServerArgs),
    /// Print the effective configuration, secrets redacted
    Config(ServerArgs),
    /// Log in to a Slipway server and save the token in a profile
    Login(cli::LoginArgs),
    /// Revoke the saved token and forget it
    Logout,
    /// Show who the saved token belongs to and what it may do
    Whoami,
    /// Manage your access tokens
    #[command(subcommand)]
    Token(cli::TokenCommand),
    /// Manage servers
    #[command(subcommand)]
    Server(cli::ServerCommand),
    /// SSH keys that may log in to a server as its deploy user
    #[command(subcommand)]
    SshKey(cli::SshKeyCommand),
    /// A server's firewall rules
    #[command(subcommand)]
    NetworkRule(cli::NetworkRuleCommand),
    /// Long-running commands a server keeps running (under supervisor)
    #[command(subcommand)]
    Daemon(cli::programs::DaemonCommand),
    /// A site's queue workers (under supervisor, restarted by each deploy)
    #[command(subcommand)]
    Worker(cli::programs::WorkerCommand),
    /// A site's TLS certificates (HTTPS)
    #[command(subcommand)]
    Cert(cli::certificates::CertCommand),
    /// A site's redirects (nginx rules answered before the site)
    #[command(subcommand)]
    Redirect(cli::redirects::RedirectCommand),
    /// A server's cron jobs and their runs
    #[command(subcommand)]
    Cron(cli::cron::CronCommand),
    /// Databases on a server's own engine
    #[command(subcommand)]
    Db(cli::databases::DbCommand),
    /// Database backups: list, make, download (checked against their SHA-256), verify, restore
    #[command(subcommand)]
    Backup(cli::backups::BackupCommand),
    /// Backups on a schedule, with retention
    #[command(subcommand)]
    BackupSchedule(cli::backups::BackupScheduleCommand),
    /// Where backups go: S3-compatible buckets or a server's directory
    #[command(subcommand)]
    BackupStorage(cli::backup_storages::BackupStorageCommand),
    /// Notification channels: signed webhooks, Slack, Discord, email
    #[command(subcommand)]
    Notify(cli::notify::NotifyCommand),
    /// What happened (deployments, servers, backups, certificates, operations), newest first
    Events(cli::notify::EventsArgs),
    /// Users of a database: generated passwords, grants, hosts, a site's DB_* variables
    #[command(subcommand)]
    DbUser(cli::database_users::DbUserCommand),
    /// Manage a server's sites
    #[command(subcommand)]
    Site(cli::sites::SiteCommand),
    /// Deploy a site, streaming the log; fails when the deployment fails
    Deploy(cli::sites::DeployArgs),
    /// Switch a site back to a kept release, streaming the log
    Rollback(cli::sites::RollbackArgs),
    /// A site's deployments, newest first
    Deployments(cli::sites::SiteRef),
    /// Releases kept on the server for rollback, and the live one
    Releases(cli::sites::SiteRef),
    /// A site's environment variables
    #[command(subcommand)]
    Env(cli::sites::EnvCommand),
    /// Print the version
    Version,
    /// Print the OpenAPI document
    Openapi,
    /// Manage the secrets key
    #[command(subcommand)]
    Key(KeyCommand),
    /// Administration straight against the database (for headless installs)
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user in a new or existing organization
    CreateUser(admin::CreateUserArgs),
    /// Compact the database (VACUUM), giving pruned space back to the file system
    Vacuum(admin::VacuumArgs),
    /// Print audit events since a time as JSON lines, oldest first (e.g. before pruning)
    ExportAudit(admin::ExportAuditArgs),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print a new random secrets key (for SLIPWAY_SECRET_KEY)
    Generate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_when_stdout_closes();
    }
    let output = cli.client.output;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::errors::report(&e, output);
            ExitCode::FAILURE
        }
    }
}

/// A reader that stops reading (`slipway server list | head -1`) ends the command quietly, as
/// it would any Unix tool, instead of a panic and its trace from `println!`.
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> anyhow::Result<()> {
    let env_key = || std::env::var("SLIPWAY_SECRET_KEY").ok();
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args, env_key())?;
            logging::init(settings.log_format, &settings.log)?;
            runtime()?.block_on(serve::run(settings))
        }
        Command::Migrate(args) => {
            let settings = Settings::resolve(&args, env_key())?;
            logging::init(settings.log_format, &settings.log)?;
            runtime()?.block_on(async {
                serve::ensure_data_dir(&settings)?;
                let store = serve::open_store(&settings).await?;
                let applied = store.migrate().await?;
                println!("Applied {applied} migration(s) to the {} database.", store.backend().as_str());
                store.close().await;
                Ok(())
            })
        }
        Command::Config(args) => {
            print!("{}", Settings::resolve(&args, env_key())?.render_redacted());
            Ok(())
        }
        Command::Login(args) => cli::run(cli::login(args, &cli.client)),
        Command::Logout => cli::run(cli::logout(&cli.client)),
        Command::Whoami => cli::run(cli::whoami(&cli.client)),
        Command::Token(command) => cli::run(cli::token(command, &cli.client)),
        Command::Server(command) => cli::run(cli::server(command, &cli.client)),
        Command::SshKey(command) => cli::run(cli::ssh_key(command, &cli.client)),
        Command::NetworkRule(command) => cli::run(cli::network_rule(command, &cli.client)),
        Command::Daemon(command) => cli::run(cli::programs::daemon(command, &cli.client)),
        Command::Worker(command) => cli::run(cli::programs::worker(command, &cli.client)),
        Command::Redirect(command) => cli::run(cli::redirects::redirect(command, &cli.client)),
        Command::Cert(command) => cli::run(cli::certificates::cert(command, &cli.client)),
        Command::Cron(command) => cli::run(cli::cron::cron(command, &cli.client)),
        Command::Db(command) => cli::run(cli::databases::db(command, &cli.client)),
        Command::Backup(command) => cli::run(cli::backups::backup(command, &cli.client)),
        Command::BackupSchedule(command) => cli::run(cli::backups::backup_schedule(command, &cli.client)),
        Command::BackupStorage(command) => cli::run(cli::backup_storages::backup_storage(command, &cli.client)),
        Command::Notify(command) => cli::run(cli::notify::notify(command, &cli.client)),
        Command::Events(args) => cli::run(cli::notify::events(args, &cli.client)),
        Command::DbUser(command) => cli::run(cli::database_users::db_user(command, &cli.client)),
        Command::Site(command) => cli::run(cli::sites::site(command, &cli.client)),
        Command::Deploy(args) => cli::run(cli::sites::deploy(args, &cli.client)),
        Command::Rollback(args) => cli::run(cli::sites::rollback(args, &cli.client)),
        Command::Deployments(site) => cli::run(cli::sites::deployments(site, &cli.client)),
        Command::Releases(site) => cli::run(cli::sites::releases(site, &cli.client)),
        Command::Env(command) => cli::run(cli::sites::env(command, &cli.client)),
        Command::Version => {
            println!("slipway {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&slipway_api::openapi())?);
            Ok(())
        }
        Command::Admin(AdminCommand::CreateUser(args)) => {
            let settings = Settings::resolve(&args.server, env_key())?;
            logging::init(settings.log_format, "warn")?;
            runtime()?.block_on(admin::create_user(args, env_key()))
        }
        Command::Admin(AdminCommand::Vacuum(args)) => {
            let settings = Settings::resolve(&args.server, env_key())?;
            logging::init(settings.log_format, "warn")?;
            runtime()?.block_on(admin::vacuum(args, env_key()))
        }
        Command::Admin(AdminCommand::ExportAudit(args)) => {
            let settings = Settings::resolve(&args.server, env_key())?;
            logging::init(settings.log_format, "warn")?;
            runtime()?.block_on(admin::export_audit(args, env_key()))
        }
        Command::Key(KeyCommand::Generate) => {
            println!("{}", slipway_core::SecretsKey::generate().to_base64());
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
