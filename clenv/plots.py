"""Figures from results folders: forgetting curves (per-task accuracy against samples seen,
task boundaries marked, runs overlaid) and the accuracy-matrix heatmap."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from clenv.families.base import Family
from clenv.families.registry import FAMILIES
from clenv.families.single_label import SINGLE_LABEL
from clenv.metrics.anytime import accuracy_from_counts
from clenv.metrics.summary import read_events


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def family_of(start: dict) -> Family:
    """The Family record a start record names (logs before the family field: single-label,
    whose figures every older stream log shares)."""
    return next((f for f in FAMILIES if f.name == start.get("family")), SINGLE_LABEL)


def column_curves(events: list[dict]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(samples, acc[J, n], start) over the init, anytime, probe and task-end evaluations of
    each accuracy-matrix column (task or concept); nan where a column has no seen unit yet."""
    start = next(e for e in events if e["type"] == "start")
    evals = sorted((e for e in events if e["type"] == "eval"),
                   key=lambda e: (e["samples"], e["kind"] == "task_end"))
    columns = start["columns"]
    samples = np.array([e["samples"] for e in evals], dtype=float)
    acc = np.full((len(columns), len(evals)), np.nan)
    own = family_of(start).column_values  # a family whose curves are not accuracies
    for n, e in enumerate(evals):
        if own is not None:
            acc[:, n] = [np.nan if v is None else v for v in own(e, columns)]
            continue
        seen = set(e["seen"])
        if "ap" in e["counts"]:  # multi-label: mean AP of the column's seen classes
            ap = np.array([np.nan if v is None else v for v in e["counts"]["ap"]])
            for j, units in enumerate(columns):
                vals = ap[[u for u in units if u in seen]]
                if np.isfinite(vals).any():
                    acc[j, n] = np.nanmean(vals)
            continue
        for j, units in enumerate(columns):
            units_seen = [u for u in units if u in seen]
            if units_seen:
                v = accuracy_from_counts(e["counts"]["agnostic"], e["counts"]["total"],
                                         units_seen)
                if v is not None:
                    acc[j, n] = v
    return samples, acc, start


def training_spans(start: dict) -> list[list[tuple[int, int, bool]]]:
    """Per column, the (start, end, is_drift) stream spans in which it is trained."""
    spans: list[list[tuple[int, int, bool]]] = [[] for _ in start["columns"]]
    segments = (start.get("lifelong") or {}).get("segments")
    if segments:
        for seg in segments:
            for j in seg["columns"]:
                spans[j].append((seg["start"], seg["end"], seg["type"] == "drift"))
    else:
        for j, (a, b) in enumerate(zip(start["task_starts"], start["task_ends"], strict=True)):
            if j < len(spans):
                spans[j].append((a, b, False))
    return spans


