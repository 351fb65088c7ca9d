"""The per-round AGCD figure: All / Old / New clustering accuracy against the query round,
transductive and inductive, and the new-class coverage of the queries; runs overlaid."""

from __future__ import annotations

import os
from pathlib import Path

from clenv.metrics.active_discovery import summarize_agcd
from clenv.metrics.summary import read_events


def is_agcd_run(run_dir: str | os.PathLike) -> bool:
    """True when the results folder's log starts with an agcd start record."""
    path = Path(run_dir) / "events.jsonl"
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    return '"generator":"agcd"' in first


def plot_agcd_rounds(run_dirs: list[str | os.PathLike], out_file: str | os.PathLike) -> Path:
    """Three panels (transductive, inductive, novel coverage) against the round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"all": "-", "old": "--", "new": ":"}
    for i, d in enumerate(run_dirs):
        m = summarize_agcd(read_events(Path(d) / "events.jsonl"))
        rounds = [r["round"] for r in m["per_round"]]
        name = f"{m['learner']}/{m['query']}" if len(run_dirs) == 1 else \
            f"{Path(d).name} ({m['learner']}/{m['query']})"
        c = colors[i % len(colors)]
        for ax, split in zip(axes[:2], ("transductive", "inductive"), strict=True):
            for part, ls in styles.items():
                ys = [r[split][part] for r in m["per_round"]]
                ys = [float("nan") if y is None else y for y in ys]
                ax.plot(rounds, ys, ls, color=c, marker="o", ms=3,
                        label=f"{name} {part}" if split == "transductive" else None)
        cov = [float("nan") if r["novel_coverage"] is None else r["novel_coverage"]
               for r in m["per_round"]]
        axes[2].plot(rounds, cov, "-", color=c, marker="o", ms=3)
    for ax, title in zip(axes, ("transductive (unlabelled candidates)", "inductive (test split)",
                                "new classes queried (coverage)"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("query round")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("clustering accuracy")
    fig.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12 + 0.04 * max(0, len(run_dirs) - 1), 1, 1))
    out_file = Path(out_file)
    fig.savefig(out_file, dpi=110, format="png")
    plt.close(fig)
    return out_file
