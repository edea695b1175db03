//! `slipway redirect …`: a site's redirects.

use clap::Subcommand;
use slipway_client::redirects_path;

use super::errors::Missing;
use super::sites::SiteRef;
use super::{ClientArgs, Output, connect, print_json, wait_for_change};

#[derive(Debug, Subcommand)]
pub enum RedirectCommand {
    /// A site's redirects
    List {
        #[command(flatten)]
        site: SiteRef,
    },
    /// Redirect a path (or a prefix ending in *) of a site
    Create {
        #[command(flatten)]
        site: SiteRef,
        /// The path, or a prefix ending in * (/blog/*)
        from: String,
        /// A path or an http(s) URL; ending in * it gets what the from's * matched
        to: String,
        /// 301, 302, 307 or 308
        #[arg(long = "type", default_value_t = 301)]
        status: u16,
        /// Drop the request's query string instead of passing it on
        #[arg(long)]
        drop_query: bool,
    },
    /// One redirect
    Show {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
    /// Remove a redirect
    Delete {
        #[command(flatten)]
        site: SiteRef,
        id: String,
    },
}

#[allow(clippy::print_stdout)]
pub async fn redirect(command: RedirectCommand, client_args: &ClientArgs) -> anyhow::Result<()> {
    let client = connect(client_args)?;
    let output = client_args.output;
    let at = |site: &SiteRef| redirects_path(&site.server, &site.site);
    let line = |r: &serde_json::Value| {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        format!("{:<26}  {:<4}  {:<30}  {:<40}  {}", s("id"), r["type"], s("from"), s("to"), s("status"))
    };
    let (site, item) = match command {
        RedirectCommand::List { site } => {
            let page = client.items(&at(&site)).await.map_err(site.missing())?;
            if output == Output::Json {
                return print_json(&page);
            }
            println!("{:<26}  {:<4}  {:<30}  {:<40}  STATUS", "ID", "TYPE", "FROM", "TO");
            for r in &page.data {
                println!("{}", line(r));
            }
            return Ok(());
        }
        RedirectCommand::Show { site, id } => {
            let place = Missing::Item { server: &site.server, kind: "redirect", id: &id };
            let r = client.item(&at(&site), &id).await.map_err(place.describe())?;
            if output == Output::Json {
                return print_json(&r);
            }
            println!("{}\n{}", r["status_reason"].as_str().unwrap_or(""), line(&r));
            return Ok(());
        }
        RedirectCommand::Create { site, from, to, status, drop_query } => {
            let body = serde_json::json!({"from": from, "to": to, "type": status, "preserve_query": !drop_query});
            let r = client.create_item(&at(&site), &body).await.map_err(site.missing())?;
            (site, r)
        }
        RedirectCommand::Delete { site, id } => {
            let place = Missing::Item { server: &site.server, kind: "redirect", id: &id };
            let r = client.delete_item(&at(&site), &id).await.map_err(place.describe())?;
            (site, r)
        }
    };
    wait_for_change(&client, &item, output).await?;
    if output == Output::Json {
        return print_json(&item);
    }
    eprintln!("Done: {} on {}.", line(&item).trim_end(), site.site);
    Ok(())
}
