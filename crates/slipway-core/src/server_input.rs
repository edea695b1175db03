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
