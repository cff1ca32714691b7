#!/usr/bin/env bash
# W7: idle cost. N `peer join` processes (default 8) in a network namespace of their own
# (loopback only, so its counters see only them), connected to each other and left idle;
# after 5 s to settle, for SECS seconds (default 60): the CPU they use in all, and the TCP
# segments they send per peer per second (an upper bound on messages: ACKs count too).
# Run as root. Prints one JSON object.
#
#   bash benches/swarm/w7.sh [N] [SECS]
set -euo pipefail
n="${1:-8}"; secs="${2:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release -p peer-cli --manifest-path "$root/Cargo.toml" >&2
peer="$root/target/release/peer"
ns="peer-w7-$$"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
first=""
for i in $(seq 1 "$n"); do
  args=(join --listen /ip4/127.0.0.1/tcp/0 --no-mdns --workers 1 --ephemeral)
  [[ -n "$first" ]] && args+=(--bootstrap "$first")
  ip netns exec "$ns" "$peer" "${args[@]}" >"$tmp/p$i.txt" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^  peer join --bootstrap \([^ ]*\).*/\1/p' "$tmp/p$i.txt")
    [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -z "$first" ]] && first="$addr"
done
sleep 5
connected=$(for i in $(seq 1 "$n"); do grep -c "peers connected" "$tmp/p$i.txt" >/dev/null; tail -1 "$tmp/p$i.txt"; done | grep -c "^$((n - 1)) peers connected" || true)
ticks() { local t=0; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
segs() { ip netns exec "$ns" awk '/^Tcp:/ { if (h) print $12; h = 1 }' /proc/net/snmp; }
t0=$(ticks); s0=$(segs)
sleep "$secs"
t1=$(ticks); s1=$(segs)
hz=$(getconf CLK_TCK)
awk -v n="$n" -v secs="$secs" -v t="$((t1 - t0))" -v s="$((s1 - s0))" -v hz="$hz" -v c="$connected" 'BEGIN {
  printf "{\"workload\":\"W7\",\"peers\":%d,\"fully_connected_peers\":%d,\"secs\":%d,\"cpu_percent_of_one_core_all_peers\":%.2f,\"tcp_segments_per_peer_per_s\":%.1f}\n", n, c, secs, 100 * t / hz / secs, s / n / secs }'
