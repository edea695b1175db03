//! What Slipway keeps on a server besides its base setup: SSH keys of the deploy user and
//! firewall rules. Both are applied the same way: render everything the server should have
//! (every item not being removed) and replace Slipway's part on the server in one step, so a
//! sync is idempotent and a failed one leaves the previous state in place.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use slipway_core::server_input::{Cidr, PortRange, SshPublicKey};
use slipway_jobs::{JobContext, JobError, JobHandler};
use slipway_remote::SshConnection;
use slipway_store::{Server, ServerItem};

use crate::Engine;
use crate::script::Script;
use crate::session::{connect, load_server, run_script, store_error};
use crate::verify::ServerJob;

/// The user sites run as and people log in as to deploy by hand.
pub const DEPLOY_USER: &str = "slipway";

pub const SSH_KEY: &str = "ssh_key";
pub const NETWORK_RULE: &str = "network_rule";
pub const SERVER_SYNC_SSH_KEYS: &str = "server.sync-ssh-keys";
pub const SERVER_SYNC_NETWORK_RULES: &str = "server.sync-network-rules";

/// The job that applies items of `kind`.
pub fn sync_job_kind(kind: &str) -> &'static str {
    if kind == SSH_KEY { SERVER_SYNC_SSH_KEYS } else { SERVER_SYNC_NETWORK_RULES }
}

/// An SSH key as stored: the validated key without its comment (the file gets Slipway's marker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKeySpec {
    pub public_key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Allow,
    Deny,
}

/// A firewall rule as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRuleSpec {
    pub ports: PortRange,
    pub protocol: Protocol,
    /// A CIDR, or `None` for any source.
    pub from: Option<String>,
    pub action: RuleAction,
}

impl NetworkRuleSpec {
    /// True when the rule would refuse Slipway's own SSH connections.
    pub fn locks_out_ssh(&self, ssh_port: u16) -> bool {
        self.action == RuleAction::Deny && self.protocol == Protocol::Tcp && self.ports.contains(ssh_port)
    }
}

/// The nftables ruleset for a server: Slipway's SSH port first (it can never be blocked), then
/// deny rules, then allow rules, then the web ports; everything else inbound is dropped. Loaded
/// with `nft -f`, it replaces Slipway's table in one transaction.
pub fn firewall_ruleset(ssh_port: u16, rules: &[(String, NetworkRuleSpec)]) -> Result<String, String> {
    let mut out = String::from(
        "# Managed by Slipway; edits are overwritten. Add rules through the API instead.\n\
         table inet slipway\n\
         delete table inet slipway\n\
         table inet slipway {\n\
         \tchain input {\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tiif \"lo\" accept\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n\
         \t\tmeta l4proto { icmp, ipv6-icmp } accept\n\
         \t\tip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment \"dhcpv6 replies\"\n",
    );
    out.push_str(&format!("\t\ttcp dport {ssh_port} accept comment \"slipway ssh\"\n"));
    let mut ordered: Vec<&(String, NetworkRuleSpec)> = rules.iter().collect();
    ordered.sort_by_key(|(_, r)| r.action == RuleAction::Allow);
    for (id, rule) in ordered {
        // Ids are Slipway's own ULIDs; checked anyway, since they reach a config file.
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("invalid rule id {id:?}"));
        }
        let source = match &rule.from {
            None => String::new(),
            Some(text) => {
                let cidr = Cidr::parse(text).map_err(|e| format!("rule {id}: from {e}"))?;
                let family = if cidr.address.is_ipv4() { "ip" } else { "ip6" };
                format!("{family} saddr {cidr} ")
            }
        };
        let protocol = match rule.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let verdict = match rule.action {
            RuleAction::Allow => "accept",
            RuleAction::Deny => "drop",
        };
        out.push_str(&format!("\t\t{source}{protocol} dport {} {verdict} comment \"slipway rule {id}\"\n", rule.ports));
    }
    out.push_str("\t\ttcp dport { 80, 443 } accept comment \"slipway web\"\n\t}\n}\n");
    Ok(out)
}

