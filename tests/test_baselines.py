"""The leaderboard machinery (docs/baselines.md): a sweep over several base scenarios (the
``base`` axis), the sweep's own compare columns, ``clenv compare --out`` writing the table
into a Markdown file between markers, and the per-scenario band figure — end to end on a tiny
version (2 methods, 2 seeds, 2 tiny streams); and the real sweep file's shape."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from clenv.cli import main
from clenv.errors import ConfigError
from clenv.sweep.spec import load_sweep
from tests.conftest import REPO

ISSUE_PRESETS = ("lwf", "ewc", "ewc_online", "si", "mas", "agem", "er_ace", "der", "derpp",
                 "gdumb", "icarl", "mir", "scr", "bic", "rainbow", "clib")


def _tiny_base(name: str, seed_data: int) -> dict:
    return {"name": name, "seed": 0,
            "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 2, "batch_size": 10},
            "data": {"source": "synthetic", "seed": seed_data, "branching": [4], "dim": 8,
                     "separation": [1.5], "noise": 1.0, "train_per_class": 20,
                     "test_per_class": 10},
            "strategy": "er", "model": {"name": "mlp", "hidden": [16]},
            "budget": {"memory_size": 20}, "eval": {"every": 20}}


def _tiny_sweep(tmp_path: Path) -> Path:
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump({
        "name": "tiny", "base": [_tiny_base("alpha", 0), _tiny_base("beta", 1)],
        "strategies": ["naive", "er"], "seeds": [0, 1], "threads": 1, "workers": 1,
        "set": {"scenario.epochs": 1, "budget.updates_per_sample": 0.1,
                "output.plots": False},
        "metrics": ["a_auc", "a_last", "f_last", "average_forgetting"]}))
    return f


def test_tiny_leaderboard_end_to_end(tmp_path, capsys) -> None:
    f = _tiny_sweep(tmp_path)
    sweep = load_sweep(f)
    assert list(sweep.axes) == ["base", "strategy", "seed"]
    assert len(sweep.runs) == 8 and {r.config["name"] for r in sweep.runs} == {"alpha", "beta"}
    assert sweep.runs[0].id.startswith("alpha_naive_s0_")
    out = tmp_path / "sweep"
    assert main(["sweep", str(f), "--out", str(out), "--quiet"]) == 0
    doc = tmp_path / "baselines.md"
    doc.write_text("# Baselines\n\nprose kept\n\n<!-- clenv compare online -->\nold\n"
                   "<!-- /clenv compare online -->\n\nmore prose\n")
    assert main(["compare", str(out), "--baseline", "strategy=er", "--out", str(doc),
                 "--section", "online"]) == 0
    text = doc.read_text()
    assert "prose kept" in text and "more prose" in text and "\nold\n" not in text
    table = text.split("<!-- clenv compare online -->\n")[1].split("\n<!-- /clenv")[0]
    header = table.splitlines()[0]
    for col in ("base", "strategy", "a_auc", "a_last", "f_last", "average_forgetting",
                "Δ a_auc vs strategy=er [95% CI]", "wall s"):
        assert col in header, col
    body = table.splitlines()[2:]
    assert len(body) == 4  # 2 bases x 2 methods, the seeds averaged
    er_rows = [r for r in body if "| er |" in r]
    assert len(er_rows) == 2 and all("baseline" in r for r in er_rows)
    naive_alpha = next(r for r in body if r.startswith("| alpha | naive |"))
    assert "[" in naive_alpha  # a paired CI over the two seeds of the same base
    # the CSV: paired against ER *of the same base*, both seeds paired
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert {r["pairs"] for r in rows if r["strategy"] == "naive"} == {"2"}
    # running it again replaces the block, nothing else
    assert main(["compare", str(out), "--baseline", "strategy=er", "--out", str(doc),
                 "--section", "online"]) == 0
    assert doc.read_text() == text
    png = tmp_path / "bands.png"
    assert main(["plot", str(out), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_compare_out_refuses_broken_markers_before_writing(tmp_path, capsys) -> None:
    f = _tiny_sweep(tmp_path)
    raw = yaml.safe_load(f.read_text())
    raw["base"], raw["strategies"], raw["seeds"] = raw["base"][:1], ["naive"], [0]
    f.write_text(yaml.safe_dump(raw))
    out = tmp_path / "sweep"
    assert main(["sweep", str(f), "--out", str(out), "--quiet"]) == 0
    doc = tmp_path / "b.md"
    doc.write_text("<!-- /clenv compare table -->\n")
    assert main(["compare", str(out), "--out", str(doc)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "markers" in err
    assert not (out / "summary.csv").exists()
    assert main(["compare", str(tmp_path / "nowhere" / "x.md")]) != 0


def test_base_axis_names_must_differ(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"base\[1\]"):
        load_sweep({"base": [_tiny_base("a", 0), _tiny_base("a", 1)], "strategies": ["er"]})


def test_the_baselines_sweep_file() -> None:
    """sweeps/baselines.yaml: three ready scenarios, every issue-16/19/20 single-label preset,
    5 paired seeds, one pass, one step per Env batch, the table's columns; a preset missing on
    this checkout fails in one line naming it."""
    raw = yaml.safe_load((REPO / "sweeps" / "baselines.yaml").read_text())
    assert [Path(b).stem for b in raw["base"]] == ["quickstart", "iblurry_digits",
                                                   "split_mnist"]
    assert raw["strategies"][:2] == ["naive", "er"] and set(ISSUE_PRESETS) <= set(
        raw["strategies"]) and "joint" not in raw["strategies"]
    assert raw["seeds"] == [0, 1, 2, 3, 4]
    assert raw["set"]["scenario.epochs"] == 1 and raw["set"]["budget.updates_per_sample"] == 0.1
    assert raw["metrics"] == ["a_auc", "a_last", "f_last", "average_forgetting"]
    missing = [p for p in raw["strategies"] if not (REPO / "strategies" / f"{p}.yaml").is_file()]
    if missing:
        with pytest.raises(ConfigError) as exc:
            load_sweep(REPO / "sweeps" / "baselines.yaml")
        assert f"no preset '{missing[0]}'" in str(exc.value) and "\n" not in str(exc.value)
    else:
        sweep = load_sweep(REPO / "sweeps" / "baselines.yaml")
        assert len(sweep.runs) == 3 * len(raw["strategies"]) * 5
    offline = load_sweep(REPO / "sweeps" / "baselines_offline.yaml")
    assert offline.axes["strategy"] == ["joint"] and len(offline.runs) == 15
    for name, family in (("baselines_hierarchical", "hle_plfms"),
                         ("baselines_multilabel", "multilane")):  # one scenario each
        raw = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())
        assert family in raw["strategies"] and {"lwf", "ewc", "er_ace", "derpp", "mir"} <= set(
            raw["strategies"])  # every method that declares the family
        assert len(load_sweep(REPO / "sweeps" / f"{name}.yaml").runs) == 5 * len(
            raw["strategies"])
