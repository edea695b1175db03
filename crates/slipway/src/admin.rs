//! `slipway admin …`: administration straight against the database, for headless installs.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Args;
use slipway_core::identity::{Email, check_label};
use slipway_core::password::{hash_password, password_problem};
use slipway_core::{FieldErrors, Role};
use slipway_store::NewUser;

use crate::config::{ServerArgs, Settings};
use crate::serve;

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The user's email address (they log in with it)
    #[arg(long)]
    pub email: String,
    /// The user's display name, e.g. "Ana Lima"
    #[arg(long)]
    pub name: String,
    /// An organization to join (its id, or its exact name), or the name of a new one to create
    #[arg(long)]
    pub organization: String,
    /// The user's role: in a new organization only owner [default: owner]; required to join an
    /// existing one
    #[arg(long, value_parser = ["owner", "admin", "member", "viewer"])]
    pub role: Option<String>,
    /// Read the password from the first line of standard input (else SLIPWAY_ADMIN_PASSWORD)
    #[arg(long)]
    pub password_stdin: bool,
}

fn fail_on(errors: FieldErrors) -> anyhow::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for field in errors.fields() {
        // The password has no flag: it comes from --password-stdin or SLIPWAY_ADMIN_PASSWORD.
        let label = match field {
            "password" => "the password".to_string(),
            flag => format!("--{}", flag.replace('_', "-")),
        };
        for message in errors.get(field).unwrap_or_default() {
            lines.push(format!("{label}: {message}"));
        }
    }
    bail!("{}", lines.join("\n"))
}

#[allow(clippy::print_stdout)]
pub async fn create_user(args: CreateUserArgs, env_key: Option<String>) -> anyhow::Result<()> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        std::env::var("SLIPWAY_ADMIN_PASSWORD")
            .context("give the password with --password-stdin or SLIPWAY_ADMIN_PASSWORD (never as a flag)")?
    };
    let mut errors = FieldErrors::new();
    let email = Email::parse(&args.email).map_err(|m| errors.add("email", m)).ok();
    check_label(&mut errors, "name", &args.name);
    check_label(&mut errors, "organization", &args.organization);
    if let Some(problem) = password_problem(&password) {
        errors.add("password", problem);
    }
    fail_on(errors)?;
    let email = email.expect("valid");
    let role = args.role.as_deref().map(|r| Role::parse(r).expect("clap checked the role"));

    let settings = Settings::resolve(&args.server, env_key)?;
    serve::ensure_data_dir(&settings)?;
    let store = serve::open_store(&settings).await?;
    store.migrate().await?;
    let user = NewUser {
        id: slipway_core::new_id(),
        email_normalized: email.normalized(),
        email: email.as_str().to_string(),
        name: args.name.trim().to_string(),
        password_hash: tokio::task::spawn_blocking(move || hash_password(&password)).await?,
    };
    let result = match existing_organization(store.as_ref(), args.organization.trim()).await? {
        Some(org) => {
            let Some(role) = role else {
                bail!(
                    "an organization {:?} exists ({}): to add the user to it, say with which role \
                     (--role owner, admin, member or viewer); to create another one, choose another name",
                    org.name,
                    org.id
                );
            };
            store.create_user(&user).await.map_err(describe)?;
            store.add_member(&org.id, &user.id, role.as_str()).await?;
            format!("Created {} ({}) as {role} of {} ({}).", user.email, user.id, org.name, org.id)
        }
        None => {
            if role.is_some_and(|r| r != Role::Owner) {
                bail!(
                    "no organization has the id or name {:?}, and a new one needs an owner: use --role owner, \
                     or give an existing organization's id or name",
                    args.organization.trim()
                );
            }
            let org_id = slipway_core::new_id();
            store
                .create_user_with_organization(&user, &org_id, args.organization.trim(), "owner")
                .await
                .map_err(describe)?;
            format!(
                "Created {} ({}) as owner of the new organization {} ({org_id}).",
                user.email,
                user.id,
                args.organization.trim()
            )
        }
    };
    println!("{result}");
    store.close().await;
    Ok(())
}

/// The organisation `reference` names: by id, else by its exact name (refused when several
/// share it); `None` when there is none, so a new one is made.
async fn existing_organization(
    store: &dyn slipway_store::Store,
    reference: &str,
) -> anyhow::Result<Option<slipway_store::Organization>> {
    if let Some(org) = store.organization(reference).await? {
        return Ok(Some(org));
    }
    let mut named = store.organizations_named(reference).await?;
    if named.len() > 1 {
        let ids: Vec<&str> = named.iter().map(|o| o.id.as_str()).collect();
        bail!("{} organizations are named {reference:?} ({}): give the id of one", named.len(), ids.join(", "));
    }
    Ok(named.pop())
}

fn describe(e: slipway_store::StoreError) -> anyhow::Error {
    match e {
        slipway_store::StoreError::Conflict(_) => anyhow::anyhow!("a user with this email already exists"),
        other => other.into(),
    }
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Rewrites the database compactly, giving pruned space back to the file system.
#[allow(clippy::print_stdout)]
pub async fn vacuum(args: VacuumArgs, env_key: Option<String>) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args.server, env_key)?;
    let store = serve::open_store(&settings).await?;
    let before = store.database_size().await?;
    store.compact().await.context("VACUUM failed")?;
    let after = store.database_size().await?;
    println!("Compacted the {} database: {before} bytes before, {after} bytes after.", store.backend().as_str());
    store.close().await;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExportAuditArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Events at or after this time: RFC 3339 (2026-01-31T00:00:00Z) or an age (30d, 12h)
    #[arg(long)]
    pub since: String,
}

/// Writes audit events since a time to standard output as JSON lines, oldest first, in the
/// API's shape: a copy to keep before pruning deletes them.
pub async fn export_audit(args: ExportAuditArgs, env_key: Option<String>) -> anyhow::Result<()> {
    use std::io::Write;
    let since = match chrono::DateTime::parse_from_rfc3339(&args.since) {
        Ok(at) => at.with_timezone(&chrono::Utc),
        Err(_) => {
            let age = crate::config::parse_duration(&args.since)
                .map_err(|e| anyhow::anyhow!("--since: not an RFC 3339 time, and {e}"))?;
            slipway_core::time::now() - chrono::Duration::from_std(age)?
        }
    };
    let settings = Settings::resolve(&args.server, env_key)?;
    let store = serve::open_store(&settings).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after: Option<String> = None;
    loop {
        let page = store.audit_events_since(since, after.as_deref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for event in page {
            let resource = slipway_api::routes::audit_events::AuditEventResource::from(event);
            serde_json::to_writer(&mut out, &resource)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    store.close().await;
    Ok(())
}
