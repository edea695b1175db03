//! Validated values that describe how to reach a server. Each constructor rejects anything that
//! could break a script, a config file or an `authorized_keys` line, so later code can only
//! ever hold a safe value.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A Unix account name: `[a-z_][a-z0-9_-]{0,31}` (the portable subset useradd accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixUser(String);

impl UnixUser {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && (b.is_ascii_digit() || b == b'-')));
        if ok {
            Ok(UnixUser(text.to_string()))
        } else {
            Err("must be 1-32 characters of a-z, 0-9, _ and -, starting with a letter or _".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a server is: an IP address or a DNS host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host(ip.to_string()));
        }
        let labels_ok = text.len() <= 253
            && !text.is_empty()
            && text.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if labels_ok { Ok(Host(text.to_ascii_lowercase())) } else { Err("must be an IP address or a host name".into()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An SSH public key in `authorized_keys` form: `TYPE BASE64 [COMMENT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    pub algorithm: String,
    pub blob: String,
    pub comment: Option<String>,
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl SshPublicKey {
    /// Accepts exactly one key. Options (`command="…"`, `from=…`) are refused: a key added
    /// through the API must not be able to set them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.contains(['\n', '\r', '\0']) {
            return Err("must be a single public key on one line".into());
        }
        let mut parts = text.splitn(3, ' ');
        let algorithm = parts.next().unwrap_or_default();
        if !KEY_TYPES.contains(&algorithm) {
            return Err(format!("must start with a supported key type ({})", KEY_TYPES.join(", ")));
        }
        let blob = parts.next().unwrap_or_default();
        let decoded = STANDARD.decode(blob).map_err(|_| "the key data is not valid base64".to_string())?;
        // The blob begins with the algorithm name as a length-prefixed string; it must agree.
        let declared = decoded
            .get(0..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|len| decoded.get(4..4 + len));
        if declared != Some(algorithm.as_bytes()) {
            return Err("the key data does not match its type; paste the whole line of the .pub file".into());
        }
        let comment = parts.next().map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
        if comment.as_deref().is_some_and(|c| c.chars().any(char::is_control) || c.len() > 255) {
            return Err("the comment may not contain control characters or exceed 255 bytes".into());
        }
        Ok(SshPublicKey { algorithm: algorithm.to_string(), blob: blob.to_string(), comment })
    }

    /// The line for `authorized_keys`, with Slipway's own marker as the comment so keys it added
    /// can be told from the server owner's.
    pub fn authorized_keys_line(&self, marker: &str) -> String {
        format!("{} {} {marker}", self.algorithm, self.blob)
    }
}

/// A port or an inclusive range of ports, `80` or `8000-8100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let port = |p: &str| {
            Some(p)
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| "must be a port (1-65535) or a range such as 8000-8100".to_string())
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(text)?, port(text)?),
        };
        if first > last {
            return Err("must be a range whose first port is not above its last".into());
        }
        Ok(PortRange { first, last })
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

/// An address or network in CIDR form, normalised (`10.0.0.7/8` is refused: host bits set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || "must be an IP address or a network in CIDR form, such as 203.0.113.0/24".to_string();
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let address: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        if let std::net::IpAddr::V6(v6) = address
            && v6.to_ipv4_mapped().is_some()
        {
            return Err("is an IPv4 address written as IPv6; write it as IPv4".into());
        }
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(format!("has a prefix longer than {max}"));
        }
        let cidr = Cidr { address, prefix };
        if cidr.network() != address {
            return Err(format!("has host bits set; did you mean {}/{prefix}?", cidr.network()));
        }
        Ok(cidr)
    }

    /// The address with the host bits cleared.
    pub fn network(&self) -> std::net::IpAddr {
        use std::net::IpAddr;
        match self.address {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The PHP versions an operating system's own packages offer (`php8.2-fpm` on Debian 12, …),
/// for the systems Slipway provisions; `None` for any other. Checked when the system is known
/// (at verify, and when `php_version` changes afterwards) so a wrong version is caught before
/// provisioning starts.
pub fn php_versions_on(os: &str) -> Option<&'static [&'static str]> {
    match os {
        "debian 12" => Some(&["8.2"]),
        "debian 13" => Some(&["8.4"]),
        "ubuntu 22.04" => Some(&["8.1"]),
        "ubuntu 24.04" => Some(&["8.3"]),
        _ => None,
    }
}

/// Why `php_version` cannot be used on `os`, when the system's packages do not offer it.
pub fn php_unavailable(php_version: &str, os: &str) -> Option<String> {
    let offered = php_versions_on(os)?;
    (!offered.contains(&php_version))
        .then(|| format!("PHP {php_version} is not available on {os}, which offers PHP {}", offered.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb ana@laptop";

    #[test]
    fn unix_users() {
        for ok in ["slipway", "deploy_1", "_svc", "a-b"] {
            assert!(UnixUser::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Root", "1abc", "-x", "a b", "a;rm", "a$(id)", "ü", &"a".repeat(33)] {
            assert!(UnixUser::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(PortRange::parse("80").unwrap(), PortRange { first: 80, last: 80 });
        assert_eq!(PortRange::parse("8000-8100").unwrap().to_string(), "8000-8100");
        assert!(PortRange::parse("8000-8100").unwrap().contains(8050));
        for bad in ["", "0", "65536", "90-80", "80;", "80 || true", "-1", "1-", "$(id)", "80\n"] {
            assert!(PortRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(Cidr::parse("203.0.113.0/24").unwrap().to_string(), "203.0.113.0/24");
        assert_eq!(Cidr::parse("198.51.100.7").unwrap().to_string(), "198.51.100.7/32");
        assert_eq!(Cidr::parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert!(Cidr::parse("10.0.0.7/8").unwrap_err().contains("10.0.0.0/8"));
        for bad in
            ["", "any", "::ffff:1.2.3.4", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "1.2.3.4; drop", "::/129", "a/b"]
        {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(Host::parse("203.0.113.10").unwrap().as_str(), "203.0.113.10");
        assert_eq!(Host::parse("::1").unwrap().as_str(), "::1");
        assert_eq!(Host::parse("Web-1.Example.com").unwrap().as_str(), "web-1.example.com");
        for bad in ["", "a..b", "-a.com", "a_b.com", "host;rm", "$(id)", "a b", "example.com\n"] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_keys() {
        let key = SshPublicKey::parse(ED25519).unwrap();
        assert_eq!((key.algorithm.as_str(), key.comment.as_deref()), ("ssh-ed25519", Some("ana@laptop")));
        assert_eq!(key.authorized_keys_line("slipway:01ABC"), format!("ssh-ed25519 {} slipway:01ABC", key.blob));
        let mismatched = ED25519.replace("ssh-ed25519", "ssh-rsa");
        for bad in [
            "",
            "not a key",
            &mismatched,
            "ssh-ed25519 !!!notbase64",
            "command=\"rm -rf /\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb",
            &format!("{ED25519}\nssh-ed25519 AAAA second"),
            &format!("{ED25519} \u{7}bell"),
        ] {
            assert!(SshPublicKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
