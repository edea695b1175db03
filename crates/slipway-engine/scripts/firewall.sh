# Replaces Slipway's firewall table in one transaction. Inputs: FIREWALL (base64 ruleset),
# FIREWALL_UNIT (base64 systemd unit that loads it at boot).
command -v nft >/dev/null || fail "nftables is not installed; provision the server first"
put_file /etc/slipway/firewall.nft.candidate 600 "$FIREWALL"
nft -c -f /etc/slipway/firewall.nft.candidate || fail "the firewall rules do not pass nft -c"
mv -f /etc/slipway/firewall.nft.candidate /etc/slipway/firewall.nft
nft -f /etc/slipway/firewall.nft
if has_systemd; then
    # Loaded again at boot.
    put_file /etc/systemd/system/slipway-firewall.service 644 "$FIREWALL_UNIT"
    systemctl daemon-reload
    systemctl enable slipway-firewall.service >/dev/null
fi
step "firewall rules applied"
