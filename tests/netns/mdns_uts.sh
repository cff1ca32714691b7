#!/usr/bin/env bash
# Four hosts in network namespaces on one bridge, a private swarm (one swarm key, mDNS on):
# three `peer join --allow-shell` and a fourth peer that finds them by mDNS alone (no
# bootstrap address) and counts UTS T1 across all four, then runs a `peer map` of shell
# commands across them (`--json`, one line per command, on stdout after the count).
# Usage: mdns_uts.sh HARNESS_BINARY [TREE] (target/debug/peer-harness: `peer` with `uts`)
source "$(dirname "$0")/harness.sh"
peer="$1"; tree="${2:-T1}"
logs=$(mktemp -d)
trap 'hosts_down; rm -rf "$logs"' EXIT
"$peer" keygen --out "$logs/swarm.key" >/dev/null
key=(--swarm-key "$logs/swarm.key")
hosts_up 4
for i in 1 2 3; do
  host_run "$i" "$logs/peer$i.log" "$peer" join --workers 1 --ephemeral --allow-shell "${key[@]}"
done
host_exec 4 "$peer" uts "$tree" --mdns --wait-peers 3 --workers 1 "${key[@]}"
# Each command sleeps a little, so that the idle peers steal.
host_exec 4 "$peer" map --json --mdns --wait-peers 3 --workers 1 "${key[@]}" $(seq 0 39) \
  -- sh -c 'sleep 0.05; echo {}'
