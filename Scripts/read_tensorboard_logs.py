"""Reads the TensorBoard event files that AlbertMoE's TensorBoardWriter / MetricsLog write, with TensorBoard's
own reader, and prints a summary per scalar tag: the number of points, and the first and last (step, value).
It checks that the files are readable by TensorBoard (framing, CRCs, protobufs) and hold what was logged.

Every directory under LOGDIR (LOGDIR included) that holds `events.out.tfevents.*` files is read as one run,
all its event files in TensorBoard's order. Exits with status 1 if no scalar is found.

Usage: python3 Scripts/read_tensorboard_logs.py LOGDIR
Needs: pip install tensorboard   (TensorFlow is not needed)
"""
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator


def run_directories(logdir):
    """The directories under logdir (included) that hold at least one event file, sorted."""
    runs = []
    for directory, _, files in os.walk(logdir):
        if any(name.startswith("events.out.tfevents.") for name in files):
            runs.append(directory)
    return sorted(runs)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    logdir = sys.argv[1]
    if not os.path.isdir(logdir):
        sys.exit(f"{logdir}: not a directory")
    found = 0
    for directory in run_directories(logdir):
        files = sorted(n for n in os.listdir(directory) if n.startswith("events.out.tfevents."))
        print(f"run {os.path.relpath(directory, logdir)}: {len(files)} event file(s)")
        # size_guidance 0 keeps every point (the default samples scalars down to 10,000 per tag).
        accumulator = EventAccumulator(directory, size_guidance={SCALARS: 0})
        accumulator.Reload()
        for tag in sorted(accumulator.Tags()[SCALARS]):
            points = accumulator.Scalars(tag)
            first, last = points[0], points[-1]
            print(f"  {tag}: {len(points)} points, first (step {first.step}, {first.value!r}),"
                  f" last (step {last.step}, {last.value!r})")
            found += 1
    if found == 0:
        sys.exit(f"no scalars found in {logdir}")


if __name__ == "__main__":
    main()
