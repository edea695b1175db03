//! Incoming git push webhooks: checking a delivery's signature (in constant time) and reading
//! the pushed branch and commit, for GitHub, GitLab, Bitbucket and a generic format.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, event `X-GitHub-Event`.
//! - GitLab: `X-Gitlab-Token: <secret>`, event `X-Gitlab-Event`.
//! - Bitbucket: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, event `X-Event-Key`.
//! - Generic: `X-Slipway-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; body
//!   `{"ref": "refs/heads/main" or "branch": "main", "commit": "<sha>"}`.
//!
//! Each delivery may carry the host's id for it, which a replay repeats ([`Flavor::delivery_headers`]):
//! GitHub `X-GitHub-Delivery`, GitLab `X-Gitlab-Event-UUID` (or `X-Gitlab-Webhook-UUID`),
//! Bitbucket Cloud `X-Request-UUID` (not `X-Hook-UUID`, which names the hook), generic
//! `X-Slipway-Delivery`. The id is outside the signature: it recognises replays of a delivery
//! that keep the id, not a replayed body sent with a new one.

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

    /// The headers that may carry the delivery's id, in order of preference. GitLab's
    /// `X-Gitlab-Event-UUID` names the event; its `X-Gitlab-Webhook-UUID` is made afresh for
    /// every request, so it only recognises a request replayed as captured, not GitLab's own
    /// resend: the event's id is preferred.
    pub fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            Flavor::Github => &["x-github-delivery"],
            Flavor::Gitlab => &["x-gitlab-event-uuid", "x-gitlab-webhook-uuid"],
            Flavor::Bitbucket => &["x-request-uuid"],
            Flavor::Generic => &["x-slipway-delivery"],
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

/// The longest delivery id accepted (the hosts send 36-character UUIDs).
pub const DELIVERY_ID_MAX: usize = 128;

/// A delivery-id header that is present but not 1 to [`DELIVERY_ID_MAX`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} header must be 1 to {DELIVERY_ID_MAX} visible ASCII characters")]
pub struct MalformedDeliveryId(pub &'static str);

/// The delivery's id: from the first of the flavor's [`Flavor::delivery_headers`] that is
/// present (`header` looks one up by its lower-case name and gives its raw bytes). `Ok(None)`
/// when none is; an error when the one present is empty, too long, or not visible ASCII
/// (so a misconfigured sender learns that its deliveries are not told apart, instead of that
/// happening silently).
pub fn delivery_id<'a>(
    flavor: Flavor,
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<Option<String>, MalformedDeliveryId> {
    let Some((name, value)) = flavor.delivery_headers().iter().find_map(|name| header(name).map(|v| (*name, v))) else {
        return Ok(None);
    };
    let well_formed = (1..=DELIVERY_ID_MAX).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic);
    if !well_formed {
        return Err(MalformedDeliveryId(name));
    }
    Ok(Some(String::from_utf8(value.to_vec()).expect("ASCII is UTF-8")))
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
    format!("sha256={}", crate::hex::encode(digest))
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
    fn delivery_ids_are_read_per_flavor_and_checked() {
        let uuid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        let only = |name: &'static str, value: &'static [u8]| move |h: &str| (h == name).then_some(value);
        assert_eq!(delivery_id(Flavor::Github, only("x-github-delivery", uuid.as_bytes())), Ok(Some(uuid.into())));
        assert_eq!(delivery_id(Flavor::Bitbucket, only("x-request-uuid", b"{abc-1}")), Ok(Some("{abc-1}".into())));
        assert_eq!(delivery_id(Flavor::Bitbucket, only("x-hook-uuid", b"{hook}")), Ok(None), "names the hook");
        assert_eq!(delivery_id(Flavor::Generic, only("x-slipway-delivery", b"d-1")), Ok(Some("d-1".into())));
        assert_eq!(delivery_id(Flavor::Generic, only("x-github-delivery", b"d-1")), Ok(None), "per flavor");
        assert_eq!(delivery_id(Flavor::Gitlab, only("x-gitlab-webhook-uuid", b"w-1")), Ok(Some("w-1".into())));
        let both = |h: &str| match h {
            "x-gitlab-event-uuid" => Some(&b"e-1"[..]),
            "x-gitlab-webhook-uuid" => Some(&b"w-1"[..]),
            _ => None,
        };
        assert_eq!(delivery_id(Flavor::Gitlab, both), Ok(Some("e-1".into())), "the event's id is kept on a resend");

        let long = "a".repeat(DELIVERY_ID_MAX);
        assert_eq!(delivery_id(Flavor::Github, |_| Some(long.as_bytes())), Ok(Some(long.clone())));
        let too_long = "a".repeat(DELIVERY_ID_MAX + 1);
        let malformed = Err(MalformedDeliveryId("x-github-delivery"));
        assert_eq!(delivery_id(Flavor::Github, |_| Some(too_long.as_bytes())), malformed);
        for bad in [&b""[..], b"has space", b"tab\t", b"caf\xc3\xa9", b"nul\0"] {
            assert_eq!(delivery_id(Flavor::Github, |_| Some(bad)), malformed, "{bad:?}");
        }
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
