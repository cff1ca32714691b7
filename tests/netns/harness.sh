#!/usr/bin/env bash
# Multi-host harness: network namespaces joined by veth pairs to one bridge, one peer per
# namespace. Run as root. Nothing leaves these namespaces: the bridge lives in a namespace
# of its own with no route out.
#
#   source tests/netns/harness.sh          # defines the functions below, cleans up on exit
#   hosts_up 4                             # peer-<tag>-h1..h4 at 10.77.0.1..4/24
#   host_run 2 LOG CMD...                  # runs CMD in host 2 in the background; sets $pid
#   host_pid 2                             # prints the pid of what host_run last started there
#   host_kill 2 STOP                       # sends that process a signal (KILL, 9, STOP, CONT...)
#   host_wait 2 300                        # waits up to 300 s for it; its status, 124 if late
#   host_exec 2 CMD...                     # runs CMD in host 2 in the foreground
#   link_cut 3 / link_heal 3               # takes host 3's cable out of the bridge and back
#   hosts_down                             # kills what host_run started (stopped ones too),
#                                          # deletes everything
set -euo pipefail

# The hosts share this machine's file system: their peers write no swarm file (each test
# names its peers: --bootstrap or --mdns), so none is left in the user's home.
export PEER_SWARM_FILE=none

netns_tag="${NETNS_TAG:-$$}"
netns_bridge="peer-$netns_tag-br"
netns_hosts=0
netns_pids=()
netns_host_pids=() # by host number: what host_run last started on that host

netns_host() { echo "peer-$netns_tag-h$1"; }

hosts_up() {
  local n="$1"
  ip netns add "$netns_bridge"
  ip -n "$netns_bridge" link add br0 type bridge
  ip -n "$netns_bridge" link set br0 up
  ip -n "$netns_bridge" link set lo up
  for i in $(seq 1 "$n"); do
    local host
    host=$(netns_host "$i")
    ip netns add "$host"
    ip link add "v$netns_tag-$i" type veth peer name eth0 netns "$host"
    ip link set "v$netns_tag-$i" netns "$netns_bridge"
    ip -n "$netns_bridge" link set "v$netns_tag-$i" master br0 up
    ip -n "$host" addr add "10.77.0.$i/24" dev eth0
    ip -n "$host" link set eth0 up
    ip -n "$host" link set lo up
    # mDNS sends to 224.0.0.251 on every interface with a multicast route.
    ip -n "$host" route add 224.0.0.0/4 dev eth0
    netns_hosts="$i"
  done
}

host_run() {
  local i="$1" log="$2"; shift 2
  ip netns exec "$(netns_host "$i")" "$@" >"$log" 2>&1 &
  pid=$!
  netns_pids+=("$pid")
  netns_host_pids[$i]="$pid"
}

host_pid() {
  local p="${netns_host_pids[$1]:-}"
  if [[ -z "$p" ]]; then
    echo "host_pid: nothing was started on host $1" >&2
    return 1
  fi
  echo "$p"
}

host_kill() {
  local p
  p=$(host_pid "$1")
  kill -s "${2#-}" "$p"
}

# Waits for what host_run last started on host $1 and returns its exit status, or 124 if it
# is still running after $2 seconds (it is left running: hosts_down kills it).
host_wait() {
  local p deadline rc=0
  p=$(host_pid "$1")
  deadline=$((SECONDS + $2))
  # bash reaps a finished background job and keeps its status, so `kill -0` fails then.
  while kill -0 "$p" 2>/dev/null; do
    if ((SECONDS >= deadline)); then return 124; fi
    sleep 0.2
  done
  wait "$p" || rc=$?
  return "$rc"
}

host_exec() {
  local i="$1"; shift
  ip netns exec "$(netns_host "$i")" "$@"
}

link_cut() { ip -n "$netns_bridge" link set "v$netns_tag-$1" down; }
link_heal() { ip -n "$netns_bridge" link set "v$netns_tag-$1" up; }

hosts_down() {
  # A stopped process would keep `wait` waiting: wake it before killing it.
  for p in "${netns_pids[@]}"; do
    kill -CONT "$p" 2>/dev/null || true
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for i in $(seq 1 "$netns_hosts"); do ip netns del "$(netns_host "$i")" 2>/dev/null || true; done
  ip netns del "$netns_bridge" 2>/dev/null || true
  netns_hosts=0
  netns_pids=()
  netns_host_pids=()
}

trap hosts_down EXIT
# Killed (a test runner's timeout, ^C): still clean up, by way of the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM
