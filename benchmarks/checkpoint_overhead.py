"""Cost of checkpointing a run: wall time of the quickstart scenario (ER, 3000 stream samples)
without checkpoints and with output.checkpoint_every = 1000 / 250 / 50, median of 3 repeats,
and the size of one checkpoint. One core (torch threads 1); about a minute.

    python benchmarks/checkpoint_overhead.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from clenv.config.loader import load_config
from clenv.runner import Run

REPO = Path(__file__).resolve().parents[1]


def timed(every: int | None, out: Path) -> float:
    sets = ["output.plots=false"]
    if every:
        sets.append(f"output.checkpoint_every={every}")
    cfg = load_config(REPO / "scenarios" / "quickstart.yaml", overrides=sets)
    run = Run(cfg)
    t = time.perf_counter()
    run.execute(out)
    return time.perf_counter() - t


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        timed(None, Path(tmp) / "warm")  # torch's lazy initialisation
        for every in (None, 1000, 250, 50):
            walls = [timed(every, Path(tmp) / f"r{every}_{i}") for i in range(3)]
            rows.append((every, statistics.median(walls)))
        # one checkpoint's size: keep it by interrupting nothing, re-saving at the end
        cfg = load_config(REPO / "scenarios" / "quickstart.yaml",
                          overrides=["output.plots=false", "output.checkpoint_every=1000"])
        from clenv import checkpoint

        kept = {}
        original = checkpoint.discard
        checkpoint.discard = lambda out: kept.setdefault(
            "size", (out / checkpoint.CHECKPOINT_NAME).stat().st_size)
        try:
            Run(cfg).execute(Path(tmp) / "size")
        finally:
            checkpoint.discard = original
    base = rows[0][1]
    print("| checkpoint_every | wall s (median of 3) | overhead |")
    print("|---|---|---|")
    for every, wall in rows:
        print(f"| {every or 'none'} | {wall:.2f} | {100 * (wall / base - 1):+.1f}% |")
    print(f"checkpoint size: {kept['size'] / 1024:.0f} KiB (ER, memory 200, MLP 32-128-128-10)")


if __name__ == "__main__":
    main()
