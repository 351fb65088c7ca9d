"""A regime dial read off a sweep: how the paired difference between a method and its
baseline moves as one axis (the dial) turns.

For each value v of the dial axis and each combination c of the other non-replicate axes
(except the axis the baseline fixes), the difference is d_i = metric(c, v, seed i) -
metric(baseline, c, v, seed i) over the seeds both completed; reported as its mean with the
95% Student-t interval (clenv.sweep.stats.paired_difference), in the metric's units.
``clenv plot SWEEP --dial AXIS --baseline AXIS=VALUE`` draws it (docs/regimes.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from clenv.errors import UserError
from clenv.sweep.aggregate import (
    _paired,
    _same,
    complete_runs,
    find_baseline,
    group_runs,
    parse_baseline,
)
from clenv.sweep.index import read_index


@dataclass
class DialLine:
    """One method's paired difference to the baseline at each dial value."""

    key: dict  # the other axes' values (the method; the base scenario when there are several)
    values: list = field(default_factory=list)  # dial values, in the sweep's order
    diffs: list = field(default_factory=list)  # [mean, ci_low, ci_high, pairs] per value


def dial_lines(d: str | Path, dial: str, baseline: str, metric: str) -> list[DialLine]:
    """The paired differences of every non-baseline group to its baseline along ``dial``."""
    index, metrics_of, reps, axes = complete_runs(d)
    if dial not in axes:
        raise UserError(f"--dial: expected one of the sweep's axes "
                        f"({', '.join(axes) or 'none'}), got {dial!r}")
    base = parse_baseline(baseline, axes)
    if not base:
        raise UserError("--dial needs --baseline AXIS=VALUE: the group each method is paired "
                        "against at every dial value, e.g. strategy.query=random")
    if dial in base:
        raise UserError(f"--baseline: fixes the dial axis {dial!r}; fix another axis, so the "
                        "baseline is taken at every dial value")
    groups = [g for g in group_runs(index, metrics_of, axes) if g.runs]
    if not any(isinstance(r["metrics"].get(metric), (int, float)) for g in groups
               for r in g.runs):
        raise UserError(f"--metrics: no complete run has a value for {metric!r}")
    lines: dict[str, DialLine] = {}
    for g in groups:
        if all(_same(g.key.get(a), v) for a, v in base.items()):
            continue  # a baseline group
        b = find_baseline(groups, base, g, axes)
        rest = {a: v for a, v in g.key.items() if a != dial}
        line = lines.setdefault(json.dumps(rest, sort_keys=True, default=str), DialLine(rest))
        line.values.append(g.key[dial])
        line.diffs.append(_paired(g, b, metric, reps))
    if not lines:
        raise UserError(f"--baseline {baseline}: every group is a baseline group; nothing to "
                        "compare along the dial")
    return list(lines.values())


def dial_table(lines: list[DialLine], dial: str, metric: str, baseline: str) -> str:
    """Markdown: one row per method, one column per dial value, cells in points."""
    values = list(dict.fromkeys(v for ln in lines for v in ln.values))
    head = ["method", *(f"{dial} = {_label(v)}" for v in values)]
    rows = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for ln in lines:
        cells = {json.dumps(v, default=str): c for v, c in zip(ln.values, ln.diffs, strict=True)}
        out = [label_of(ln.key)]
        for v in values:
            mu, lo, hi, n = cells.get(json.dumps(v, default=str), (None, None, None, 0))
            out.append("—" if mu is None else f"{100 * mu:+.1f}" if lo is None
                       else f"{100 * mu:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
        rows.append(f"| {' | '.join(out)} |")
    return (f"Δ {metric} vs {baseline}, in points (paired over seeds, 95% CI)\n\n"
            + "\n".join(rows) + "\n")


def plot_dial(d: str | Path, out: str | Path, dial: str, baseline: str,
              metrics: list[str]) -> Path:
    """One panel per metric (a row per base scenario when the sweep has several): the paired
    difference to the baseline against the dial value, with 95% CI bars and a zero line."""
    from clenv.plots import _pyplot

    per_metric = {m: dial_lines(d, dial, baseline, m) for m in metrics}
    bases = list(dict.fromkeys(ln.key.get("base") for ln in per_metric[metrics[0]]))
    plt = _pyplot()
    fig, panels = plt.subplots(len(bases), len(metrics), figsize=(5.2 * len(metrics),
                               3.8 * len(bases)), squeeze=False)
    for col, m in enumerate(metrics):
        for ln in per_metric[m]:
            ax = panels[bases.index(ln.key.get("base"))][col]
            pts = [(x, c) for x, c in zip(ln.values, ln.diffs, strict=True) if c[0] is not None]
            xs = _positions([x for x, _ in pts])
            mu = [100 * c[0] for _, c in pts]
            err = [[100 * (c[0] - c[1]) if c[1] is not None else 0 for _, c in pts],
                   [100 * (c[2] - c[0]) if c[2] is not None else 0 for _, c in pts]]
            label = label_of({a: v for a, v in ln.key.items() if a != "base"})
            ax.errorbar(xs, mu, yerr=err, marker="o", capsize=3, lw=1.5, label=label)
        for row, b in enumerate(bases):
            ax = panels[row][col]
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xlabel(dial)
            ax.set_ylabel(f"Δ {m} (points)")
            ax.set_title((f"{b}: " if b is not None else "") + f"{m} minus {baseline}",
                         fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{read_index(d).get('name', 'sweep')}: mean paired difference, 95% CI")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _positions(values: list) -> list:
    """Numeric dial values as they are; others at 0, 1, 2, ... in the sweep's order."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return values
    return list(range(len(values)))


def _label(v) -> str:
    if isinstance(v, dict):
        return str(v.get("preset") or v.get("name") or json.dumps(v, sort_keys=True))
    return f"{v:g}" if isinstance(v, float) else str(v)


def label_of(key: dict) -> str:
    """``strategy=er, strategy.head.type=language`` style name of a line."""
    return ", ".join(f"{a}={_label(v)}" for a, v in key.items()) or "runs"
