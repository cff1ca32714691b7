#!/usr/bin/env bash
# `peer map` against GNU parallel on the same machine in the same run: N `true` commands
# (default 1,000), output kept in input order by both (`parallel -k`; `peer map` always).
# peer: two `peer join --allow-shell` peers of one worker per core, found through a swarm file
# of this run, and a `peer map` that runs none itself; parallel: `-j` one per core.
# Runs each RUNS times (default 5), alternating, and prints one JSON line per run, then the
# medians and their ratio (the target: peer ≤ 1.5 × parallel).
# Usage: map_vs_parallel.sh [N] [RUNS]. Installs GNU parallel from Debian's packages if it is
# missing (as root, or with sudo).
source "$(dirname "$0")/lib.sh"
n=${1:-1000}
runs=${2:-5}
if ! parallel --version 2>/dev/null | grep -q "GNU parallel"; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq parallel >&2
  else
    sudo apt-get install -y -qq parallel >&2
  fi
fi
cores=$(nproc)
tmp=$(mktemp -d)
export PEER_SWARM_FILE="$tmp/swarm.json"
start_peer "$tmp/a.txt" --allow-shell --swarm-file "$PEER_SWARM_FILE"
start_peer "$tmp/b.txt" --allow-shell --swarm-file "$PEER_SWARM_FILE" --bootstrap "$addr"
seq "$n" >"$tmp/inputs"
# Seconds of wall time of the command given, to the millisecond.
secs() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}' 
}
check() { # the output must be the inputs' order: `true` prints nothing, so count lines
  [ "$(wc -l <"$tmp/out")" -eq "$1" ] || { echo "unexpected output of $2" >&2; exit 1; }
}
peer_times=(); parallel_times=()
for run in $(seq 1 "$runs"); do
  t=$(secs parallel -k -j "$cores" true <"$tmp/inputs"); check 0 parallel
  parallel_times+=("$t")
  printf '{"workload":"map-true","system":"parallel -k","commands":%d,"run":%d,"secs":%.3f}\n' "$n" "$run" "$t"
  t=$(secs "$peer" map --each-line "$tmp/inputs" --wait-peers 2 -- true); check 0 "peer map"
  peer_times+=("$t")
  printf '{"workload":"map-true","system":"peer map (2 peers)","commands":%d,"run":%d,"secs":%.3f}\n' "$n" "$run" "$t"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mp=$(median "${peer_times[@]}")
mq=$(median "${parallel_times[@]}")
printf '{"workload":"map-true","commands":%d,"runs":%d,"median_peer_secs":%.3f,"median_parallel_secs":%.3f,"peer_per_parallel":%.3f,"target":1.5}\n' \
  "$n" "$runs" "$mp" "$mq" "$(awk -v a="$mp" -v b="$mq" 'BEGIN{print a / b}')"
