# Helpers shared by the swarm benchmark scripts: build the release `peer` and `peer-harness`
# (the benchmarks), start `peer join` processes on 127.0.0.1 (mDNS off) and stop them on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# PEER_BIN_DIR: a directory with a build's `peer` and `peer-harness` to run instead (a
# before/after comparison); nothing is built then.
if [[ -n ${PEER_BIN_DIR:-} ]]; then
  peer="$PEER_BIN_DIR/peer"; harness="$PEER_BIN_DIR/peer-harness"
else
  cargo build --release -p peer-cli -p peer-harness --manifest-path "$root/Cargo.toml" >&2
  peer="$root/target/release/peer"; harness="$root/target/release/peer-harness"
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start_peer OUTFILE [ARGS...]: starts `peer join`, waits for its address; sets $addr, $pid.
start_peer() {
  local out="$1"; shift
  "$peer" join --listen /ip4/127.0.0.1/tcp/0 --no-mdns --ephemeral "$@" >"$out" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    # The file may not exist yet: the background shell makes it.
    addr=$(sed -n 's/^  peer join --bootstrap \([^ ]*\).*/\1/p' "$out" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "peer join did not start: $(cat "$out")" >&2
  return 1
}
