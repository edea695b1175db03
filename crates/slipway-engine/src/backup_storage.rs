//! Where backups go: an S3-compatible bucket, reached from Slipway with `object_store`, or a
//! directory on one of the organisation's servers, reached over SSH. Settings are checked here
//! (the API reports the problems as field errors) and again before use; the S3 secret key is
//! sealed at rest ([`secret_context`]).
//!
//! `probe` proves a storage works the way a backup will use it: write an object, read it back
//! and compare, delete it; it says which of those steps failed and the storage's own words.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};
use slipway_store::{BackupStorage, Server};

use crate::Engine;
use crate::script::Script;

/// The settings of an S3-compatible storage (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Settings {
    /// `https://…` (or `http://` for a store on a private network); `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Objects go under this prefix (`""` for the bucket's root).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted stores need.
    pub path_style: bool,
    pub access_key_id: String,
}

/// The settings of a directory on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSettings {
    pub server_id: String,
    /// An absolute directory; Slipway creates it (root only, mode 0700).
    pub path: String,
}

/// What the secret key of storage `id` is sealed with.
pub fn secret_context(id: &str) -> String {
    format!("backup-storage:{id}")
}

/// Directories a backup directory may not be in: the system's own.
const SYSTEM_DIRECTORIES: &[&str] =
    &["/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr"];

/// Why `path` cannot be a backup directory, if it cannot.
pub fn local_path_problem(path: &str) -> Option<String> {
    let plain = path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if !path.starts_with('/') || path.len() > 255 || !plain {
        return Some(
            "Give an absolute directory of letters, digits, /, ., _ and - (e.g. /var/backups/slipway).".into(),
        );
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|s| s == "." || s == "..") {
        return Some("The directory cannot be / or hold . or .. segments.".into());
    }
    if SYSTEM_DIRECTORIES.iter().any(|d| trimmed == *d || trimmed.starts_with(&format!("{d}/"))) {
        return Some(format!("{trimmed} is a system directory; use one of its own (e.g. /var/backups/slipway)."));
    }
    None
}

/// Why `bucket` cannot be an S3 bucket name, if it cannot.
pub fn bucket_problem(bucket: &str) -> Option<String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    (!ok).then(|| "A bucket name has 3 to 63 lowercase letters, digits, . and -.".into())
}

/// Why `prefix` cannot be an object prefix, if it cannot.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    let plain = prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if prefix.len() > 200 || !plain || prefix.starts_with('/') || prefix.split('/').any(|s| s == "." || s == "..") {
        return Some("A prefix is a relative path of letters, digits, /, ., _ and - (e.g. backups/acme).".into());
    }
    None
}

/// Why `region` cannot be a region name, if it cannot.
pub fn region_problem(region: &str) -> Option<String> {
    let ok = !region.is_empty() && region.len() <= 64 && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (!ok).then(|| "A region is letters, digits and - (e.g. us-east-1).".into())
}

/// Why `endpoint` cannot be an S3 endpoint, if it cannot.
pub fn endpoint_problem(endpoint: &str) -> Option<String> {
    let parsed = url::Url::parse(endpoint).ok();
    let ok = parsed.as_ref().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    (!ok || endpoint.len() > 255)
        .then(|| "Give the endpoint as https://host[:port] (http:// only on a private network).".into())
}

/// Why an access key id or secret cannot be one, if it cannot: printable ASCII, no spaces.
pub fn key_problem(key: &str) -> Option<String> {
    let ok = !key.is_empty() && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic());
    (!ok).then(|| "A key is 1 to 256 printable characters without spaces.".into())
}

/// A storage ready to use.
pub enum Storage {
    S3 { client: Arc<AmazonS3>, prefix: String },
    Local { server: Box<Server>, path: String },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::S3 { prefix, .. } => f.debug_struct("S3").field("prefix", prefix).finish_non_exhaustive(),
            Storage::Local { server, path } => {
                f.debug_struct("Local").field("server", &server.id).field("path", path).finish()
            }
        }
    }
}

/// One step of a probe and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProbeStep {
    /// `list` (the credentials and the bucket or directory), `write`, `read` or `delete`.
    pub step: String,
    /// `passed`, `failed` or `skipped` (an earlier step failed).
    pub status: String,
    /// The storage's own words, when it failed.
    pub error: Option<String>,
}

/// How long one request to a storage may take during a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

