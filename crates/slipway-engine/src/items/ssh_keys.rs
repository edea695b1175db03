//! SSH keys that may log in to the server as the deploy user: a managed block of its
//! `authorized_keys`, replaced whole; lines added by hand outside the block are kept.

use serde::{Deserialize, Serialize};
use slipway_core::server_input::SshPublicKey;
use slipway_store::{Server, ServerItem};

use super::{DEPLOY_USER, ItemKind, check_id, specs};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct SshKeys;

impl ItemKind for SshKeys {
    fn name(&self) -> &'static str {
        "ssh_key"
    }

    fn progress(&self) -> &'static str {
        "==> installing SSH keys of the deploy user"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-ssh-keys", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, _: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        let block = authorized_keys_block(&specs(items)?)?;
        Ok(Script::new("ssh keys", include_str!("../../scripts/ssh_keys.sh"))
            .var("DEPLOY_USER", DEPLOY_USER)
            .file_var("KEYS", block.as_bytes()))
    }
}

/// An SSH key as stored: the validated key without its comment (the file gets Slipway's marker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKeySpec {
    pub public_key: String,
    pub fingerprint: String,
}

/// The managed block of the deploy user's `authorized_keys`.
pub fn authorized_keys_block(keys: &[(String, SshKeySpec)]) -> Result<String, String> {
    let mut out = String::from("# BEGIN slipway-managed keys (edits inside this block are overwritten)\n");
    for (id, spec) in keys {
        let key = SshPublicKey::parse(&spec.public_key).map_err(|e| format!("key {id}: {e}"))?;
        check_id("key", id)?;
        out.push_str(&key.authorized_keys_line(&format!("slipway-key-{id}")));
        out.push('\n');
    }
    out.push_str("# END slipway-managed keys\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorized_keys_carry_only_the_key_and_slipways_marker() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb";
        let spec = SshKeySpec { public_key: format!("{key} $(touch /tmp/x)"), fingerprint: String::new() };
        let block = authorized_keys_block(&[("01KEY".into(), spec)]).unwrap();
        assert_eq!(
            block.lines().collect::<Vec<_>>(),
            [
                "# BEGIN slipway-managed keys (edits inside this block are overwritten)",
                &format!("{key} slipway-key-01KEY"),
                "# END slipway-managed keys"
            ]
        );
        let bad = SshKeySpec { public_key: "command=\"x\" ssh-ed25519 AAAA".into(), fingerprint: String::new() };
        assert!(authorized_keys_block(&[("01K".into(), bad)]).is_err());
    }
}
