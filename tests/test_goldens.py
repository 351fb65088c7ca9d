"""Goldens: every ready scenario that runs from the repository alone (no dataset root outside
it), shrunk by the overrides below and run with one torch thread, must give exactly the
metrics.json saved in tests/goldens/ (wall-time fields aside). They pin the behaviour of the
whole pipeline across refactors; a change that moves a number on purpose regenerates them:
`CLENV_UPDATE_GOLDENS=1 pytest tests/test_goldens.py` (and says why in its commit)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from clenv.cli import main
from tests.conftest import REPO, SCENARIOS, mnist_root

GOLDENS = Path(__file__).parent / "goldens"
NEEDS_ROOT_OUTSIDE = ("cifar100", "coco", "voc")
WALL_KEYS = ("wall_time", "wall")
MLCIL = ["scenario.epochs=1", "data.train_size=200", "data.test_size=40", "model.depth=1",
         "model.pretrain.epochs=1", "model.pretrain.data.train_size=200", "eval.every=100"]
AGCD = ["scenario.rounds=2", "strategy.base_epochs=1", "strategy.epochs_per_round=1",
        "strategy.proj_hidden=64"]


def _scenarios() -> list[Path]:
    return [p for p in sorted(SCENARIOS.glob("*.yaml"))
            if yaml.safe_load(p.read_text())["data"]["source"] not in NEEDS_ROOT_OUTSIDE]


def small_overrides(path: Path) -> list[str]:
    """The test suite's small overrides for one ready scenario: a few seconds each."""
    cfg = yaml.safe_load(path.read_text())
    data, generator = cfg["data"], cfg["scenario"]["generator"]
    sets = ["output.plots=false", "threads=1"]
    if data["source"] == "synthetic":
        sets.append("data.train_per_class=50")
    if str(data.get("root", "")).endswith("data/mnist-test"):
        sets.append(f"data.root={mnist_root()}")
    if data["source"] == "mnist":
        sets.append("data.max_train_per_class=100")
    sets += MLCIL if generator == "mlcil" else AGCD if generator == "agcd" else []
    if generator == "plasticity":  # 100 tasks: 3 short ones
        sets += ["scenario.n_tasks=3", "scenario.task_length=100", "eval.every=100"]
        if cfg["scenario"]["tasks"] == "random_labels":
            sets.append("scenario.samples_per_task=50")
    return sets


def strip_wall(value):
    """The metrics without wall-time fields (at any depth)."""
    if isinstance(value, dict):
        return {k: strip_wall(v) for k, v in value.items() if k not in WALL_KEYS}
    if isinstance(value, list):
        return [strip_wall(v) for v in value]
    return value


def test_every_root_free_ready_scenario_has_a_golden():
    names = {p.stem for p in _scenarios()}
    assert {"quickstart", "split_mnist", "hle_digits", "mlcil_digits", "agcd_digits"} <= names
    if not os.environ.get("CLENV_UPDATE_GOLDENS"):
        assert names == {p.stem for p in GOLDENS.glob("*.json")}


@pytest.mark.parametrize("path", _scenarios(), ids=lambda p: p.stem)
def test_golden(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["run", str(path), "--out", str(out), "--quiet"]
    for s in small_overrides(path):
        args += ["--set", s]
    assert main(args) == 0
    got = strip_wall(json.loads((out / "metrics.json").read_text()))
    golden = GOLDENS / f"{path.stem}.json"
    if os.environ.get("CLENV_UPDATE_GOLDENS"):
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())
    assert REPO in path.parents