impl Storage {
    /// Opens `record` (its secret unsealed), or says why it cannot be.
    pub async fn open(engine: &Engine, record: &BackupStorage) -> Result<Storage, String> {
        match record.kind.as_str() {
            "s3" => {
                let settings: S3Settings = serde_json::from_str(&record.config).map_err(|e| e.to_string())?;
                let sealed = record.secret.as_deref().ok_or("the storage has no secret access key")?;
                let secret = engine
                    .secrets
                    .open(&secret_context(&record.id), sealed)
                    .map_err(|e| format!("the secret access key cannot be opened: {e}"))?;
                let secret = String::from_utf8(secret).map_err(|_| "the secret access key is not text".to_string())?;
                Ok(Storage::S3 { client: Arc::new(s3_client(&settings, &secret)?), prefix: settings.prefix })
            }
            "local" => {
                let settings: LocalSettings = serde_json::from_str(&record.config).map_err(|e| e.to_string())?;
                if let Some(why) = local_path_problem(&settings.path) {
                    return Err(why);
                }
                let server = engine
                    .store
                    .server(&settings.server_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .filter(|s| s.organization_id == record.organization_id)
                    .ok_or("the storage's server is gone")?;
                Ok(Storage::Local { server: Box::new(server), path: settings.path })
            }
            other => Err(format!("unknown storage kind {other:?}")),
        }
    }

    /// The object key of `name` under the storage's prefix.
    pub fn key(&self, name: &str) -> String {
        match self {
            Storage::S3 { prefix, .. } if !prefix.is_empty() => format!("{}/{name}", prefix.trim_end_matches('/')),
            Storage::S3 { .. } => name.to_string(),
            Storage::Local { path, .. } => format!("{}/{name}", path.trim_end_matches('/')),
        }
    }

    /// Writes, reads back and deletes a small probe object; every step with its outcome.
    pub async fn probe(&self, engine: &Engine) -> Vec<ProbeStep> {
        let content = slipway_core::token::random_base62(64);
        let name = format!(".slipway-probe-{}", slipway_core::new_id().to_lowercase());
        let outcome = match self {
            Storage::S3 { client, prefix } => {
                probe_s3(client, &ObjectPath::from(prefix.as_str()), &ObjectPath::from(self.key(&name)), &content).await
            }
            Storage::Local { server, path } => probe_local(engine, server, path, &name, &content).await,
        };
        let mut failed = false;
        ["list", "write", "read", "delete"]
            .iter()
            .map(|step| {
                let (status, error) = match &outcome {
                    _ if failed => ("skipped", None),
                    Err((at, why)) if at == step => {
                        failed = true;
                        ("failed", Some(why.clone()))
                    }
                    _ => ("passed", None),
                };
                ProbeStep { step: (*step).into(), status: status.into(), error }
            })
            .collect()
    }
}

/// An S3 client for `settings`: bounded requests, few retries (a probe must answer quickly; a
/// backup retries a part on its own).
fn s3_client(settings: &S3Settings, secret: &str) -> Result<AmazonS3, String> {
    // reqwest's rustls needs the process's crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = AmazonS3Builder::new()
        .with_region(&settings.region)
        .with_bucket_name(&settings.bucket)
        .with_access_key_id(&settings.access_key_id)
        .with_secret_access_key(secret)
        .with_virtual_hosted_style_request(!settings.path_style)
        .with_client_options(
            ClientOptions::new().with_timeout(PROBE_TIMEOUT).with_connect_timeout(Duration::from_secs(10)),
        )
        .with_retry(RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(30), ..Default::default() });
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    builder.build().map_err(|e| e.to_string())
}

async fn probe_s3(
    client: &AmazonS3,
    prefix: &ObjectPath,
    key: &ObjectPath,
    content: &str,
) -> Result<(), (&'static str, String)> {
    // Listing proves the credentials and the bucket before anything is written: some stores
    // create a missing bucket on the first write.
    client.list_with_delimiter(Some(prefix)).await.map_err(|e| ("list", e.to_string()))?;
    client.put(key, content.as_bytes().to_vec().into()).await.map_err(|e| ("write", e.to_string()))?;
    let read = async { client.get(key).await?.bytes().await };
    let back = read.await.map_err(|e| ("read", e.to_string()));
    let deleted = client.delete(key).await.map_err(|e| ("delete", e.to_string()));
    match back {
        Ok(bytes) if bytes.as_ref() == content.as_bytes() => deleted,
        Ok(_) => Err(("read", "the object read back differs from the one written".into())),
        Err(e) => Err(e),
    }
}

async fn probe_local(
    engine: &Engine,
    server: &Server,
    path: &str,
    name: &str,
    content: &str,
) -> Result<(), (&'static str, String)> {
    let script = Script::new("backup storage probe", include_str!("../scripts/backup_storage_probe.sh"))
        .var("DIR", path)
        .var("NAME", name)
        .var("CONTENT", content);
    let lines = crate::probe::read(engine, server, &script, PROBE_TIMEOUT).await.map_err(|e| ("list", e))?;
    for line in &lines {
        if let Some(failed) = line.strip_prefix("slipway-probe-failed ") {
            let (step, why) = failed.split_once(' ').unwrap_or((failed, ""));
            let step = match step {
                "list" => "list",
                "read" => "read",
                "delete" => "delete",
                _ => "write",
            };
            return Err((step, why.to_string()));
        }
    }
    if lines.iter().any(|l| l == "slipway-probe-passed") {
        Ok(())
    } else {
        Err(("write", "the server did not answer the probe".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_held_to_plain_values() {
        assert_eq!(local_path_problem("/var/backups/slipway"), None);
        for bad in
            ["relative", "/", "/etc", "/etc/x", "/usr/lib", "/var/../etc", "/a b", "/a;b", "/a'b", "/a\nb", "/a/./b"]
        {
            assert!(local_path_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(bucket_problem("my-bucket.2"), None);
        for bad in ["ab", "My", "-ab", "ab-", "a_b", "a b"] {
            assert!(bucket_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(prefix_problem("backups/acme"), None);
        assert_eq!(prefix_problem(""), None);
        for bad in ["/abs", "a/../b", "a b", "a\nb"] {
            assert!(prefix_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(endpoint_problem("https://s3.example.com"), None);
        assert_eq!(endpoint_problem("http://127.0.0.1:9000"), None);
        for bad in ["ftp://x", "https://u:p@x", "x", "https://x?q=1"] {
            assert!(endpoint_problem(bad).is_some(), "{bad:?}");
        }
        assert!(
            key_problem("AKIA EXAMPLE").is_some() && key_problem("").is_some() && key_problem("AKIAEXAMPLE").is_none()
        );
    }
}
