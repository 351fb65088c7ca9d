"""The table of a sweep: runs grouped by every axis except the replicates, mean ± std over
the replicates, and the paired difference to a baseline group with its 95% CI (pairs share
the replicate values, i.e. the seed). Written as CSV (raw values) and Markdown (points).

When the sweep selects hyper-parameters (``select``), only the selected configuration of each
group is reported (clenv.sweep.select), with its selection score beside its test metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from clenv.atomic import write_text_atomic
from clenv.errors import UserError
from clenv.sweep.index import load_metrics, read_index
from clenv.sweep.stats import mean_std, paired_difference

DEFAULT_METRICS = ("final_accuracy", "avg_incremental_accuracy", "average_forgetting", "bwt",
                   "a_auc", "online_accuracy", "map", "cf1", "gcd_all", "gcd_old", "gcd_new")
# "cf1" is MULTI-LANE's mean per-class F1 from metrics_version 2 on (PRS's is "cf1_prs")
CSV_NAME, MD_NAME = "summary.csv", "summary.md"


@dataclass
class Group:
    """Runs sharing every non-replicate axis value; ``key`` holds those values."""

    key: dict
    runs: list[dict]  # {"id", "params", "metrics"} of the complete runs
    failed: int = 0
    score: float | None = None  # selection score, when the sweep selects


def require_one_metrics_version(metrics_of: dict[str, dict]) -> None:
    """Refuse to put metrics.json files of different ``metrics_version`` (absent: 1) side by
    side: metric names and conventions changed between versions (docs/metrics.md)."""
    first: dict[int, str] = {}
    for name, m in metrics_of.items():
        v = m.get("metrics_version", 1) if isinstance(m, dict) else 1
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(f"{name}: metrics.json has metrics_version {v!r}, expected an "
                            "integer; the file is damaged: run it again")
        first.setdefault(v, name)
    if len(first) > 1:
        seen = ", ".join(f"{name} has version {v}" for v, name in sorted(first.items()))
        raise UserError(f"metrics.json versions differ ({seen}): metric names and conventions "
                        "changed between versions (docs/metrics.md); re-run the older runs "
                        "with this clenv, or compare runs of one version only")


def _value_key(v) -> str:
    return json.dumps(v, sort_keys=True)


def group_runs(index: dict, metrics_of: dict[str, dict], axes: list[str]) -> list[Group]:
    """Groups by the values of ``axes``, in the sweep's run order."""
    groups: dict[str, Group] = {}
    for e in index["runs"]:
        key = {a: e["params"][a] for a in axes}
        g = groups.setdefault(_value_key(key), Group(key, []))
        if e["id"] in metrics_of:
            g.runs.append({"id": e["id"], "params": e["params"], "metrics": metrics_of[e["id"]]})
        elif e.get("status") == "failed":
            g.failed += 1
    return list(groups.values())


def parse_baseline(text: str | None, axes: list[str]) -> dict:
    """``strategy=er`` or ``strategy=er,strategy.lr=0.05`` -> {axis: value}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        k = k.strip()
        if not sep or k not in axes:
            raise UserError(f"--baseline: expected AXIS=VALUE with AXIS one of "
                            f"{', '.join(axes) or '(no axes)'}, got {part!r}")
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k] = v
    return out


def _same(a, b) -> bool:
    return a == b or str(a) == str(b)


def find_baseline(groups: list[Group], base: dict, g: Group, match: list[str]) -> Group | None:
    """The group equal to ``g`` on ``match`` axes except those ``base`` fixes."""
    want = {**{a: g.key[a] for a in match}, **base}
    for h in groups:
        if all(_same(h.key.get(a), v) for a, v in want.items()):
            return h
    return None


def _metric(run: dict, name: str) -> float | None:
    v = run["metrics"].get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _replicate(run: dict, replicates: list[str]) -> str:
    return _value_key([run["params"][r] for r in replicates])


def complete_runs(d: str | Path) -> tuple[dict, dict[str, dict], list[str], list[str]]:
    """(index, metrics of the complete runs, replicate axes, the other axes) of the sweep in
    ``d``; one line when no run is complete yet or the runs' metrics versions differ."""
    index = read_index(d)
    metrics_of = load_metrics(d, index)
    if not metrics_of:
        raise UserError(f"{d}: no run of the sweep is complete yet; run clenv sweep first")
    require_one_metrics_version(metrics_of)
    reps = index["replicates"]
    return index, metrics_of, reps, [a for a in index["axes"] if a not in reps]


