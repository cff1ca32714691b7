#!/usr/bin/env bash
# Four hosts in network namespaces on one bridge, mDNS on: three `peer join` and a fourth
# peer that finds them by mDNS alone (no bootstrap address) and counts UTS T1 across all four.
# Usage: mdns_uts.sh PEER_BINARY [TREE]
source "$(dirname "$0")/harness.sh"
peer="$1"; tree="${2:-T1}"
logs=$(mktemp -d)
hosts_up 4
for i in 1 2 3; do host_run "$i" "$logs/peer$i.log" "$peer" join --workers 1 --ephemeral; done
host_exec 4 "$peer" uts "$tree" --mdns --wait-peers 3 --workers 1
