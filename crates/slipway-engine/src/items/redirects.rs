//! Redirects: nginx rules in a site's server block, answered before anything the site serves
//! (static files, PHP, an app). Each site's rules are one file,
//! `/etc/nginx/slipway/redirects/<domain>/redirects.conf`, that its server block includes; a sync
//! writes every site's file, checks the whole configuration with `nginx -t` and puts the
//! previous files back when it fails, so a redirect never takes a site down.
//!
//! Paths and targets are checked to a narrow alphabet before they are stored and again before
//! they are rendered: nothing nginx reads as syntax (`;`, braces, quotes, `$`, `#`, whitespace,
//! backslashes) can reach the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use slipway_core::site_input::Domain;
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, specs};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct Redirects;

/// Where a site's redirect rules live; its server block includes `*.conf` here.
pub fn redirects_dir(domain: &str) -> String {
    format!("/etc/nginx/slipway/redirects/{domain}")
}

impl ItemKind for Redirects {
    fn name(&self) -> &'static str {
        "redirect"
    }

    fn progress(&self) -> &'static str {
        "==> installing redirects"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-redirects", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        let mut by_site: BTreeMap<String, Vec<(String, RedirectSpec)>> = BTreeMap::new();
        for (id, spec) in specs::<RedirectSpec>(items)? {
            by_site.entry(spec.domain.clone()).or_default().push((id, spec));
        }
        let mut table = String::new();
        for (domain, rules) in &by_site {
            let domain = Domain::parse(domain).map_err(|e| format!("invalid domain: {e}"))?;
            let ids: Vec<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
            use base64::Engine as _;
            let file = base64::engine::general_purpose::STANDARD.encode(render(domain.as_str(), rules)?);
            table.push_str(&format!("{} {} {file}\n", domain.as_str(), ids.join(",")));
        }
        Ok(Script::new("redirects", include_str!("../../scripts/redirects.sh")).var("SITES", &table))
    }
}

/// A redirect as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectSpec {
    pub site_id: String,
    /// The site's domain (it names the rules' file; a site's domain does not change).
    pub domain: String,
    /// `/old` (that path) or `/old/*` (it and everything under it).
    pub from: String,
    /// A path or an absolute http(s) URL; with a `from` ending in `*`, a `to` ending in `*` gets
    /// what the `*` matched.
    pub to: String,
    /// 301, 302, 307 or 308.
    pub status: u16,
    /// Keep the request's query string.
    pub preserve_query: bool,
}

pub const STATUSES: [u16; 4] = [301, 302, 307, 308];

/// Characters of a path nginx takes literally everywhere we put one (a location, a regex once
/// dots are escaped, a quoted return target).
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._~-".contains(c)
}

/// Why `from` is not a redirect source, or `None`.
pub fn from_problem(from: &str) -> Option<String> {
    let body = from.strip_suffix('*').unwrap_or(from);
    if !from.starts_with('/') || from.len() > 1024 {
        return Some("The from must be a path starting with / (at most 1,024 characters).".into());
    }
    if !body.chars().all(path_char) {
        return Some("The from may hold letters, digits and / . _ ~ - only, with an optional * at the end.".into());
    }
    if from == "/*" {
        return Some("Redirecting every path is not a redirect rule; change the site's domain instead.".into());
    }
    if from.starts_with("/.well-known/acme-challenge") {
        return Some(
            "ACME challenges are answered by Slipway for the site's certificates; they cannot be redirected.".into(),
        );
    }
    None
}

/// Why `to` is not a redirect target for `from`, or `None`.
pub fn to_problem(to: &str, from: &str, preserve_query: bool) -> Option<String> {
    let rest = match to.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let name = host.rsplit_once(':').map_or(
                host,
                |(name, port)| {
                    if port.parse::<u16>().is_ok() { name } else { host }
                },
            );
            if Domain::parse(name).is_err() && name.parse::<std::net::Ipv4Addr>().is_err() {
                return Some("The to must be a path or an http(s) URL with a valid host name.".into());
            }
            path
        }
        Some(_) => return Some("The to must be a path or an http:// or https:// URL.".into()),
        None if to.starts_with('/') => to,
        None => return Some("The to must be a path starting with / or an absolute http(s) URL.".into()),
    };
    if to.len() > 2048 {
        return Some("The to may be at most 2,048 characters.".into());
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_suffix('*').unwrap_or(path);
    let query_char = |c: char| path_char(c) || "=&+,:@".contains(c);
    if !path.chars().all(path_char) || !query.chars().all(query_char) {
        return Some(
            "The to may hold letters, digits and / . _ ~ - (and = & + , : @ in its query) only, with an optional * \
             at the end of its path."
                .into(),
        );
    }
    if rest.split_once('?').map_or(rest, |(p, _)| p).ends_with('*') && !from.ends_with('*') {
        return Some("A to ending in * needs a from ending in *.".into());
    }
    if preserve_query && to.contains('?') {
        return Some("The to has a query already; set preserve_query to false or leave out the query.".into());
    }
    None
}

