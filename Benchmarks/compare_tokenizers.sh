#!/usr/bin/env bash
# Side-by-side tokenizer benchmark: tokenizer-bench (this package) vs the Hugging Face `tokenizers` library
# (Rust, through its Python binding), same corpus, same tokenizer.json files, one thread each.
#
#   Benchmarks/compare_tokenizers.sh [ROUNDS [RUNS [DIR]]]
#
# Needs `pip install tokenizers`. DIR (default .build-tokbench/tokbench-data) gets the generated corpus
# (4 MB) and the three tokenizers trained on it (WordPiece, byte-level BPE, Unigram; 30k vocabularies) on
# the first call. The Swift generator is checked to write the same corpus. The two programs then run
# ROUNDS times, alternating; each run reports medians over RUNS repetitions, and the table shows the median
# over rounds: encode throughput in MB of UTF-8 text per second, and the time to load each tokenizer.json.
set -euo pipefail
ROUNDS=${1:-3}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-tokbench}
DIR=${3:-$SCRATCH/tokbench-data}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product tokenizer-bench >/dev/null)
BENCH="$SCRATCH/release/tokenizer-bench"
if [ ! -f "$DIR/unigram.json" ]; then
    echo "preparing $DIR (corpus + training the three tokenizers) ..." >&2
    python3 "$ROOT/Benchmarks/tokenizer_bench.py" prepare "$DIR" >&2
fi
"$BENCH" --generate "$WORK/corpus.txt" >/dev/null
cmp -s "$WORK/corpus.txt" "$DIR/corpus.txt" || { echo "the Swift and Python corpus generators differ" >&2; exit 1; }

for r in $(seq 1 "$ROUNDS"); do
    "$BENCH" "$DIR" --runs "$RUNS" | tee -a "$WORK/runs.jsonl" >&2
    python3 "$ROOT/Benchmarks/tokenizer_bench.py" bench "$DIR" --runs "$RUNS" | tee -a "$WORK/runs.jsonl" >&2
done

python3 - "$WORK/runs.jsonl" "$ROUNDS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = int(sys.argv[2])
def med(impl, fam, key):
    return statistics.median(r[key] for r in rows if r["impl"] == impl and r["family"] == fam)
rust = next(r for r in rows if r["impl"] == "rust")
print(f"\ncorpus: {rust['lines']} lines, {rust['bytes'] / 1e6:.2f} MB; tokenizers {rust['version']}; medians of {rounds} alternating rounds")
print(f"{'family':10s} {'ours MB/s':>10s} {'Rust MB/s':>10s} {'ratio':>6s} {'ours load ms':>13s} {'Rust load ms':>13s}  same ids")
for fam in ("wordpiece", "bpe", "unigram"):
    if not any(r["family"] == fam for r in rows):
        continue
    a, b = med("swift", fam, "mb_per_s"), med("rust", fam, "mb_per_s")
    same = {(r["tokens"], r["ids_checksum"]) for r in rows if r["family"] == fam}
    print(f"{fam:10s} {a:10.2f} {b:10.2f} {a / b:6.2f} {med('swift', fam, 'load_ms'):13.1f} {med('rust', fam, 'load_ms'):13.1f}  {'yes' if len(same) == 1 else 'NO'}")
PY
