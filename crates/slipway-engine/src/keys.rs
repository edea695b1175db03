//! Each organisation's SSH key pair: created on first use, private half sealed at rest.

use slipway_core::SecretsKey;
use slipway_remote::SshKeypair;
use slipway_store::{Store, StoreError};

fn context(organization_id: &str) -> String {
    format!("org-ssh-key:{organization_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the organization's SSH key cannot be read: {0}")]
    Unreadable(String),
}

/// The organisation's key pair; the first caller creates it, every caller gets the same one.
pub async fn organization_keypair(
    store: &dyn Store,
    secrets: &SecretsKey,
    organization_id: &str,
) -> Result<SshKeypair, KeyError> {
    let candidate = SshKeypair::generate();
    let sealed = secrets.seal(&context(organization_id), candidate.private_openssh().expose().as_bytes());
    let (_, stored) = store.organization_key(organization_id, (candidate.public_openssh(), &sealed)).await?;
    let private = secrets.open(&context(organization_id), &stored).map_err(|e| KeyError::Unreadable(e.to_string()))?;
    let private = String::from_utf8(private).map_err(|e| KeyError::Unreadable(e.to_string()))?;
    SshKeypair::from_private_openssh(&private).map_err(KeyError::Unreadable)
}