/// Loads the rules early at boot, like Debian's nftables.service: without default
/// dependencies, so it cannot join an ordering cycle (and be dropped) with cloud-init.
const FIREWALL_UNIT: &str = "[Unit]\nDescription=Slipway firewall rules\nWants=network-pre.target\n\
    Before=network-pre.target shutdown.target\nConflicts=shutdown.target\nDefaultDependencies=no\n\n\
    [Service]\nType=oneshot\nRemainAfterExit=yes\nStandardInput=null\nProtectSystem=full\nProtectHome=true\n\
    ExecStart=/usr/sbin/nft -f /etc/slipway/firewall.nft\n\n[Install]\nWantedBy=sysinit.target\n";

/// The managed block of the deploy user's `authorized_keys`.
pub fn authorized_keys_block(keys: &[(String, SshKeySpec)]) -> Result<String, String> {
    let mut out = String::from("# BEGIN slipway-managed keys (edits inside this block are overwritten)\n");
    for (id, spec) in keys {
        let key = SshPublicKey::parse(&spec.public_key).map_err(|e| format!("key {id}: {e}"))?;
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("invalid key id {id:?}"));
        }
        out.push_str(&key.authorized_keys_line(&format!("slipway-key-{id}")));
        out.push('\n');
    }
    out.push_str("# END slipway-managed keys\n");
    Ok(out)
}

/// The script that puts items of `kind` on the server.
fn sync_script(server: &Server, kind: &str, items: &[&ServerItem]) -> Result<Script, String> {
    fn specs<T: serde::de::DeserializeOwned>(items: &[&ServerItem]) -> Result<Vec<(String, T)>, String> {
        items
            .iter()
            .map(|i| {
                serde_json::from_str(&i.spec).map(|s| (i.id.clone(), s)).map_err(|e| format!("item {}: {e}", i.id))
            })
            .collect()
    }
    if kind == SSH_KEY {
        let block = authorized_keys_block(&specs(items)?)?;
        Ok(Script::new("ssh keys", include_str!("../scripts/ssh_keys.sh"))
            .var("DEPLOY_USER", DEPLOY_USER)
            .file_var("KEYS", block.as_bytes()))
    } else {
        let port = u16::try_from(server.ssh_port).map_err(|_| "invalid SSH port".to_string())?;
        let ruleset = firewall_ruleset(port, &specs(items)?)?;
        Ok(Script::new("firewall", include_str!("../scripts/firewall.sh"))
            .file_var("FIREWALL", ruleset.as_bytes())
            .file_var("FIREWALL_UNIT", FIREWALL_UNIT.as_bytes()))
    }
}

/// Applies every item of `kind` the server should have, then records the outcome on the items
/// that were part of it (items added meanwhile wait for their own sync).
pub async fn apply(
    engine: &Engine,
    ctx: &JobContext,
    connection: &SshConnection,
    server: &Server,
    kind: &str,
) -> Result<(), JobError> {
    let store = &engine.store;
    let (items, _) = store.server_items(&server.id, kind, None).await.map_err(store_error)?;
    let (removing, keep): (Vec<&ServerItem>, Vec<&ServerItem>) = items.iter().partition(|i| i.status == "removing");
    let ids = |list: &[&ServerItem]| list.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let outcome = match sync_script(server, kind, &keep) {
        Ok(script) => run_script(engine, ctx, connection, &script).await,
        Err(e) => Err(JobError::failed(e)),
    };
    match &outcome {
        Ok(()) => {
            store.set_server_items_status(&ids(&keep), "installed", None).await.map_err(store_error)?;
            store.delete_removed_server_items(&ids(&removing)).await.map_err(store_error)?;
        }
        Err(e) => {
            let reason = match e {
                JobError::Cancelled => "cancelled".to_string(),
                other => other.to_string(),
            };
            let pending: Vec<&ServerItem> = keep.iter().copied().filter(|i| i.status != "installed").collect();
            store.set_server_items_status(&ids(&pending), "failed", Some(&reason)).await.map_err(store_error)?;
            store.set_server_items_status(&ids(&removing), "removing", Some(&reason)).await.map_err(store_error)?;
        }
    }
    outcome
}

/// Queues a sync for each kind of item that changed while it could not be applied (during the
/// first provisioning, which had already read its list).
pub async fn resync_pending(engine: &Engine, server: &Server) -> Result<(), JobError> {
    for kind in [SSH_KEY, NETWORK_RULE] {
        let (items, _) = engine.store.server_items(&server.id, kind, None).await.map_err(store_error)?;
        if items.iter().any(|i| i.status != "installed") {
            let spec = slipway_jobs::JobSpec::new(sync_job_kind(kind), ServerJob { server_id: server.id.clone() })
                .resource(format!("server:{}", server.id))
                .organization(server.organization_id.clone())
                .idempotent(3);
            slipway_jobs::enqueue(engine.store.as_ref(), spec).await.map_err(store_error)?;
        }
    }
    Ok(())
}

