"""Path fields: relative paths in a YAML file join that file's folder, ``--set`` paths the working
directory, a sweep's ``set:``/axes paths the sweep file's folder; the saved config.yaml holds them
absolute; the ready scenarios that need no external data run from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.config.schema import PATH, Field, check_value, path_bases
from clenv.errors import ConfigError
from tests.conftest import REPO, SCENARIOS, one_line

TREE = {"zero": "round", "six": "round", "eight": "round", "nine": "round", "one": "straight",
        "four": "straight", "seven": "straight", "two": "curved", "three": "curved",
        "five": "curved"}


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def layout(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """configs/run.yaml with ``tree: trees/shapes.yaml`` next to it; the working directory is an
    unrelated folder."""
    tree = _write(tmp_path / "configs" / "trees" / "shapes.yaml", TREE)
    cfg = _write(tmp_path / "configs" / "run.yaml", {
        "scenario": {"generator": "hle", "mode": "single_label", "fine_tasks": 2,
                     "batch_size": 10},
        "data": {"source": "digits", "test_fraction": 0.25, "tree": "trees/shapes.yaml"},
        "strategy": "er", "model": {"name": "mlp", "hidden": [16]}, "eval": {"every": 0},
        "output": {"plots": False}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return {"root": tmp_path, "tree": tree, "config": cfg, "cwd": elsewhere}


def test_yaml_path_joins_the_yaml_folder(layout) -> None:
    cfg = load_config(layout["config"])
    assert cfg["data"]["tree"] == str(layout["tree"])
    assert main(["check", str(layout["config"])]) == 0  # reads the tree from there


def test_set_path_joins_the_working_directory(layout) -> None:
    _write(layout["cwd"] / "mine.yaml", TREE)
    cfg = load_config(layout["config"], overrides=["data.tree=mine.yaml"])
    assert cfg["data"]["tree"] == str(layout["cwd"] / "mine.yaml")
    whole = load_config(layout["config"], overrides=[
        "data={source: digits, tree: mine.yaml}"])  # a whole section set: its paths too
    assert whole["data"]["tree"] == str(layout["cwd"] / "mine.yaml")
    assert main(["check", str(layout["config"]), "--set", "data.tree=mine.yaml"]) == 0


def test_home_and_absolute_paths_are_kept(layout) -> None:
    cfg = load_config(layout["config"], overrides=["data.tree=~/t.yaml"])
    assert cfg["data"]["tree"] == str(Path.home() / "t.yaml")
    cfg = load_config(layout["config"], overrides=[f"data.tree={layout['tree']}"])
    assert cfg["data"]["tree"] == str(layout["tree"])


def test_path_field_rules() -> None:
    f = Field(PATH, None, "a file")
    assert check_value(None, f, "x.path") is None
    with path_bases("/base", {"x.set": "/cwd", "y": "/y"}):
        assert check_value("a/../b.yaml", f, "x.path") == str(Path("/base/b.yaml"))
        assert check_value("b.yaml", f, "x.set") == str(Path("/cwd/b.yaml"))
        assert check_value("b.yaml", f, "y.z.w") == str(Path("/y/b.yaml"))  # under a set key
        assert check_value(Path("c"), f, "x.path") == str(Path("/base/c"))
    with pytest.raises(ConfigError) as exc:
        load_config({"data": {"source": "digits", "tree": 3}})
    one_line(exc, "data.tree", "expected a string (a file or folder path)", "3")


def test_sweep_paths(layout) -> None:
    from clenv.sweep.spec import load_sweep

    root = layout["root"]
    other = _write(root / "sweeps" / "trees" / "other.yaml", TREE)
    sweep_file = _write(root / "sweeps" / "s.yaml", {
        "base": "../configs/run.yaml", "seeds": [0],
        "axes": {"data.tree": ["trees/other.yaml", str(layout["tree"])]}})
    trees = [r.config["data"]["tree"] for r in load_sweep(sweep_file).runs]
    assert trees == [str(other), str(layout["tree"])]
    fixed = _write(root / "sweeps" / "fixed.yaml", {
        "base": "../configs/run.yaml", "seeds": [0, 1], "set": {"data.tree": "trees/other.yaml"}})
    assert {r.config["data"]["tree"] for r in load_sweep(fixed).runs} == {str(other)}
    plain = _write(root / "sweeps" / "plain.yaml", {"base": "../configs/run.yaml", "seeds": [0]})
    assert load_sweep(plain).runs[0].config["data"]["tree"] == str(layout["tree"])


def test_saved_config_runs_from_anywhere(layout, monkeypatch) -> None:
    out = layout["root"] / "out"
    assert main(["run", str(layout["config"]), "--out", str(out), "--quiet"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["tree"] == str(layout["tree"])  # absolute in the results folder
    monkeypatch.chdir(layout["root"] / "configs" / "trees")  # somewhere else again
    again = load_config(out / "config.yaml")
    assert again == load_config(layout["config"])
    assert main(["check", str(out / "config.yaml")]) == 0


def _needs_no_external_data(path: Path) -> bool:
    """Every path field of the resolved ready config lies inside the repository."""
    cfg = load_config(path)
    paths = [cfg["data"].get(k) for k in ("root", "tree", "path")] + [cfg["model"].get("weights")]
    return all(p is None or Path(p).is_relative_to(REPO) for p in paths)


READY = sorted(SCENARIOS.glob("*.yaml"))
SELF_CONTAINED = [p for p in READY if _needs_no_external_data(p)]


def test_self_contained_ready_scenarios_found() -> None:
    names = {p.stem for p in SELF_CONTAINED}
    assert {"quickstart", "split_mnist", "agcd_mnist", "mlcil_mnist", "lifelong_permuted_mnist",
            "hle_digits"} <= names
    assert "mlcil_coco_b0_c10" not in names and "hle_cifar100" not in names


@pytest.mark.parametrize("path", SELF_CONTAINED, ids=lambda p: p.stem)
def test_ready_scenario_checks_from_another_directory(path: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(path)]) == 0


@pytest.mark.parametrize("name, sets", [
    ("split_mnist", ["data.max_train_per_class=20", "data.max_test_per_class=10"]),
    ("hle_digits", ["scenario.fine_tasks=2"]),
])
def test_ready_scenario_runs_from_another_directory(name: str, sets: list[str], tmp_path,
                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["run", str(SCENARIOS / f"{name}.yaml"), "--quiet", "--out", "res"]
    for s in [*sets, "eval.every=0", "output.plots=false"]:
        args += ["--set", s]
    assert main(args) == 0
    assert (tmp_path / "res" / "metrics.json").is_file()


def test_pretraining_data_paths_join_the_yaml_folder(tmp_path: Path, monkeypatch) -> None:
    """model.pretrain.data is validated when the model is built; its paths are fixed at load
    time, against the same folder as the rest of the file."""
    cfg_file = _write(tmp_path / "configs" / "vit.yaml", {
        "model": {"name": "vit", "pretrain": {"data": {"source": "canvas", "glyphs": "mnist",
                                                       "root": "glyphs", "tree": None}}}})
    monkeypatch.chdir(tmp_path)
    data = load_config(cfg_file)["model"]["pretrain"]["data"]
    assert data["root"] == str(tmp_path / "configs" / "glyphs") and data["tree"] is None
    data = load_config(cfg_file, overrides=["model.pretrain.data.root=g2"])["model"]["pretrain"]
    assert data["data"]["root"] == str(tmp_path / "g2")
