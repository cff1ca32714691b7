#!/usr/bin/env bash
# W4: UTS across processes. 2 processes × 1 worker against 1 process × 2 workers, on the
# trees given (default T1L T3L), exact counts checked by `peer uts`; then the CPU an idle
# joined peer uses over 5 s. Prints one JSON object per tree.
source "$(dirname "$0")/lib.sh"
trees=("${@:-T1L T3L}")
tmp=$(mktemp -d)
secs() { sed -n 's/.* in \([0-9.]*\) s .*/\1/p' "$1"; }
for tree in ${trees[@]}; do
  "$peer" uts "$tree" --workers 2 >"$tmp/one.txt"
  start_peer "$tmp/join.txt" --workers 1
  "$peer" uts "$tree" --workers 1 --bootstrap "$addr" >"$tmp/two.txt"
  t0=$(cpu_ticks "$pid"); sleep 5; t1=$(cpu_ticks "$pid")
  hz=$(getconf CLK_TCK)
  idle_cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN{printf "%.2f", 100*(b-a)/hz/5}')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  one=$(secs "$tmp/one.txt"); two=$(secs "$tmp/two.txt")
  ratio=$(awk -v a="$one" -v b="$two" 'BEGIN{printf "%.3f", a/b}')
  elsewhere=$(sed -n 's/.*, \([0-9]*\) ran elsewhere/\1/p' "$tmp/two.txt")
  echo "{\"workload\":\"W4\",\"tree\":\"$tree\",\"one_process_2_workers_s\":$one,\"two_processes_1_worker_s\":$two,\"two_over_one_throughput\":$ratio,\"tasks_run_by_joined_peer\":$elsewhere,\"idle_peer_cpu_percent\":$idle_cpu,\"exact\":true}"
done
