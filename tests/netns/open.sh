#!/usr/bin/env bash
# Who can reach a peer without a swarm key, from another host: two network namespaces on one
# bridge. Host 1 runs `peer join` with no flags at all (loopback only), then `peer join
# --insecure-open --listen /ip4/0.0.0.0/tcp/0`; host 2 tries to reach each with a plain TCP
# connection and with `peer status`.
# Usage: open.sh PEER_BINARY
# Prints `key=value` lines on stdout (closed_tcp_rc, closed_status_rc, open_tcp_rc,
# open_status_rc, the addresses, the sockets host 1 listens on), then each peer's output
# between `===== <name> =====` lines.
source "$(dirname "$0")/harness.sh"
peer="$1"
logs=$(mktemp -d)
trap 'hosts_down; rm -rf "$logs"' EXIT
# The default identity file goes here, not into the caller's home.
export XDG_DATA_HOME="$logs/data" NO_COLOR=1
unset PEER_LISTEN PEER_MDNS PEER_SWARM_KEY PEER_INSECURE_OPEN PEER_CONFIG PEER_BOOTSTRAP
hosts_up 2

# Waits for the `peer join --bootstrap ADDR` line in log $1 and prints ADDR.
bootstrap_addr() {
  local deadline=$((SECONDS + 30)) addr
  while ((SECONDS < deadline)); do
    addr=$(awk '$1 == "peer" && $2 == "join" && $3 == "--bootstrap" { print $4; exit }' \
      "$1" 2>/dev/null || true)
    if [[ -n "$addr" ]]; then echo "$addr"; return 0; fi
    sleep 0.1
  done
  echo "no join line in $1:" >&2
  cat "$1" >&2
  return 1
}

# Tries a TCP connection from host 2 to 10.77.0.1:$1; prints its exit status.
tcp_from_host2() {
  local rc=0
  host_exec 2 timeout 3 bash -c "exec 3<>/dev/tcp/10.77.0.1/$1" 2>/dev/null || rc=$?
  echo "$rc"
}

# `peer status` from host 2 against the address $1; prints its exit status. Its stdout goes
# to $logs/$2.log, its stderr to $logs/$2_err.log.
status_from_host2() {
  local rc=0
  host_exec 2 "$peer" status --json --bootstrap "$1" --join-timeout 5 \
    >"$logs/$2.log" 2>"$logs/$2_err.log" || rc=$?
  echo "$rc"
}

# 1. No flags: loopback only.
host_run 1 "$logs/closed.log" "$peer" join
addr=$(bootstrap_addr "$logs/closed.log")
port=$(echo "$addr" | awk -F/ '{ print $5 }')
id=${addr##*/p2p/}
echo "closed_addr=$addr"
echo "closed_sockets=$(host_exec 1 ss -Hltn "sport = :$port" | awk '{ print $4 }' | xargs)"
echo "closed_tcp_rc=$(tcp_from_host2 "$port")"
echo "closed_status_rc=$(status_from_host2 "/ip4/10.77.0.1/tcp/$port/p2p/$id" closed_status)"
host_kill 1 TERM
host_wait 1 30 || true

# 2. Open by name.
host_run 1 "$logs/open.log" "$peer" join --insecure-open --listen /ip4/0.0.0.0/tcp/0
addr=$(bootstrap_addr "$logs/open.log")
port=$(echo "$addr" | awk -F/ '{ print $5 }')
echo "open_addr=$addr"
echo "open_sockets=$(host_exec 1 ss -Hltn "sport = :$port" | awk '{ print $4 }' | xargs)"
echo "open_tcp_rc=$(tcp_from_host2 "$port")"
echo "open_status_rc=$(status_from_host2 "$addr" open_status)"
host_kill 1 TERM
host_wait 1 30 || true

for name in closed closed_status closed_status_err open open_status open_status_err; do
  echo "===== $name ====="
  cat "$logs/$name.log"
done
