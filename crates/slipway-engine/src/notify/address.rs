//! Where outgoing notifications may go. A webhook URL is chosen by a user, so without a rule it
//! could make Slipway call services only it can reach (its own API on loopback, a cloud metadata
//! address, a database on the private network): server-side request forgery. By default
//! loopback, private, link-local, shared and other non-public addresses are refused, both when a
//! channel is saved and on every send (the name is resolved again, and every address it resolves
//! to must be allowed, so a name that later points inwards is caught). Redirects are never
//! followed. `notification_allowed_networks` opens chosen ranges (a receiver on the private
//! network, or loopback in tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The rule for webhook addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Plain `http://` URLs are allowed (default: https only).
    pub allow_http: bool,
    /// Ranges allowed even though they are not public.
    pub allowed_networks: Vec<IpNet>,
}

impl AddressPolicy {
    /// Why `url` may not be a notification target, or `None`. Names are not resolved here (see
    /// [`AddressPolicy::check_resolved`]).
    pub fn url_problem(&self, url: &str) -> Option<String> {
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            Err(_) => return Some("Give an absolute URL (https://…).".into()),
        };
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Some("Use https:// (plain http is off; see notification_allow_http).".into()),
            _ => return Some("The URL must start with https://.".into()),
        }
        match parsed.host() {
            None => Some("The URL has no host.".into()),
            Some(url::Host::Ipv4(ip)) => self.ip_problem(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.ip_problem(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") => {
                self.ip_problem(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            Some(url::Host::Domain(_)) => None,
        }
    }

    /// Why `ip` may not be sent to, or `None`.
    pub fn ip_problem(&self, ip: IpAddr) -> Option<String> {
        if self.allowed_networks.iter().any(|n| n.contains(&ip)) || is_public(ip) {
            None
        } else {
            Some(format!(
                "{ip} is not a public address; notifications are not sent to loopback, private or \
                 link-local addresses unless notification_allowed_networks allows them."
            ))
        }
    }

    /// Resolves `host` and checks every address it gives.
    pub async fn check_resolved(&self, host: &str) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host, 0)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        for addr in &addrs {
            if let Some(why) = self.ip_problem(addr.ip()) {
                return Err(format!("{host} resolves to {}: {why}", addr.ip()));
            }
        }
        Ok(addrs)
    }

    /// A resolver for the HTTP client that refuses names resolving to addresses not allowed.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver(self.clone()))
    }
}

/// Resolves through the system and applies the [`AddressPolicy`] to the answer.
#[derive(Debug)]
pub struct GuardedResolver(AddressPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = policy
                .check_resolved(&host)
                .await
                .map_err(|why| -> Box<dyn std::error::Error + Send + Sync> { why.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is a globally routed unicast address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 (reaches IPv4, possibly private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_and_plain_http_are_refused_by_default() {
        let policy = AddressPolicy::default();
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost:8080/",
            "https://api.localhost/",
            "http://example.com/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(policy.url_problem(url).is_some(), "{url} must be refused");
        }
        for url in ["https://hooks.slack.com/services/T/B/x", "https://93.184.215.14/", "https://[2606:4700::1]/"] {
            assert_eq!(policy.url_problem(url), None, "{url}");
        }
    }

    #[test]
    fn allowed_networks_and_http_open_what_they_name_only() {
        let policy = AddressPolicy { allow_http: true, allowed_networks: vec!["127.0.0.0/8".parse().unwrap()] };
        assert_eq!(policy.url_problem("http://127.0.0.1:9000/hook"), None);
        assert!(policy.url_problem("http://10.0.0.1/").is_some());
        assert!(policy.url_problem("http://[::1]/").is_some());
    }

    #[tokio::test]
    async fn a_name_that_resolves_inwards_is_refused_when_resolved() {
        let policy = AddressPolicy::default();
        let why = policy.check_resolved("localhost").await.unwrap_err();
        assert!(why.contains("not a public address"), "{why}");
    }
}