def table(d: str | Path, *, metrics: list[str] | None = None, baseline: str | None = None,
          diff_metric: str | None = None, sort: str | None = None, ascending: bool = False,
          all_configs: bool = False) -> tuple[list[str], list[list], list[list[str]]]:
    """(header, raw rows for CSV, formatted rows for Markdown) of the sweep in ``d``."""
    index, metrics_of, reps, axes = complete_runs(d)
    select = index.get("select")
    if select is not None and not all_configs:
        groups, match = _selected_groups(d, index, metrics_of)
        shown_axes = axes
    else:
        groups, match, shown_axes = group_runs(index, metrics_of, axes), axes, axes
    metrics = metrics or index.get("metrics")  # the sweep file's own default columns
    names = list(metrics) if metrics else [
        m for m in DEFAULT_METRICS
        if any(_metric(r, m) is not None for g in groups for r in g.runs)]
    for m in names:
        if not any(_metric(r, m) is not None for g in groups for r in g.runs):
            raise UserError(f"--metrics: no complete run has a value for {m!r}; use e.g. "
                            "final_accuracy, average_forgetting, a_auc")
    dm = diff_metric or (names[0] if names else None)
    base = parse_baseline(baseline, axes)
    header = [*shown_axes, "n", "failed"]
    if select is not None and not all_configs:
        header.append(f"select_{select['metric']}")
    for m in names:
        header += [f"{m}_mean", f"{m}_std"]
    if base:
        header += [f"{dm}_diff", f"{dm}_ci_low", f"{dm}_ci_high", "pairs"]
    header.append("wall_s_mean")
    raw_rows, md_rows = [], []
    for g in groups:
        if not g.runs:
            continue
        raw: list = [*(g.key.get(a) for a in shown_axes), len(g.runs), g.failed]
        md: list[str] = [*(_cell(g.key.get(a)) for a in shown_axes), str(len(g.runs)),
                         str(g.failed)]
        if select is not None and not all_configs:
            raw.append(g.score)
            md.append("—" if g.score is None else f"{100 * g.score:.1f}")
        for m in names:
            vals = [v for v in (_metric(r, m) for r in g.runs) if v is not None]
            if vals:
                mu, sd = mean_std(vals)
                raw += [mu, sd]
                md.append(f"{100 * mu:.1f}" + ("" if sd is None else f" ± {100 * sd:.1f}"))
            else:
                raw += [None, None]
                md.append("—")
        if base:
            b = find_baseline(groups, base, g, match)
            cells = _paired(g, b, dm, reps)
            raw += cells
            md.append(_fmt_diff(cells, g is b))
        walls = [r["metrics"].get("wall_time", {}).get("total") for r in g.runs]
        walls = [w for w in walls if isinstance(w, (int, float))]
        raw.append(sum(walls) / len(walls) if walls else None)
        md.append(f"{sum(walls) / len(walls):.1f}" if walls else "—")
        raw_rows.append(raw)
        md_rows.append(md)
    if sort is not None:
        col = f"{sort}_mean" if f"{sort}_mean" in header else sort
        if col not in header:
            raise UserError(f"--sort: no column {sort!r}; use one of: "
                            f"{', '.join(h.removesuffix('_mean') for h in header)}")
        i = header.index(col)

        def key(r: int):  # missing values last, whichever the direction
            v = raw_rows[r][i]
            if not isinstance(v, (int, float)):
                return (v is None, 0.0, str(v))
            return (False, v if ascending else -v, "")

        order = sorted(range(len(raw_rows)), key=key)
        raw_rows = [raw_rows[r] for r in order]
        md_rows = [md_rows[r] for r in order]
    if base:
        md_header = [*shown_axes, "n", "failed"]
        if select is not None and not all_configs:
            md_header.append(f"select {select['metric']} ({select['on']})")
        md_header += [*names, f"Δ {dm} vs {baseline} [95% CI]", "wall s"]
    else:
        md_header = [*header[: len(header) - 2 * len(names) - 1], *names, "wall s"]
    return header, raw_rows, [md_header, *md_rows]


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return str(v.get("preset") or v.get("name") or json.dumps(v, sort_keys=True))
    return str(v)


