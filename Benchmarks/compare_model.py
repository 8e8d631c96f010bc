"""Runs the Swift model benchmark and the PyTorch reference benchmark alternately on this machine and prints the
medians of each figure and their ratios (Swift / PyTorch).

Usage: python3 Benchmarks/compare_model.py small|base [--rounds N] [--steps N] [--reference DIR]
Needs: pip install torch; a release build of the albertmoe command (swift build -c release --product albertmoe).
"""
import argparse, json, os, statistics, subprocess

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("config", choices=["small", "base"])
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--reference", default=os.path.join(here, "..", "..", "shared", "reference"))
ap.add_argument("--swift", default=os.path.join(here, "..", ".build", "release", "albertmoe"))
a = ap.parse_args()

runs = {"swift": [], "pytorch": []}
for r in range(a.rounds):
    for name, cmd in (("swift", [a.swift, "bench", "--config", a.config, "--steps", str(a.steps)]),
                      ("pytorch", ["python3", os.path.join(a.reference, "bench_ref.py"), a.config, "--steps", str(a.steps)])):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        runs[name].append(json.loads(out))
        print(name, out, flush=True)

print(f"\n{a.config}: medians of {a.rounds} alternating runs")
print(f"{'figure':24} {'swift':>12} {'pytorch':>12} {'ratio':>8}")
for key in ("train_tokens_per_s", "forward_tokens_per_s", "generate_tokens_per_s"):
    s = statistics.median(x[key] for x in runs["swift"])
    p = statistics.median(x[key] for x in runs["pytorch"])
    print(f"{key:24} {s:12.1f} {p:12.1f} {s / p:8.2f}")
print(f"{'swift threads':24} {runs['swift'][0]['threads']:>12} {runs['pytorch'][0]['threads']:>12}")
print(f"{'swift peak RSS (MB)':24} {statistics.median(x['train_peak_rss_mb'] for x in runs['swift']):12.1f}")
