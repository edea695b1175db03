//! Incoming git push webhooks: checking a delivery's signature (in constant time) and reading
//! the pushed branch and commit, for GitHub, GitLab, Bitbucket and a generic format.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, event `X-GitHub-Event`.
//! - GitLab: `X-Gitlab-Token: <secret>`, event `X-Gitlab-Event`.
//! - Bitbucket: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, event `X-Event-Key`.
//! - Generic: `X-Slipway-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; body
//!   `{"ref": "refs/heads/main" or "branch": "main", "commit": "<sha>"}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Github,
    Gitlab,
    Bitbucket,
    Generic,
}

impl Flavor {
    pub fn parse(text: &str) -> Option<Flavor> {
        match text {
            "github" => Some(Flavor::Github),
            "gitlab" => Some(Flavor::Gitlab),
            "bitbucket" => Some(Flavor::Bitbucket),
            "generic" => Some(Flavor::Generic),
            _ => None,
        }
    }

    /// The header that carries the signature (or token).
    pub fn signature_header(self) -> &'static str {
        match self {
            Flavor::Github => "x-hub-signature-256",
            Flavor::Gitlab => "x-gitlab-token",
            Flavor::Bitbucket => "x-hub-signature",
            Flavor::Generic => "x-slipway-signature",
        }
    }

    /// The header naming the event, when the flavor has one.
    pub fn event_header(self) -> Option<&'static str> {
        match self {
            Flavor::Github => Some("x-github-event"),
            Flavor::Gitlab => Some("x-gitlab-event"),
            Flavor::Bitbucket => Some("x-event-key"),
            Flavor::Generic => None,
        }
    }

    /// Whether an event name is a push.
    pub fn is_push(self, event: Option<&str>) -> bool {
        match (self, event) {
            (Flavor::Github, Some(e)) => e == "push",
            (Flavor::Gitlab, Some(e)) => e == "Push Hook",
            (Flavor::Bitbucket, Some(e)) => e == "repo:push",
            (Flavor::Generic, _) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the delivery has no {0} header")]
    Missing(&'static str),
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a delivery's signature against the repository's secret.
pub fn verify(flavor: Flavor, secret: &[u8], signature: Option<&str>, body: &[u8]) -> Result<(), Rejection> {
    let header = flavor.signature_header();
    let given = signature.map(str::trim).filter(|s| !s.is_empty()).ok_or(Rejection::Missing(header))?;
    match flavor {
        Flavor::Gitlab => {
            if constant_time_eq(given.as_bytes(), secret) {
                Ok(())
            } else {
                Err(Rejection::Mismatch)
            }
        }
        _ => {
            let hex = given.strip_prefix("sha256=").ok_or(Rejection::Mismatch)?;
            let expected = decode_hex(hex).ok_or(Rejection::Mismatch)?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(body);
            mac.verify_slice(&expected).map_err(|_| Rejection::Mismatch)
        }
    }
}

/// `sha256=<hex>` for a body, as GitHub, Bitbucket and the generic format send it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is not secret (the token's length is fixed by Slipway); the contents are.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The pushed branch and commit, if the payload is a push to a branch.
pub fn pushed(flavor: Flavor, body: &[u8]) -> Option<(String, Option<String>)> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let branch_of = |r: &str| r.strip_prefix("refs/heads/").map(str::to_string);
    let sha = |v: &serde_json::Value| {
        v.as_str()
            .filter(|s| s.len() >= 7 && s.bytes().all(|b| b.is_ascii_hexdigit()) && !s.bytes().all(|b| b == b'0'))
            .map(str::to_string)
    };
    match flavor {
        Flavor::Github | Flavor::Gitlab => {
            let branch = branch_of(json["ref"].as_str()?)?;
            let commit = sha(&json["after"]).or_else(|| sha(&json["checkout_sha"]));
            Some((branch, commit))
        }
        Flavor::Bitbucket => {
            let change = json["push"]["changes"].as_array()?.iter().rev().find(|c| c["new"]["type"] == "branch")?;
            Some((change["new"]["name"].as_str()?.to_string(), sha(&change["new"]["target"]["hash"])))
        }
        Flavor::Generic => {
            let branch = match json["ref"].as_str() {
                Some(r) => branch_of(r)?,
                None => json["branch"].as_str()?.to_string(),
            };
            Some((branch, sha(&json["commit"])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";

    #[test]
    fn github_signature_matches_the_published_example() {
        // The example from GitHub's "Validating webhook deliveries" documentation.
        let body = b"Hello, World!";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(SECRET, body), expected);
        assert_eq!(verify(Flavor::Github, SECRET, Some(expected), body), Ok(()));
        assert_eq!(verify(Flavor::Github, SECRET, Some(expected), b"Hello, World?"), Err(Rejection::Mismatch));
        assert_eq!(verify(Flavor::Github, b"other", Some(expected), body), Err(Rejection::Mismatch));
        assert_eq!(verify(Flavor::Github, SECRET, None, body), Err(Rejection::Missing("x-hub-signature-256")));
        assert_eq!(verify(Flavor::Github, SECRET, Some("sha1=abc"), body), Err(Rejection::Mismatch));
        assert_eq!(verify(Flavor::Github, SECRET, Some("sha256=zz"), body), Err(Rejection::Mismatch));
    }

    #[test]
    fn gitlab_compares_the_token() {
        assert_eq!(verify(Flavor::Gitlab, b"tok", Some("tok"), b"{}"), Ok(()));
        assert_eq!(verify(Flavor::Gitlab, b"tok", Some("tok2"), b"{}"), Err(Rejection::Mismatch));
        assert!(verify(Flavor::Gitlab, b"tok", None, b"{}").is_err());
    }

    #[test]
    fn pushes_are_read_per_flavor() {
        let github = br#"{"ref":"refs/heads/main","after":"5bdadde5389c5d1c97ed42c345ab6c84b84cf112"}"#;
        assert_eq!(
            pushed(Flavor::Github, github),
            Some(("main".into(), Some("5bdadde5389c5d1c97ed42c345ab6c84b84cf112".into())))
        );
        let tag = br#"{"ref":"refs/tags/v1","after":"5bdadde5"}"#;
        assert_eq!(pushed(Flavor::Github, tag), None, "tags are not branches");
        let deleted = br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000"}"#;
        assert_eq!(pushed(Flavor::Gitlab, deleted), Some(("old".into(), None)));
        let bitbucket =
            br#"{"push":{"changes":[{"new":{"type":"branch","name":"main","target":{"hash":"abcdef1234567"}}}]}}"#;
        assert_eq!(pushed(Flavor::Bitbucket, bitbucket), Some(("main".into(), Some("abcdef1234567".into()))));
        let generic = br#"{"branch":"release","commit":"abcdef1"}"#;
        assert_eq!(pushed(Flavor::Generic, generic), Some(("release".into(), Some("abcdef1".into()))));
        assert_eq!(pushed(Flavor::Generic, b"not json"), None);
        assert!(Flavor::Gitlab.is_push(Some("Push Hook")) && !Flavor::Github.is_push(Some("ping")));
    }
}
