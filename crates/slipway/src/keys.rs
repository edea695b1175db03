//! Loading the secrets key, creating it on first start, and proving it is the key the
//! database's secrets were written with.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use slipway_core::SecretsKey;
use slipway_store::Store;

use crate::config::SecretKeySource;

/// Settings key holding a value sealed with the secrets key; it opens only with the same key.
const KEY_CHECK_SETTING: &str = "secrets_key_check";
const KEY_CHECK_CONTEXT: &str = "slipway:secrets-key-check";

pub fn load_or_create(source: &SecretKeySource) -> anyhow::Result<SecretsKey> {
    match source {
        SecretKeySource::Given(text) => SecretsKey::from_base64(text.expose()).context("SLIPWAY_SECRET_KEY is invalid"),
        SecretKeySource::File(path) if path.exists() => read_key_file(path),
        SecretKeySource::File(path) => create_key_file(path),
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretsKey> {
    let mode = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "the secrets key file {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    SecretsKey::from_base64(&text).with_context(|| format!("the secrets key file {} is invalid", path.display()))
}

fn create_key_file(path: &Path) -> anyhow::Result<SecretsKey> {
    let key = SecretsKey::generate();
    // create_new: never overwrite a key another process wrote in the meantime.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the secrets key file {}", path.display()))?;
    writeln!(file, "{}", key.to_base64())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new secrets key; back it up with the database");
    Ok(key)
}

/// Records a check value on first use and, on every later start, refuses a key that cannot
/// open it: starting with the wrong key would write secrets that the other replicas (or a
/// restored backup) can never read.
pub async fn verify_against_store(key: &SecretsKey, store: &dyn Store) -> anyhow::Result<()> {
    let proposed = STANDARD.encode(key.seal(KEY_CHECK_CONTEXT, b"slipway"));
    let stored = store.init_setting(KEY_CHECK_SETTING, &proposed).await.context("cannot read the key check")?;
    let sealed = STANDARD.decode(stored.trim()).context("the stored key check is corrupt")?;
    if key.open(KEY_CHECK_CONTEXT, &sealed).is_err() {
        bail!(
            "the secrets key does not match the one this database was first used with; \
             start with the original key (SLIPWAY_SECRET_KEY or DATA_DIR/secret.key)"
        );
    }
    Ok(())
}
