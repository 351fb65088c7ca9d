"""The figure of a sweep: accuracy curves with the mean and a ±1 std band over the replicates
(seeds), one colour per strategy (line styles tell the other axes apart).

Left: accuracy on the classes seen so far against stream samples (anytime and task-end
evaluations). Right: accuracy on the first task's test set (its forgetting curve). Each run's
curve is interpolated onto the union of the group's evaluation positions before averaging.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clenv.metrics.anytime import accuracy_from_counts
from clenv.metrics.summary import read_events

LINESTYLES = ("-", "--", ":", "-.")


def run_curves(events: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(samples, seen-class accuracy, first-task accuracy, start record) of one run; nan
    where undefined (nothing seen yet, or the first task not seen yet)."""
    from clenv.plots import column_curves

    samples, acc, start = column_curves(events)
    evals = sorted((e for e in events if e["type"] == "eval"),
                   key=lambda e: (e["samples"], e["kind"] == "task_end"))
    seen_acc = np.full(len(evals), np.nan)
    for n, e in enumerate(evals):
        c = e["counts"]
        if "agnostic" in c and e["seen"]:
            v = accuracy_from_counts(c["agnostic"], c["total"], e["seen"])
            seen_acc[n] = np.nan if v is None else v
        elif "ap" in c:  # multi-label: mean over the columns' curves
            seen_acc[n] = np.nanmean(acc[:, n]) if np.isfinite(acc[:, n]).any() else np.nan
    return samples, seen_acc, acc[0] if len(acc) else np.full(len(evals), np.nan), start


def _band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    ys = []
    for x, y in curves:
        ok = np.isfinite(y)
        row = np.full(len(grid), np.nan)
        if ok.sum():
            inside = (grid >= x[ok].min()) & (grid <= x[ok].max())
            row[inside] = np.interp(grid[inside], x[ok], y[ok])
        ys.append(row)
    Y = np.vstack(ys)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(Y, axis=0)
            std = np.nanstd(Y, axis=0, ddof=1) if len(Y) > 1 else np.zeros(len(grid))
    return grid, mean, np.nan_to_num(std)


def plot_sweep(d: str | Path, out: str | Path) -> Path:
    """Draw the sweep's curves to ``out`` (png or pdf)."""
    from clenv.plots import _pyplot
    from clenv.sweep.aggregate import complete_runs, group_runs

    index, metrics_of, reps, axes = complete_runs(d)
    groups = [g for g in group_runs(index, metrics_of, axes) if g.runs]
    plt = _pyplot()
    # a base axis (one scenario per value) gets a row of panels per scenario
    rows = list(dict.fromkeys(g.key["base"] for g in groups)) if "base" in axes else [None]
    fig, panels = plt.subplots(len(rows), 2, figsize=(11, 4.2 * len(rows)), sharey=True,
                               squeeze=False)
    n_strats = len({_label(g.key.get("strategy", "run")) for g in groups})
    colours = (plt.rcParams["axes.prop_cycle"].by_key()["color"] if n_strats <= 10
               else [plt.get_cmap("tab20")(i % 20) for i in range(n_strats)])
    strategy_colour: dict[str, str] = {}
    style_of: dict[str, str] = {}
    task_ends_of: dict = {}
    for g in groups:
        row = rows.index(g.key["base"]) if rows != [None] else 0
        left, right = panels[row]
        task_ends = task_ends_of.setdefault(row, [])
        strat = _label(g.key.get("strategy", "run"))
        colour = strategy_colour.setdefault(strat, colours[len(strategy_colour) % len(colours)])
        rest = json.dumps({a: v for a, v in g.key.items() if a not in ("strategy", "base")},
                          sort_keys=True)
        style = style_of.setdefault(rest, LINESTYLES[len(style_of) % len(LINESTYLES)])
        seen_c, first_c = [], []
        for r in g.runs:
            events = read_events(Path(d) / "runs" / r["id"] / "events.jsonl")
            x, seen, first, start = run_curves(events)
            seen_c.append((x, seen))
            first_c.append((x, first))
            if not task_ends:
                task_ends.extend(start["task_ends"][:-1])
        label = ", ".join(_label(v) if a == "strategy" else f"{a}={_label(v)}"
                          for a, v in g.key.items() if a != "base") or "runs"
        label += f" (n={len(g.runs)})"
        for ax, curves in ((left, seen_c), (right, first_c)):
            x, m, s = _band(curves)
            ax.plot(x, m, color=colour, linestyle=style, label=label, lw=1.6)
            ax.fill_between(x, m - s, m + s, color=colour, alpha=0.18, lw=0)
    for row, base in enumerate(rows):
        left, right = panels[row]
        where = "" if base is None else f"{base}: "
        for ax, title in ((left, "accuracy on the classes seen so far"),
                          (right, "accuracy on task 0 (forgetting curve)")):
            for t in task_ends_of.get(row, []):
                ax.axvline(t, color="0.8", lw=0.8, zorder=0)
            ax.set_title(where + title)
            ax.set_xlabel("stream samples")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        left.set_ylabel(f"accuracy (mean ± std over {', '.join(reps) or 'runs'})")
    panels[0][1].legend(fontsize=8 if n_strats <= 10 else 6, loc="best",
                        ncol=1 if n_strats <= 10 else 2)
    fig.suptitle(index.get("name", "sweep"))
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _label(v) -> str:
    if isinstance(v, dict):
        return str(v.get("preset") or v.get("name") or "strategy")
    return f"{v:g}" if isinstance(v, float) else str(v)
