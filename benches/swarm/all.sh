#!/usr/bin/env bash
# Every swarm benchmark in one go, one JSON object per line: W3, W2 against Dask, the primitives, W4 (T1L, T3L), W5 against
# Dask (three sizes), W8 on three processes, W6 (failures) on four, W7 (idle cost; in a network namespace of its
# own when run as root). About ten minutes on two cores.
set -euo pipefail
here="$(dirname "$0")"
root="$(cd "$here/../.." && pwd)"
cargo build --release -p peer-harness --manifest-path "$root/Cargo.toml" >&2
"$root/target/release/peer-harness" bench steal --json
bash "$here/w2.sh"
"$root/target/release/peer-harness" prims bench
"$root/target/release/peer-harness" bench w4 --tree T1L --json
"$root/target/release/peer-harness" bench w4 --tree T3L --json
bash "$here/w5.sh"
bash "$here/w8.sh"
"$root/target/release/peer-harness" bench w6 --runs 3 --json
"$root/target/release/peer-harness" bench w7 --peers 8 --secs 60 --json
