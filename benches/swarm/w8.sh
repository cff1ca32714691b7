#!/usr/bin/env bash
# W8 on a swarm: three peers (two `peer join` processes and the submitting `peer-harness bench soak`),
# waves of payload tasks (large results, kept by whoever ran them and fetched by their
# dependents) and checksum tasks; after each wave every result is gathered and dropped.
# Reports the resident memory of each of the three processes after the warm-up tenth of
# the waves and after the last one. Usage: w8.sh [WAVES [TASKS [BYTES]]].
source "$(dirname "$0")/lib.sh"
waves=${1:-40}; tasks=${2:-500}; bytes=${3:-100000}
tmp=$(mktemp -d)
start_peer "$tmp/a.txt" --workers 1; a=$addr; pa=$pid
start_peer "$tmp/b.txt" --workers 1 --bootstrap "$a"; pb=$pid
"$harness" bench soak --json --waves "$waves" --tasks "$tasks" --bytes "$bytes" --workers 1 \
  --bootstrap "$a" --wait-peers 2 --watch-pid "$pa" --watch-pid "$pb"
