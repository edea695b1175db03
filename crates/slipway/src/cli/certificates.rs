//! `slipway cert …`: a site's TLS certificates.

use std::path::PathBuf;

use clap::Subcommand;
use slipway_client::certificates_path;

use super::errors::Missing;
use super::sites::SiteRef;
use super::{ClientArgs, Output, connect, print_json, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// A site's certificates
    List {
        #[command(flatten)]
        site: SiteRef,
    },
    /// Issue a certificate for a site with ACME (Let's Encrypt by default) and serve it
    Issue {
        #[command(flatten)]
        site: SiteRef,
        /// Names it must cover (repeat) [default: the site's domain and aliases]
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Leave plain HTTP answering instead of redirecting it to HTTPS
        #[arg(long)]
        no_https_redirect: bool,
        /// Send Strict-Transport-Security
        #[arg(long)]
        hsts: bool,
    },
    /// Upload a certificate and its key for a site, and serve it (unless --no-activate)
    Upload {
        #[command(flatten)]
        site: SiteRef,
        /// The certificate, PEM (a file holding the leaf first and then its chain is fine)
        #[arg(long)]
        certificate: PathBuf,
        /// The intermediate certificates, PEM
        #[arg(long)]
        chain: Option<PathBuf>,
        /// The private key, PEM, without a passphrase
        #[arg(long)]
        key: PathBuf,
        /// Names it must cover (repeat) [default: the site's domain and aliases]
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Keep it without serving it
        #[arg(long)]
        no_activate: bool,
        /// Leave plain HTTP answering instead of redirecting it to HTTPS
        #[arg(long)]
        no_https_redirect: bool,
        /// Send Strict-Transport-Security
        #[arg(long)]
        hsts: bool,
    },
    /// One certificate, and what the server was seen serving
    Show {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// Serve a certificate for its site
    Activate {
        #[command(flatten)]
        site: SiteRef,
        id: String,
        /// Leave plain HTTP answering instead of redirecting it to HTTPS
        #[arg(long)]
        no_https_redirect: bool,
        /// Send Strict-Transport-Security
        #[arg(long)]
        hsts: bool,
    },
    /// Revoke an ACME certificate at its ACME server, then remove it (the site falls back to
    /// plain HTTP if it served it)
    Revoke {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// Remove a certificate (the site falls back to plain HTTP if it served it)
    Delete {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
}

/// A PEM file's text, or an error that names the file.
fn read_pem(what: &str, path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read the {what} file {}: {e}", path.display()))
}

/// A certificate (leaf first, then its chain) split into the leaf and the rest.
fn split_leaf(pem: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match pem.find(END) {
        Some(at) => {
            let (leaf, rest) = pem.split_at(at + END.len());
            (format!("{leaf}\n"), rest.trim_start().to_string())
        }
        None => (pem.to_string(), String::new()),
    }
}

#[allow(clippy::print_stdout)]
pub async fn cert(command: CertCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    let at = |site: &SiteRef| certificates_path(&site.server, &site.site);
    let line = |c: &serde_json::Value| {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let names = c["domains"].as_array().map(|d| d.iter().filter_map(|n| n.as_str()).collect::<Vec<_>>().join(","));
        format!(
            "{:<26}  {:<6}  {:<9}  {:<20}  {:<30}  {}",
            s("id"),
            s("type"),
            s("status"),
            s("not_after"),
            names.unwrap_or_default(),
            s("issuer")
        )
    };
    let (site, item) = match command {
        CertCommand::List { site } => {
            let page = client.items(&at(&site)).await.map_err(site.missing())?;
            if output == Output::Json {
                return print_json(&page);
            }
            println!("{:<26}  {:<6}  {:<9}  {:<20}  {:<30}  ISSUER", "ID", "TYPE", "STATUS", "EXPIRES", "NAMES");
            for c in &page.data {
                println!("{}", line(c));
            }
            return Ok(());
        }
        CertCommand::Show { site, id } => {
            let place = Missing::Item { server: &site.server, kind: "certificate", id: &id };
            let c = client.item(&at(&site), &id).await.map_err(place.describe())?;
            if output == Output::Json {
                return print_json(&c);
            }
            println!("{}", line(&c));
            println!("fingerprint: {}", c["fingerprint"].as_str().unwrap_or(""));
            if let Some(why) = c["status_reason"].as_str() {
                println!("reason: {why}");
            }
            if let Some(next) = c["renewal"]["next_attempt_at"].as_str() {
                println!("next renewal attempt: {next}");
            }
            if let Some(error) = c["renewal"]["last_error"].as_str() {
                println!("last renewal error: {error}");
            }
            match &c["served"] {
                serde_json::Value::Null => println!("served: not checked yet"),
                served => println!(
                    "served: {} (checked {})",
                    if served["matches"] == true { "this certificate" } else { "another certificate, or none" },
                    served["checked_at"].as_str().unwrap_or("")
                ),
            }
            return Ok(());
        }
        CertCommand::Upload { site, certificate, chain, key, domains, no_activate, no_https_redirect, hsts } => {
            let (leaf, rest) = split_leaf(&read_pem("certificate", &certificate)?);
            let chain = match chain {
                Some(path) => format!("{rest}{}", read_pem("chain", &path)?),
                None => rest,
            };
            let mut body = serde_json::json!({
                "type": "custom", "certificate": leaf, "chain": chain, "private_key": read_pem("key", &key)?,
                "activate": !no_activate, "https_redirect": !no_https_redirect, "hsts": hsts,
            });
            if !domains.is_empty() {
                body["domains"] = serde_json::json!(domains);
            }
            let c = client.create_item(&at(&site), &body).await.map_err(site.missing())?;
            (site, c)
        }
        CertCommand::Issue { site, domains, no_https_redirect, hsts } => {
            let mut body = serde_json::json!({"type": "acme", "https_redirect": !no_https_redirect, "hsts": hsts});
            if !domains.is_empty() {
                body["domains"] = serde_json::json!(domains);
            }
            let c = client.create_item(&at(&site), &body).await.map_err(site.missing())?;
            (site, c)
        }
        CertCommand::Activate { site, id, no_https_redirect, hsts } => {
            let place = Missing::Item { server: &site.server, kind: "certificate", id: &id };
            let body = serde_json::json!({"https_redirect": !no_https_redirect, "hsts": hsts});
            let c = client.item_action(&at(&site), &id, "activate", &body).await.map_err(place.describe())?;
            (site, c)
        }
        CertCommand::Revoke { site, id } => {
            let place = Missing::Item { server: &site.server, kind: "certificate", id: &id };
            let body = serde_json::json!({});
            let c = client.item_action(&at(&site), &id, "revoke", &body).await.map_err(place.describe())?;
            if c["active"] == true && output == Output::Human {
                eprintln!(
                    "Warning: it is the site's active certificate; once revoked the site serves plain HTTP only."
                );
            }
            (site, c)
        }
        CertCommand::Delete { site, id } => {
            let place = Missing::Item { server: &site.server, kind: "certificate", id: &id };
            let c = client.delete_item(&at(&site), &id).await.map_err(place.describe())?;
            if c["active"] == true && output == Output::Human {
                eprintln!("Warning: it was the site's active certificate; the site now serves plain HTTP only.");
            }
            (site, c)
        }
    };
    wait_for_change(&client, &item, output).await?;
    if output == Output::Json {
        return print_json(&item);
    }
    eprintln!("Done: {} on {}.", line(&item).trim_end(), site.site);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_chain_file_splits_into_leaf_and_chain() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let (leaf, chain) = split_leaf(pem);
        assert_eq!(leaf, "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n");
        assert_eq!(chain, "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n");
        assert_eq!(split_leaf("junk").0, "junk");
    }
}
