//! Firewall rules: Slipway owns one nftables table, rendered whole from the rules and loaded
//! in one transaction, with a boot unit that loads it again at start-up.

use serde::{Deserialize, Serialize};
use slipway_core::server_input::{Cidr, PortRange};
use slipway_store::{Server, ServerItem};

use super::{ItemKind, check_id, specs};
use crate::script::Script;
use crate::{Engine, JobKind};

#[derive(Debug)]
pub struct NetworkRules;

impl ItemKind for NetworkRules {
    fn name(&self) -> &'static str {
        "network_rule"
    }

    fn progress(&self) -> &'static str {
        "==> applying the firewall"
    }

    fn sync_job(&self) -> JobKind {
        JobKind { name: "server.sync-network-rules", attempts: 3 }
    }

    fn sync_script(&self, _: &Engine, server: &Server, items: &[&ServerItem]) -> Result<Script, String> {
        let port = u16::try_from(server.ssh_port).map_err(|_| "invalid SSH port".to_string())?;
        let ruleset = firewall_ruleset(port, &specs(items)?)?;
        Ok(Script::new("firewall", include_str!("../../scripts/firewall.sh"))
            .file_var("FIREWALL", ruleset.as_bytes())
            .file_var("FIREWALL_UNIT", FIREWALL_UNIT.as_bytes()))
    }
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
        check_id("rule", id)?;
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
}
