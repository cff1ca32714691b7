#!/usr/bin/env bash
# Fuzzes peer-net's decoders of network input with AFL++ on the stable toolchain (cargo-afl).
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS: how long each target runs (default 600). TARGET: any of request, response,
# batch, job_spec, prim_state, frame (default all, one after the other). Run two copies with
# different targets to use two cores. Installs cargo-afl (and the AFL++ it builds) if
# missing, builds the targets into fuzz/target, (re)writes the seeds into the corpora, then
# for each target: fuzzes from fuzz/corpus/<target>/ for SECONDS, copies any crash into
# fuzz/crashes/<target>/ (then `cargo nextest run -p peer-net --test decode` checks it),
# replaces the corpus with a minimized one (afl-cmin of what the run found, plus the seeds),
# and prints the run's figures (also appended to fuzz/target/runs.tsv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-600}"
shift || true
all=(request response batch job_spec prim_state frame)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
for t in "${targets[@]}"; do
    case " ${all[*]} " in
        *" $t "*) ;;
        *) echo "unknown target $t (one of: ${all[*]})" >&2; exit 2 ;;
    esac
done

# The tool: cargo-afl builds AFL++ (afl-fuzz, afl-cmin) from the source in its crate.
if ! cargo afl --version >/dev/null 2>&1; then
    echo "installing cargo-afl" >&2
    cargo install --locked cargo-afl
fi
if ! cargo afl --version 2>/dev/null | grep -q 'AFL++'; then
    cargo afl config --build
fi

nice -n 10 cargo afl build --release --bins --examples

# AFL++'s own tools, as cargo-afl built them for this rustc.
rustc_version="$(rustc -V | awk '{print $2}')"
afl_fuzz="$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -path "*rustc-$rustc_version-*/afl/bin/afl-fuzz" 2>/dev/null | head -n 1)"
if [ -z "$afl_fuzz" ]; then
    echo "no afl-fuzz built by cargo-afl for rustc $rustc_version" >&2
    exit 1
fi
afl_bin="$(dirname "$afl_fuzz")"

# Seeds: small valid encodings of each type, and the 100,000-deep nested failure, written
# afresh each time (seed-* in fuzz/corpus/<target>/) so that they follow the wire types.
target/release/examples/seeds

export AFL_NO_UI=1                              # plain status lines, no curses screen
export AFL_SKIP_CPUFREQ=1                       # no say over the CPU governor here
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1  # core_pattern may pipe to a handler
export AFL_NO_AFFINITY=1                        # others share the cores

mkdir -p target/afl
runs=target/runs.tsv
[ -f "$runs" ] || printf 'date\ttarget\tseconds\texecs\texecs_per_sec\tcorpus_found\tcorpus_kept\tcrashes\thangs\n' > "$runs"

for t in "${targets[@]}"; do
    out="target/afl/$t"
    rm -rf "$out"
    echo "== $t: ${seconds}s from $(ls "corpus/$t" | wc -l) inputs" >&2
    # -V: stop after SECONDS; the exit code is not a verdict (the stats and crashes/ are).
    # -c -: no CmpLog. cargo afl fuzz asks for it (-c0), but on a stable toolchain the
    # targets have no CmpLog instrumentation (that needs the LLVM plugins, i.e. nightly),
    # and with it every seed times out. -t 1000: a second per input (AFL++'s default),
    # plenty on a loaded machine at nice 19; an input over it is a hang, not a crash.
    nice -n 19 cargo afl fuzz -c - -i "corpus/$t" -o "$out" -V "$seconds" -t 1000 -- "target/release/$t" \
        > "target/afl/$t.log" 2>&1 || true
    stats="$out/default/fuzzer_stats"
    if [ ! -f "$stats" ]; then
        echo "afl-fuzz did not start for $t; its log:" >&2
        tail -n 30 "target/afl/$t.log" >&2
        exit 1
    fi
    stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }

    # Crashes, under names without ':' (afl names them id:000000,sig:06,...).
    found=0
    for f in "$out"/default/crashes/id:*; do
        [ -e "$f" ] || continue
        mkdir -p "crashes/$t"
        cp "$f" "crashes/$t/$(sha256sum "$f" | cut -c1-16)"
        found=$((found + 1))
    done

    # The corpus: the smallest set of what the run found that keeps its coverage, plus
    # the seeds (the nested regression among them), named by content.
    new="target/afl/$t.cmin"
    rm -rf "$new"
    # afl-cmin.awk: `cargo afl cmin` runs afl-cmin.py, which finds no coverage in these
    # persistent-mode targets (0 tuples) and would keep nothing.
    if AFL_PATH="$afl_bin" nice -n 19 "$afl_bin/afl-cmin.awk" -t 5000 -i "$out/default/queue" -o "$new" -- "target/release/$t" \
        > "target/afl/$t.cmin.log" 2>&1; then
        kept="target/afl/$t.corpus"
        rm -rf "$kept"
        mkdir -p "$kept"
        cp corpus/"$t"/seed-* "$kept"/ 2>/dev/null || true
        seeds=""
        for f in "$kept"/seed-*; do
            if [ -e "$f" ]; then seeds+="$(sha256sum "$f" | cut -c1-16)"$'\n'; fi
        done
        for f in "$new"/*; do
            [ -e "$f" ] || continue
            hash="$(sha256sum "$f" | cut -c1-16)"
            # A seed that cmin kept is there already, under its own name.
            grep -qx "$hash" <<< "$seeds" || cp "$f" "$kept/$hash"
        done
        rm -rf "corpus/$t"
        mv "$kept" "corpus/$t"
    else
        echo "afl-cmin failed for $t (corpus left as it was); see target/afl/$t.cmin.log" >&2
    fi

    line="$(date -u +%FT%TZ)\t$t\t$(stat run_time)\t$(stat execs_done)\t$(stat execs_per_sec)\t$(stat corpus_count)\t$(ls "corpus/$t" | wc -l)\t$(stat saved_crashes)\t$(stat saved_hangs)"
    printf "$line\n" >> "$runs"
    echo "== $t: ran $(stat run_time)s, $(stat execs_done) execs ($(stat execs_per_sec)/s), corpus $(stat corpus_count) found, $(ls "corpus/$t" | wc -l) kept, crashes $(stat saved_crashes), hangs $(stat saved_hangs)" >&2
    if [ "$found" -gt 0 ]; then
        echo "!! $t: $found crash(es) copied to fuzz/crashes/$t/" >&2
    fi
done
