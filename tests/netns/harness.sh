#!/usr/bin/env bash
# Multi-host harness: network namespaces joined by veth pairs to one bridge, one peer per
# namespace. Needs no root: a script that sources this file runs itself again in a user
# namespace of its own (its user mapped to root there, and nothing more) with network and
# mount namespaces of its own, like a rootless container. Everything below happens in
# there: a tmpfs on /run/netns for `ip netns`, the hosts' namespaces, the veths and the
# bridge. Nothing touches the machine's real network, and nothing outlives the script's
# processes. Where the kernel forbids unprivileged user namespaces, the script says so and
# exits 4 (as root too: the same path for every user).
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

# Outside: into namespaces of our own, where the script (with its arguments, which `source`
# leaves as they were) runs again from the start. `unshare` execs bash in its own place, so
# a test runner's signals reach the script as before.
if [[ -z "${NETNS_HARNESS_INSIDE:-}" ]]; then
  # `ip` lives in an sbin directory on some systems, outside a user's PATH.
  export PATH="$PATH:/usr/sbin:/sbin"
  netns_unshare=(unshare --user --map-root-user --net --mount)
  if ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
    echo "netns harness: the multi-host tests need unshare (util-linux) and ip (iproute2)" >&2
    exit 4
  fi
  if ! netns_why=$("${netns_unshare[@]}" true 2>&1); then
    echo "netns harness: this kernel does not let $(id -un) create an unprivileged user" \
      "namespace, which the multi-host tests need (\`${netns_unshare[*]} true\` failed:" \
      "$netns_why). Allow them (sysctl user.max_user_namespaces > 0;" \
      "kernel.unprivileged_userns_clone=1 on older Debian kernels;" \
      "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10 and later)." >&2
    exit 4
  fi
  NETNS_HARNESS_INSIDE=1 exec "${netns_unshare[@]}" bash "$0" "$@"
fi
unset NETNS_HARNESS_INSIDE

# Inside: root of this user namespace only. `ip netns add` keeps its namespaces in
# /run/netns (/var/run/netns on systems where that is not the same place); a tmpfs of ours
# there keeps them apart from the machine's and from other tests'. Where that directory
# does not exist yet, it cannot be made (its parent belongs to the real root): the tmpfs
# goes on the parent instead, hiding the machine's files there from this script alone.
netns_dirs=("$(realpath -m /run/netns)")
if [[ "$(realpath -m /var/run/netns)" != "${netns_dirs[0]}" ]]; then
  netns_dirs+=("$(realpath -m /var/run/netns)")
fi
for netns_dir in "${netns_dirs[@]}"; do
  if [[ -d "$netns_dir" ]]; then
    mount -t tmpfs -o mode=0755 peer-netns "$netns_dir"
  else
    mount -t tmpfs -o mode=0755 peer-netns "$(dirname "$netns_dir")"
    mkdir "$netns_dir"
  fi
done

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