/// The nginx rules of one site, most specific first: exact paths (`location =`, which nginx
/// prefers to every other location), then prefixes, longest first (regex locations are tried in
/// file order).
pub fn render(domain: &str, rules: &[(String, RedirectSpec)]) -> Result<String, String> {
    let mut rules: Vec<&(String, RedirectSpec)> = rules.iter().collect();
    rules.sort_by_key(|(_, r)| (r.from.ends_with('*'), std::cmp::Reverse(r.from.len())));
    let mut out = format!("# Managed by Slipway: redirects of {domain}; edits are overwritten.\n");
    for (id, r) in rules {
        check_id("redirect", id)?;
        if let Some(why) = from_problem(&r.from).or_else(|| to_problem(&r.to, &r.from, r.preserve_query)) {
            return Err(format!("redirect {id}: {why}"));
        }
        if !STATUSES.contains(&r.status) {
            return Err(format!("redirect {id}: invalid status {}", r.status));
        }
        let query = if r.preserve_query { "$is_args$args" } else { "" };
        match r.from.strip_suffix('*') {
            None => {
                out.push_str(&format!("location = {} {{ return {} \"{}{query}\"; }}\n", r.from, r.status, r.to));
            }
            Some(prefix) => {
                let pattern = prefix.replace('.', "\\.");
                let (to_path, to_query) = r.to.split_once('?').map_or((r.to.as_str(), None), |(p, q)| (p, Some(q)));
                let target = match to_path.strip_suffix('*') {
                    Some(base) => format!("{base}$1"),
                    None => to_path.to_string(),
                };
                let target = match to_query {
                    Some(q) => format!("{target}?{q}"),
                    None => target,
                };
                out.push_str(&format!("location ~ ^{pattern}(.*)$ {{ return {} \"{target}{query}\"; }}\n", r.status));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str, status: u16, preserve_query: bool) -> RedirectSpec {
        RedirectSpec {
            site_id: "01SITE".into(),
            domain: "shop.example.com".into(),
            from: from.into(),
            to: to.into(),
            status,
            preserve_query,
        }
    }

    #[test]
    fn rules_render_most_specific_first() {
        let rules = vec![
            ("01A".to_string(), rule("/blog/*", "https://blog.example.com/*", 301, true)),
            ("01B".to_string(), rule("/old", "/new", 302, false)),
            ("01C".to_string(), rule("/blog/2020/*", "/archive", 308, false)),
        ];
        let conf = render("shop.example.com", &rules).unwrap();
        let lines: Vec<&str> = conf.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "location = /old { return 302 \"/new\"; }",
                "location ~ ^/blog/2020/(.*)$ { return 308 \"/archive\"; }",
                "location ~ ^/blog/(.*)$ { return 301 \"https://blog.example.com/$1$is_args$args\"; }",
            ]
        );
    }

    #[test]
    fn nothing_nginx_reads_as_syntax_gets_through() {
        for from in [
            "/a;b",
            "/a{",
            "/a}",
            "/a\"",
            "/a'b",
            "/a b",
            "/a\nb",
            "/a$x",
            "/a#b",
            "/a\\b",
            "a",
            "/a*b",
            "/*",
            "/.well-known/acme-challenge/*",
            "/.well-known/acme-challenge/x",
        ] {
            assert!(from_problem(from).is_some(), "{from:?}");
        }
        for to in [
            "/x;return 200",
            "/x\"",
            "/x$host",
            "/x}",
            "/x\n",
            "javascript:alert(1)",
            "ftp://example.com/",
            "https://exa mple.com/",
            "https://example.com/a b",
            "https://example.com/#x",
        ] {
            assert!(to_problem(to, "/a", false).is_some(), "{to:?}");
        }
        assert!(to_problem("/new/*", "/old", false).is_some(), "a * target needs a * source");
        assert!(to_problem("/new?a=b", "/old", true).is_some(), "two queries");
        assert!(to_problem("https://example.com:8443/new?a=b&c=d", "/old", false).is_none());
        assert!(to_problem("/new/*", "/old/*", true).is_none());
        let bad = vec![("01A".to_string(), rule("/a;b", "/c", 301, false))];
        assert!(render("shop.example.com", &bad).is_err(), "checked again before rendering");
    }
}
