#!/usr/bin/env bash
# W6: failure recovery. Four processes on 127.0.0.1 (three `peer join --workers 1` and a
# `peer uts T1L --workers 1` that submits and owns everything) count UTS T1L exactly; at
# half the failure-free makespan one joined peer is killed (-9) or stopped (SIGSTOP).
# Prints one JSON object per run: makespan, when the submitter suspected the peer (its
# `recovery:` line against the fault's time), how many of its tasks were queued again, and
# the makespan penalty against the failure-free median.
#
#   bash benches/swarm/w6.sh [RUNS]        (default 3 runs of each: none, kill, stop)
source "$(dirname "$0")/lib.sh"
runs="${1:-3}"
tree=T1L
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

# run MODE DELAY: one count with a fault after DELAY seconds (none: no fault). Prints JSON.
run() {
  local mode="$1" delay="$2" addrs=() ids=() ppids=()
  for i in 1 2 3; do
    if ((i == 1)); then start_peer "$tmp/join$i.txt" --workers 1
    else start_peer "$tmp/join$i.txt" --workers 1 --bootstrap "${addrs[0]}"; fi
    addrs+=("$addr"); ppids+=("$pid")
    ids+=("$(awk '$1 == "peer" { print $2; exit }' "$tmp/join$i.txt")")
  done
  "$peer" uts "$tree" --workers 1 --bootstrap "${addrs[0]}" --wait-peers 3 >"$tmp/uts.txt" 2>&1 &
  local uts=$! fault_ns=0
  if [[ "$mode" != none ]]; then
    sleep "$delay"
    fault_ns=$(date +%s%N)
    case "$mode" in
      kill) kill -9 "${ppids[1]}" ;;
      stop) kill -STOP "${ppids[1]}" ;;
    esac
  fi
  wait "$uts"
  grep -q "counts exact" "$tmp/uts.txt" || { cat "$tmp/uts.txt" >&2; exit 1; }
  kill -CONT "${ppids[1]}" 2>/dev/null || true
  for p in "${ppids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait "${ppids[@]}" 2>/dev/null || true
  local secs tasks line seen=0 requeued=0 reason=""
  secs=$(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' "$tmp/uts.txt")
  tasks=$(sed -n 's/^tasks: \([0-9]*\) submitted.*/\1/p' "$tmp/uts.txt")
  line=$(grep "^recovery: peer=${ids[1]} " "$tmp/uts.txt" | head -1 || true)
  if [[ -n "$line" ]]; then
    seen=$(sed -n 's/.* at_unix_ns=\([0-9]*\) .*/\1/p' <<<"$line")
    requeued=$(sed -n 's/.* requeued=\([0-9]*\)$/\1/p' <<<"$line")
    reason=$(sed -n 's/.* reason="\([^"]*\)".*/\1/p' <<<"$line" | cut -c1-60)
  fi
  local detect_ms=null
  if [[ "$mode" != none && "$seen" != 0 ]]; then
    detect_ms=$(awk -v a="$fault_ns" -v b="$seen" 'BEGIN{printf "%.1f", (b-a)/1e6}')
  fi
  local suspicions
  suspicions=$(grep -c "^recovery:" "$tmp/uts.txt" || true)
  echo "{\"workload\":\"W6\",\"tree\":\"$tree\",\"fault\":\"$mode\",\"fault_after_s\":$delay,\"makespan_s\":$secs,\"tasks\":$tasks,\"detected_after_ms\":$detect_ms,\"reason\":\"$reason\",\"requeued\":$requeued,\"suspicions\":$suspicions,\"exact\":true}"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

for _ in $(seq 1 "$runs"); do run none 0; done | tee "$tmp/none.json"
base=$(field makespan_s <"$tmp/none.json" | median)
tasks=$(field tasks <"$tmp/none.json" | median)
half=$(awk -v b="$base" 'BEGIN{printf "%.2f", b/2}')
for mode in kill stop; do
  for _ in $(seq 1 "$runs"); do run "$mode" "$half"; done | tee "$tmp/$mode.json"
done
# Work lost with a peer, at most: its re-queued tasks at the mean task's CPU time, on the
# machine's cores (the count is CPU-bound: 4 single-worker processes share them).
cores=$(nproc)
for mode in kill stop; do
  made=$(field makespan_s <"$tmp/$mode.json" | median)
  detect=$(field detected_after_ms <"$tmp/$mode.json" | median)
  requeued=$(field requeued <"$tmp/$mode.json" | median)
  awk -v m="$mode" -v b="$base" -v f="$made" -v d="$detect" -v r="$requeued" -v t="$tasks" -v c="$cores" 'BEGIN{
    task_cpu = b * c / t; lost = r * task_cpu / c; pen = f - b;
    printf "{\"workload\":\"W6\",\"summary\":\"%s\",\"base_makespan_s\":%.3f,\"makespan_s\":%.3f,\"penalty_s\":%.3f,\"detected_after_ms\":%s,\"requeued\":%d,\"lost_work_s_at_most\":%.3f,\"penalty_over_lost_work_s\":%.3f}\n", m, b, f, pen, d, r, lost, pen - lost }'
done
