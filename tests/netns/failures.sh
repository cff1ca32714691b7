#!/usr/bin/env bash
# A peer fails while four hosts (network namespaces on one bridge, a private swarm: one
# swarm key, mDNS on) run a job; the job must still finish with the exact answer.
#
# Usage: failures.sh SCENARIO HARNESS_BINARY (target/debug/peer-harness: `peer` with `uts`,
#   `sweep` and `published`)
#   kill9     hosts 1-3 `peer join`, host 4 counts UTS T1L; host 2's peer is killed (-9)
#   stop      the same, but host 2's peer is stopped (SIGSTOP) until the count is done
#   cut       the same, but host 2's cable is pulled for CUT_FOR seconds, then put back
#   detached  host 4 submits a detached sweep and is killed (-9); host 1 then reads the
#             published result with `peer-harness published`
#
# Prints host 4's output (kill9, stop, cut) or `peer-harness published`'s (detached) on
# stdout; when that fails, the logs of the other peers on stderr. Exits non-zero on failure (124: the job
# did not finish within FAIL_TIMEOUT).
#
# Environment:
#   FAIL_AFTER    seconds from host 4's start to the fault (default 10, about half of a T1L
#                 count in a debug build; 2 for detached). Host 4 first waits for three peers
#                 by mDNS (a fraction of a second here).
#   CUT_FOR       seconds the cable stays out in `cut` (default 3)
#   FAIL_TIMEOUT  seconds the job may take in all (default 300)
#   NETNS_TAG     names the namespaces (see harness.sh)
#   FAIL_LOGS     a directory to keep every peer's log in
#   RUST_LOG      the peers' logs (default warn,peer_net=info: suspicions and adoptions)
source "$(dirname "$0")/harness.sh"

usage() {
  echo "usage: $0 kill9|stop|cut|detached HARNESS_BINARY" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
scenario="$1"
peer="$2"
case "$scenario" in
  kill9 | stop | cut) default_after=10 ;;
  detached) default_after=2 ;;
  *) usage ;;
esac
fail_after="${FAIL_AFTER:-$default_after}"
cut_for="${CUT_FOR:-3}"
timeout="${FAIL_TIMEOUT:-300}"
export RUST_LOG="${RUST_LOG:-warn,peer_net=info}" NO_COLOR=1

logs=$(mktemp -d)
cleanup() {
  hosts_down
  if [[ -n "${FAIL_LOGS:-}" ]]; then mkdir -p "$FAIL_LOGS" && cp "$logs"/*.log "$FAIL_LOGS"/; fi
  rm -rf "$logs"
}
trap cleanup EXIT

note() { echo "failures.sh [$scenario] $(date +%T.%3N): $*" >&2; }

# Fails the scenario if host 4 is no longer running: the fault would test nothing.
still_running() {
  if ! kill -0 "$(host_pid 4)" 2>/dev/null; then
    note "host 4 exited before the fault: raise the work or lower FAIL_AFTER"
    dump_logs 1 2 3 4
    exit 3
  fi
}

# Prints `fault: host=H peer=<id> at_unix_ns=<now>` on stdout: which peer failed, and when.
fault_line() {
  local id
  id=$(awk '$1 == "peer" { print $2; exit }' "$logs/peer$1.log")
  echo "fault: host=$1 peer=$id at_unix_ns=$(date +%s%N)"
}

# The logs of the peers of hosts "$@", on stderr.
dump_logs() {
  for i in "$@"; do
    if [[ -f "$logs/peer$i.log" ]]; then
      echo "===== host $i: peer log =====" >&2
      cat "$logs/peer$i.log" >&2
    fi
  done
}

"$peer" keygen --out "$logs/swarm.key" >/dev/null
key=(--swarm-key "$logs/swarm.key")
hosts_up 4
for i in 1 2 3; do
  host_run "$i" "$logs/peer$i.log" "$peer" join --workers 1 --ephemeral "${key[@]}"
done

if [[ "$scenario" == detached ]]; then
  # 400 tasks of 50 ms: 5 s on four workers, so the submitter dies with the job under way.
  host_run 4 "$logs/peer4.log" "$peer" sweep --tasks 400 --ms 50 --detach sweep-total \
    --mdns --wait-peers 3 --workers 1 "${key[@]}"
  note "host 4 submits the detached sweep (pid $(host_pid 4)); the fault in $fail_after s"
  sleep "$fail_after"
  still_running
  host_kill 4 KILL
  echo "fault: host=4 at_unix_ns=$(date +%s%N)"
  note "host 4 killed (-9)"
  cat "$logs/peer4.log"
  rc=0
  # --foreground: stay in this process group, so that a test runner's kill reaches it.
  host_exec 1 timeout --foreground -k 10 "$timeout" \
    "$peer" published sweep-total --mdns --wait-peers 2 --timeout 120 "${key[@]}" || rc=$?
  note "peer-harness published exited with $rc"
  if ((rc != 0)); then dump_logs 1 2 3 4; fi
  exit "$rc"
fi

host_run 4 "$logs/peer4.log" "$peer" uts T1L --mdns --wait-peers 3 --workers 1 "${key[@]}"
note "host 4 counts T1L (pid $(host_pid 4)); the fault in $fail_after s"
sleep "$fail_after"
still_running
fault_line 2
case "$scenario" in
  kill9)
    host_kill 2 KILL
    note "host 2's peer killed (-9)"
    ;;
  stop)
    host_kill 2 STOP
    note "host 2's peer stopped (SIGSTOP); it stays stopped until the count is done"
    ;;
  cut)
    link_cut 2
    note "host 2's cable cut for $cut_for s"
    sleep "$cut_for"
    link_heal 2
    note "host 2's cable back"
    ;;
esac

rc=0
host_wait 4 "$timeout" || rc=$?
if ((rc == 124)); then
  note "host 4 still running after $timeout s"
else
  note "host 4 exited with $rc"
fi
cat "$logs/peer4.log"
if ((rc != 0)); then dump_logs 1 2 3; fi
exit "$rc"
