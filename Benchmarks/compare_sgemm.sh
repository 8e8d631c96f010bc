#!/usr/bin/env bash
# Side-by-side SGEMM throughput: kernel-bench (this package) vs OpenBLAS, same shapes, same thread count.
#
#   Benchmarks/compare_sgemm.sh [THREADS [RUNS [OPENBLAS_CORETYPE]]]
#
# Needs gcc and OpenBLAS (Debian: apt-get install libopenblas-dev) for the comparison program only; the package
# itself does not use OpenBLAS. Both programs run RUNS times, alternating; each run already reports a median
# over several repetitions, and the table shows the median over runs. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
# are unset so that OpenBLAS picks its kernel by itself (its choice is printed); pass a core type (Haswell,
# Zen, SkylakeX, ...) as the third argument to force one.
set -euo pipefail
THREADS=${1:-1}
RUNS=${2:-5}
CORE=${3:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-sgemm}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

gcc -O2 -Wall "$ROOT/Benchmarks/openblas/sgemm_openblas.c" -lopenblas -o "$WORK/sgemm_openblas"
(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product kernel-bench >/dev/null)
BENCH="$SCRATCH/release/kernel-bench"

unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
[ -n "$CORE" ] && export OPENBLAS_CORETYPE="$CORE"
for r in $(seq 1 "$RUNS"); do
    ALBERTMOE_NUM_THREADS=$THREADS "$BENCH" --only sgemm --reps 5 > "$WORK/ours.$r"
    OPENBLAS_NUM_THREADS=$THREADS "$WORK/sgemm_openblas" --reps 5 > "$WORK/blas.$r"
done
head -1 "$WORK/ours.1"
head -1 "$WORK/blas.1"

python3 - "$WORK" "$RUNS" <<'PY'
import sys, statistics, re
work, runs = sys.argv[1], int(sys.argv[2])
def table(prefix):
    rows = {}
    order = []
    for r in range(1, runs + 1):
        for line in open(f"{work}/{prefix}.{r}"):
            m = re.match(r"^(\S.*?)\s{2,}([0-9.]+)\s+([0-9.]+)\s+(\d+)", line)
            if not m or line.startswith(("SGEMM", "shape", "kernel-bench", "OpenBLAS")):
                continue
            name = m.group(1).strip()
            if name not in rows:
                rows[name] = []
                order.append(name)
            rows[name].append(float(m.group(2)))
    return order, rows
order, ours = table("ours")
_, blas = table("blas")
print(f"{'shape (M x N x K)':32s} {'ours GF/s':>10s} {'OpenBLAS':>10s} {'ratio':>7s}   (medians of {runs} runs)")
for name in order:
    a = statistics.median(ours[name])
    b = statistics.median(blas.get(name, [float('nan')]))
    print(f"{name:32s} {a:10.1f} {b:10.1f} {a / b:7.2f}")
PY
