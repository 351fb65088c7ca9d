"""Figures from results folders: forgetting curves (per-task accuracy against samples seen,
task boundaries marked, runs overlaid) and the accuracy-matrix heatmap."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from clenv.metrics.anytime import accuracy_from_counts
from clenv.metrics.summary import read_events


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def task_curves(events: list[dict]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(samples, acc[T, n], start) over the init, anytime and task-end evaluations; acc is nan
    where a task has no seen class yet."""
    start = next(e for e in events if e["type"] == "start")
    evals = sorted((e for e in events if e["type"] == "eval"),
                   key=lambda e: (e["samples"], e["kind"] != "anytime"))
    T = start["n_tasks"]
    samples = np.array([e["samples"] for e in evals], dtype=float)
    acc = np.full((T, len(evals)), np.nan)
    for n, e in enumerate(evals):
        seen = set(e["seen"])
        for j, cls in enumerate(start["task_classes"]):
            cls_seen = [c for c in cls if c in seen]
            if cls_seen:
                v = accuracy_from_counts(e["counts"]["agnostic"], e["counts"]["total"], cls_seen)
                if v is not None:
                    acc[j, n] = v
    return samples, acc, start


def plot_forgetting(run_dirs: list[str | os.PathLike], out_file: str | os.PathLike) -> Path:
    """Per-task accuracy against samples seen; one panel per task, runs overlaid."""
    plt = _pyplot()
    runs = [(Path(d), read_events(Path(d) / "events.jsonl")) for d in run_dirs]
    T = max(next(e for e in ev if e["type"] == "start")["n_tasks"] for _, ev in runs)
    cols = min(T, 5)
    nrows = -(-T // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows + 0.9),
                             sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, (d, ev) in enumerate(runs):
        samples, acc, start = task_curves(ev)
        label = start["strategy"] if len(runs) == 1 else f"{d.name} ({start['strategy']})"
        for j in range(start["n_tasks"]):
            ax = axes[j // cols][j % cols]
            ax.plot(samples, acc[j], color=colors[r % len(colors)], lw=1.4,
                    label=label if j == 0 else None)
            if r == 0:
                ax.set_xlim(0, start["stream_length"])
                for b in start["task_ends"][:-1]:
                    ax.axvline(b, color="0.8", lw=0.8, ls="--", zorder=0)
                ax.set_title(f"task {j}", fontsize=9)
    for j in range(T, nrows * cols):
        axes[j // cols][j % cols].axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in axes[-1, :]:
        ax.set_xlabel("stream samples seen")
    axes[0][0].set_ylim(-0.02, 1.02)
    fig.suptitle("Per-task accuracy on seen classes (dashed: task boundaries)", y=0.99,
                 fontsize=10)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.92), ncol=min(len(runs), 4),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    out_file = Path(out_file)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def plot_accuracy_matrix(run_dir: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Heatmap of R[i][j] (rows: after training task i; columns: task j's test set)."""
    plt = _pyplot()
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    R = np.array(metrics["accuracy_matrix"], dtype=float)
    T = max(1, len(R))
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * T, 0.8 + 0.6 * T))
    im = ax.imshow(R if R.size else np.zeros((1, 1)), vmin=0, vmax=1, cmap="viridis")
    for i in range(R.shape[0]):
        for j in range(R.shape[1] if R.ndim == 2 else 0):
            ax.text(j, i, f"{R[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if R[i, j] < 0.6 else "black")
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(f"R[i][j] — {metrics['name']}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    out_file = Path(out_file)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def save_run_figures(run_dir: str | os.PathLike) -> None:
    run_dir = Path(run_dir)
    for name, fn in (("forgetting.png", lambda p: plot_forgetting([run_dir], p)),
                     ("accuracy_matrix.png", lambda p: plot_accuracy_matrix(run_dir, p))):
        tmp = run_dir / f".tmp-{name}"
        fn(tmp)
        os.replace(tmp, run_dir / name)