def _paired(g: Group, b: Group | None, m: str, reps: list[str]) -> list:
    if b is None:
        return [None, None, None, 0]
    mine = {_replicate(r, reps): _metric(r, m) for r in g.runs}
    theirs = {_replicate(r, reps): _metric(r, m) for r in b.runs}
    keys = [k for k in mine if k in theirs and mine[k] is not None and theirs[k] is not None]
    if not keys:
        return [None, None, None, 0]
    mu, lo, hi = paired_difference([mine[k] for k in keys], [theirs[k] for k in keys])
    return [mu, lo, hi, len(keys)]


def _fmt_diff(cells: list, is_baseline: bool) -> str:
    if is_baseline:
        return "baseline"
    mu, lo, hi, n = cells
    if mu is None:
        return "—"
    if lo is None:
        return f"{100 * mu:+.1f} (n={n})"
    return f"{100 * mu:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _selected_groups(d, index: dict, metrics_of: dict) -> tuple[list[Group], list[str]]:
    """One group per fixed-axes combination: the runs of its chosen configuration."""
    from clenv.sweep.select import select_runs

    sel = select_runs(index, metrics_of)
    by_id = {e["id"]: e for e in index["runs"]}
    groups = []
    for s in sel["groups"]:
        if s["chosen"] is None:
            continue
        key = {**s["fixed"], **s["chosen"]}
        runs = [{"id": i, "params": by_id[i]["params"], "metrics": metrics_of[i]}
                for i in s["chosen_runs"]]
        cand = next(c for c in s["candidates"] if c["values"] == s["chosen"])
        ordered = {a: key[a] for a in index["axes"] if a in key}
        groups.append(Group(ordered, runs, score=cand["score"]))
    return groups, [a for a in index["axes"] if a in sel["groups"][0]["fixed"]] \
        if sel["groups"] else []


def to_csv(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.6f}"
        if isinstance(v, dict):
            return _cell(v)
        return str(v)

    return "\n".join(",".join(cell(v) for v in r) for r in [header, *rows]) + "\n"


def to_markdown(md: list[list[str]]) -> str:
    header, *rows = md
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def compare_sweep(d: str | Path, **kw) -> tuple[str, str]:
    """Write DIR/summary.csv and DIR/summary.md; return (csv text, markdown text)."""
    header, raw, md = table(d, **kw)
    csv_text, md_text = to_csv(header, raw), to_markdown(md)
    write_text_atomic(Path(d) / CSV_NAME, csv_text)
    write_text_atomic(Path(d) / MD_NAME, md_text)
    return csv_text, md_text


def merged_table_text(path: str | Path, md_text: str, section: str) -> str:
    """The text of the Markdown file ``path`` with ``md_text`` between the lines
    ``<!-- clenv compare SECTION -->`` and ``<!-- /clenv compare SECTION -->`` (replacing what
    was there; appended with the markers when the file lacks them; the whole file when it is
    absent). The rest of the file is kept as it is. Raises UserError before anything is
    written when the folder is missing or the markers are broken."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist; create it first")
    begin, end = f"<!-- clenv compare {section} -->", f"<!-- /clenv compare {section} -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{md_text.rstrip()}\n{end}"
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        return text[:i] + block + text[j + len(end):]
    if i >= 0 or j >= 0:
        raise UserError(f"--out {path}: one of the markers {begin!r} and {end!r} is missing "
                        "or they are out of order; fix the file")
    return (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"


def write_table_into(path: str | Path, md_text: str, section: str) -> Path:
    """Write ``merged_table_text`` to ``path``."""
    write_text_atomic(Path(path), merged_table_text(path, md_text, section))
    return Path(path)
