#!/usr/bin/env bash
# Builds the fuzz harnesses (release, -sanitize=fuzzer,address) and runs each one on its seed corpus.
#
#   Fuzz/run.sh [seconds-per-harness] [harness...]      (default: 20 seconds, every harness)
#
# A crash, a trap, a leak, a timeout (FUZZ_TIMEOUT seconds for one input, default 10) or an input using more than
# FUZZ_RSS_LIMIT_MB (default 2048) fails the run; the input that did it is kept in $FUZZ_WORK/findings/HARNESS/.
# New inputs found while running go to $FUZZ_WORK/corpus/HARNESS/ (default Fuzz/.build/fuzz-work), never into the
# committed corpus, and are fuzzed again by the next run. FUZZ_SEED fixes libFuzzer's random seed (CI sets it, so
# that a run explores the same inputs first each time). Reproduce a finding with
#   FUZZ_HARNESS=HARNESS SWIFT_BACKTRACE=enable=no Fuzz/.build/release/albertmoe-fuzz FILE
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-20}"
shift || true
work="${FUZZ_WORK:-$here/.build/fuzz-work}"
all=(safetensors pytorch config json tokenizer tokenizer-files sentencepiece text-corpus parquet arrow save-to-disk server-request)
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all[@]}")

swift build -c release --package-path "$here" --product albertmoe-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xcc -fsanitize=fuzzer-no-link,address
binary="$here/.build/release/albertmoe-fuzz"

failed=()
for harness in "${harnesses[@]}"; do
    [ -d "$here/Corpus/$harness" ] || { echo "no harness '$harness' (harnesses: ${all[*]})" >&2; exit 2; }
    mkdir -p "$work/corpus/$harness" "$work/findings/$harness" "$work/tmp/$harness"
    log="$work/$harness.log"
    echo "== $harness: ${seconds}s"
    # The first corpus folder receives the new inputs; the committed seeds are only read.
    # SWIFT_BACKTRACE: libFuzzer, not Swift's backtracer, reports a trap.
    if FUZZ_HARNESS="$harness" SWIFT_BACKTRACE=enable=no TMPDIR="$work/tmp/$harness" ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
        LSAN_OPTIONS="suppressions=$here/lsan.supp:${LSAN_OPTIONS:-}" "$binary" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
        -print_final_stats=1 -artifact_prefix="$work/findings/$harness/" \
        "$work/corpus/$harness" "$here/Corpus/$harness" > "$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
        grep -E '^stat::number_of_executed_units' "$log" || true
    else
        tail -40 "$log"
        echo "!! $harness failed: the input is in $work/findings/$harness/ (log: $log)"
        failed+=("$harness")
    fi
    rm -rf "$work/tmp/$harness"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]}" >&2
    exit 1
fi