/// `server.sync-ssh-keys` / `server.sync-network-rules`.
#[derive(Debug)]
pub struct SyncItems {
    pub engine: Engine,
    pub kind: &'static str,
}

#[async_trait]
impl JobHandler for SyncItems {
    async fn abandoned(&self, job: &slipway_store::Job) {
        // Retries ran out with the worker gone: say so on the items still waiting.
        let Ok(payload) = serde_json::from_str::<ServerJob>(&job.payload) else { return };
        if let Ok((items, _)) = self.engine.store.server_items(&payload.server_id, self.kind, None).await {
            let waiting: Vec<String> =
                items.iter().filter(|i| i.status == "installing").map(|i| i.id.clone()).collect();
            let reason = Some("interrupted (Slipway stopped while applying it); add it again or provision the server");
            let _ = self.engine.store.set_server_items_status(&waiting, "failed", reason).await;
        }
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let job: ServerJob = ctx.payload()?;
        let server = load_server(&self.engine, &job.server_id).await?;
        if server.provisioned_at.is_none() {
            // Provisioning applies them; nothing to reach yet.
            ctx.log("info", "the server is not provisioned yet; provisioning will apply this");
            return Ok(());
        }
        let connection = connect(&self.engine, ctx, &server).await?;
        apply(&self.engine, ctx, &connection, &server, self.kind).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ports: &str, protocol: Protocol, from: Option<&str>, action: RuleAction) -> NetworkRuleSpec {
        NetworkRuleSpec { ports: PortRange::parse(ports).unwrap(), protocol, from: from.map(str::to_string), action }
    }

    #[test]
    fn rulesets_put_ssh_first_and_denies_before_allows() {
        let rules = vec![
            ("01ALLOW".to_string(), rule("3306", Protocol::Tcp, Some("10.0.0.0/8"), RuleAction::Allow)),
            ("01DENY".to_string(), rule("8000-8100", Protocol::Udp, None, RuleAction::Deny)),
            ("01SIX".to_string(), rule("5432", Protocol::Tcp, Some("2001:db8::/32"), RuleAction::Allow)),
        ];
        let text = firewall_ruleset(2222, &rules).unwrap();
        let pos = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing from\n{text}"));
        assert!(pos("tcp dport 2222 accept") < pos("udp dport 8000-8100 drop comment \"slipway rule 01DENY\""));
        assert!(pos("01DENY") < pos("ip saddr 10.0.0.0/8 tcp dport 3306 accept"));
        assert!(pos("ip6 saddr 2001:db8::/32 tcp dport 5432 accept") < pos("tcp dport { 80, 443 } accept"));
        assert!(text.contains("policy drop;"));
    }

    #[test]
    fn nft_accepts_the_ruleset_it_is_given() {
        // `nft -c` parses without applying; it needs nftables (installed for the test suite).
        let rules = vec![("01X".to_string(), rule("80", Protocol::Tcp, Some("192.0.2.0/24"), RuleAction::Deny))];
        let path = std::env::temp_dir().join(format!("slipway-nft-{}", slipway_core::new_id()));
        std::fs::write(&path, firewall_ruleset(22, &rules).unwrap()).unwrap();
        let out = std::process::Command::new("nft").arg("-c").arg("-f").arg(&path).output().expect("nft installed");
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn ssh_lockouts_are_recognised() {
        assert!(rule("22", Protocol::Tcp, None, RuleAction::Deny).locks_out_ssh(22));
        assert!(rule("1-1024", Protocol::Tcp, Some("0.0.0.0/0"), RuleAction::Deny).locks_out_ssh(22));
        assert!(!rule("22", Protocol::Udp, None, RuleAction::Deny).locks_out_ssh(22));
        assert!(!rule("22", Protocol::Tcp, None, RuleAction::Allow).locks_out_ssh(22));
        assert!(!rule("80", Protocol::Tcp, None, RuleAction::Deny).locks_out_ssh(2222));
    }

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
