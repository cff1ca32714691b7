#!/usr/bin/env bash
set -u
# W5 (20k x 1 ms, 2 peers) and W3 (steal round trip against TCP) for two builds of peer, run
# alternately: put each build's `peer-harness` and `w3_steal` bench binary in /tmp/before and /tmp/after
# (target/release/peer-harness, target/release/deps/w3_steal-*), then run this on a quiet machine.
out=/tmp/measure.out
: > $out
for i in 1 2 3; do
  for v in before after; do
    echo "== W5 $v run $i $(date +%T)" >> $out
    /tmp/$v/peer-harness bench w5 --tasks 20000 --us 1000 --peers 2 --json >> $out 2>/dev/null
  done
done
for i in 1 2; do
  for v in before after; do
    echo "== W3 $v run $i $(date +%T)" >> $out
    (cd /tmp/$v && ./w3_steal --bench 2>&1 | grep -E "time:|steal|tcp|p50|p99|mean" ) >> $out
  done
done
echo "== done $(date +%T)" >> $out
