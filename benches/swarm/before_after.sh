#!/usr/bin/env bash
# W2, W3, W4 and W5 (1 ms and 100 µs) for two builds of peer, alternated in one window: before, after, before,
# after. Put each build's target/release/peer-harness in $BEFORE and $AFTER (directories;
# /tmp/before and /tmp/after by default), then run this on a quiet machine (no build, no other
# benchmark). Prints one JSON line per result, tagged with the build and the round; W3 here is
# `peer-harness bench steal` (two in-process peers against the raw TCP round trip).
#
#   ROUNDS="1 2" bash benches/swarm/before_after.sh > before_after.log
set -u
export PEER_SWARM_FILE=none
before=${BEFORE:-/tmp/before}
after=${AFTER:-/tmp/after}
for round in ${ROUNDS:-1 2}; do
  for which in before after; do
    if [[ $which == before ]]; then dir=$before; else dir=$after; fi
    for args in "w2 --runs 5" "steal" "w4 --tree T1L" "w5 --tasks 20000 --us 1000" "w5 --tasks 100000 --us 100"; do
      echo "## $which round=$round bench $args $(date +%T)"
      "$dir/peer-harness" -q bench --json $args 2>&1 | grep '^{' | sed "s/^/$which $round | /"
    done
  done
done