def plot_forgetting(run_dirs: list[str | os.PathLike], out_file: str | os.PathLike) -> Path:
    """Accuracy of every task / concept against samples seen; one panel per column, the spans
    in which it is trained shaded (hatched: drift), runs overlaid."""
    plt = _pyplot()
    runs = [(Path(d), read_events(Path(d) / "events.jsonl")) for d in run_dirs]
    first_start = next(e for e in runs[0][1] if e["type"] == "start")
    J = max(len(next(e for e in ev if e["type"] == "start")["columns"]) for _, ev in runs)
    cols = min(J, 5)
    nrows = -(-J // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows + 0.9),
                             sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, spans in enumerate(training_spans(first_start)):
        ax = axes[j // cols][j % cols]
        for a, b, drift in spans:
            ax.axvspan(a, b, color="tab:gray", alpha=0.12 if drift else 0.22, lw=0,
                       hatch="//" if drift else None)
        ax.set_xlim(0, first_start["stream_length"])
        for b in first_start["task_ends"][:-1]:
            ax.axvline(b, color="0.8", lw=0.6, ls="--", zorder=0)
        ax.set_title(first_start["column_names"][j], fontsize=9)
    for r, (d, ev) in enumerate(runs):
        samples, acc, start = column_curves(ev)
        label = start["strategy"] if len(runs) == 1 else f"{d.name} ({start['strategy']})"
        resets = [e["samples"] for e in ev if e["type"] == "event" and e["kind"] == "reset"]
        if resets:  # forgetting plug-in resets: ticks along the top of every panel
            label += f" ({len(resets)} resets)"
        for j in range(len(start["columns"])):
            axes[j // cols][j % cols].plot(samples, acc[j], color=colors[r % len(colors)],
                                           lw=1.4, label=label if j == 0 else None)
            for x in resets:
                axes[j // cols][j % cols].axvline(x, ymin=0.93, ymax=1.0, lw=0.7,
                                                  color=colors[r % len(colors)])
    for j in range(J, nrows * cols):
        axes[j // cols][j % cols].axis("off")
    family = family_of(first_start)
    for ax in axes[:, 0]:
        ax.set_ylabel(family.value_label)
    for ax in axes[-1, :]:
        ax.set_xlabel("stream samples seen")
    if family.matrix_range is not None:
        lo, hi = family.matrix_range
        axes[0][0].set_ylim(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo))
    what = ("Accuracy per task/concept on seen classes" if family.column_values is None
            else f"{family.value_label} per task")
    fig.suptitle(f"{what} (shaded: trained; hatched: drift; dashed: segment ends)", y=0.99,
                 fontsize=10)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.93), ncol=min(len(runs), 4),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    out_file = Path(out_file)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def plot_accuracy_matrix(run_dir: str | os.PathLike, out_file: str | os.PathLike,
                         metrics: dict | None = None, family: Family = SINGLE_LABEL) -> Path:
    """Heatmap of R[i][j] (rows: after training task i; columns: task j's test set), or of
    the family's own per-task matrix (``family.matrix``); ``metrics`` defaults to the folder's
    metrics.json."""
    plt = _pyplot()
    if metrics is None:
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    R = np.array(metrics[family.matrix], dtype=float)
    T = max(1, len(R))
    lo, hi = family.matrix_range or ((float(R.min()), float(R.max())) if R.size else (0, 1))
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * T, 0.8 + 0.6 * T))
    im = ax.imshow(R if R.size else np.zeros((1, 1)), vmin=lo, vmax=hi, cmap="viridis")
    for i in range(R.shape[0]):
        for j in range(R.shape[1] if R.ndim == 2 else 0):
            ax.text(j, i, f"{R[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if R[i, j] < lo + 0.6 * (hi - lo) else "black")
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.set_title(f"{family.matrix}[i][j] — {metrics['name']}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    out_file = Path(out_file)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def save_run_figures(run_dir: str | os.PathLike, metrics: dict | None = None,
                     family: Family = SINGLE_LABEL) -> None:
    """The run's figures, from its events and ``metrics`` (written before metrics.json):
    the curves per task and the heatmap of the family's per-task matrix."""
    run_dir = Path(run_dir)
    for name, fn in (("forgetting.png", lambda p: plot_forgetting([run_dir], p)),
                     (f"{family.matrix}.png",
                      lambda p: plot_accuracy_matrix(run_dir, p, metrics, family))):
        tmp = run_dir / f".tmp-{name}"
        fn(tmp)
        os.replace(tmp, run_dir / name)


def has_plasticity(events: list[dict]) -> bool:
    """Whether a run logged plasticity diagnostics or ran on a plasticity stream."""
    start = next(e for e in events if e["type"] == "start")
    return start.get("generator") == "plasticity" or any(
        e["type"] == "eval" and "diagnostics" in e for e in events)


def plot_plasticity(run_dirs: list[str | os.PathLike], out_file: str | os.PathLike) -> Path:
    """The plasticity curve (per task, right after training on it) and the four diagnostics
    (dead ReLU fraction, effective rank, mean |weight|, gradient norm) against samples seen;
    runs overlaid (docs/plasticity.md)."""
    from clenv.metrics.plasticity import diagnostics_series, plasticity_summary

    plt = _pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.2), squeeze=False)
    axes = axes[0]
    titles = ("plasticity (per task)", "dead ReLU fraction", "effective rank",
              "mean |weight|", "gradient norm")
    keys = ("dead_fraction", "effective_rank", "weight_magnitude", "grad_norm")
    for d in run_dirs:
        ev = read_events(Path(d) / "events.jsonl")
        start = next(e for e in ev if e["type"] == "start")
        label = f"{Path(d).name} ({start['strategy']})"
        if start.get("generator") == "plasticity":
            curve = plasticity_summary(ev)["curve"]
            axes[0].plot(np.arange(len(curve)), curve, lw=1.2, label=label)
        series = diagnostics_series(ev)
        for ax, k in zip(axes[1:], keys, strict=True):
            pts = [(s, v) for s, v in zip(series["samples"], series[k], strict=True)
                   if v is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), lw=1.2, label=label)
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9)
    axes[0].set_xlabel("task")
    axes[0].set_ylim(-0.02, 1.02)
    for ax in axes[1:]:
        ax.set_xlabel("stream samples seen")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(out_file)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
