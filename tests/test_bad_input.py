"""Bad input (docs/reliability.md): every config-level error is one line, exit 2, raised by
`clenv check` as by `clenv run`, before `run` writes any file."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from clenv.cli import main
from clenv.results import LOCK_NAME
from tests.conftest import REPO

KILLER = "tests.checkpoint_killer"


def _write(tmp: Path, cfg: dict, name: str = "c.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _refused(capsys, argv: list[str], *parts: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    for p in parts:
        assert p in err, err
    return err


def _set(cfg: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    *path, last = dotted.split(".")
    for k in path:
        node = node.setdefault(k, {})
    node[last] = value
    return cfg


CASES = [
    ("model.hidden", [-7], "model.hidden[0]"),
    ("data.separation", ["fast"], "data.separation"),
    ("strategy.lr", float("nan"), "strategy.lr"),
    ("strategy.lr", float("inf"), "strategy.lr"),
    ("data.noise", float("nan"), "data.noise"),
    ("budget.updates_per_sample", float("inf"), "budget.updates_per_sample"),
    ("seed", 2**63, "seed"),
    ("seed", -1, "seed"),
    ("scenario.seed", 2**64, "scenario.seed"),
    ("data.seed", -3, "data.seed"),
    ("data.branching", [1000, 1000], "data.branching"),
]


@pytest.mark.parametrize(("key", "value", "named"), CASES)
def test_check_and_run_refuse_the_same_config_errors(small_cfg, tmp_path, capsys, key, value,
                                                     named):
    path = _write(tmp_path, _set(small_cfg, key, value))
    out = tmp_path / "out"
    _refused(capsys, ["check", str(path)], named)
    _refused(capsys, ["run", str(path), "--out", str(out), "--quiet"], named)
    assert not out.exists()


def test_strategy_needs_are_checked_on_the_config(small_cfg, tmp_path, capsys):
    cfg = _set(small_cfg, "strategy", {"name": "multilane"})
    cfg["scenario"]["boundaries"] = "exposed"
    _refused(capsys, ["check", str(_write(tmp_path, cfg))], "model.name", "ViT")
    cfg = _set(small_cfg, "strategy", {"preset": "er_temporary_forgetting"})
    cfg["strategy"]["forgetting"] = {"schedule": "temporary", "every": 5, "window": 50,
                                     "per": "task", "target": "head"}
    cfg["scenario"]["boundaries"] = "hidden"
    _refused(capsys, ["check", str(_write(tmp_path, cfg))], "strategy.forgetting.per")


def test_checkpoint_refusal_comes_before_any_file(small_cfg, tmp_path, capsys):
    """A strategy without the state protocol and output.checkpoint_every: `check` refuses it,
    and `run` into an existing folder leaves that folder as it was (config.yaml untouched,
    no run.json)."""
    cfg = _set(small_cfg, "strategy", {"name": f"{KILLER}:Stateless"})
    cfg["output"] = {"plots": False, "checkpoint_every": 40}
    path = _write(tmp_path, cfg)
    _refused(capsys, ["check", str(path)], "output.checkpoint_every",
             "does not support checkpoints")
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("earlier: run\n")
    _refused(capsys, ["run", str(path), "--out", str(out), "--quiet"],
             "output.checkpoint_every")
    assert (out / "config.yaml").read_text() == "earlier: run\n"
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) == ["config.yaml"]


def test_cuda_without_a_gpu_is_refused_by_check(small_cfg, tmp_path, capsys):
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = "cuda" if n == 0 else f"cuda:{n}"
    path = _write(tmp_path, _set(small_cfg, "device", device))
    _refused(capsys, ["check", str(path)], "device", "visible")
    path = _write(tmp_path, _set(small_cfg, "device", "cuda:x"))
    _refused(capsys, ["check", str(path)], "device")


def test_check_on_cpu_imports_no_torch(small_cfg, tmp_path):
    path = _write(tmp_path, small_cfg)
    code = (f"import sys; from clenv.cli import main; rc = main(['check', {str(path)!r}]); "
            "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stdout + r.stderr


def test_long_values_are_cut_in_messages(small_cfg, tmp_path, capsys):
    cfg = _set(small_cfg, "strategy", {"name": "x" * 5000})
    err = _refused(capsys, ["check", str(_write(tmp_path, cfg))], "strategy.name", "...")
    assert len(err) < 400
    cfg = _set(small_cfg, "model.hidden", "y" * 5000)
    err = _refused(capsys, ["check", str(_write(tmp_path, cfg))], "model.hidden")
    assert len(err) < 400


def test_empty_config_is_refused(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")
    _refused(capsys, ["check", str(path)], "config is empty", "empty.yaml")
    _refused(capsys, ["run", str(path), "--out", str(tmp_path / "o")], "config is empty")
    assert not (tmp_path / "o").exists()


def test_non_utf8_config_and_sweep_base_are_one_line(small_cfg, tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(yaml.safe_dump(small_cfg).encode() + "name: caf\xe9\n".encode("latin-1"))
    _refused(capsys, ["check", str(bad)], "latin1.yaml", "UTF-8")
    sweep = _write(tmp_path, {"base": "latin1.yaml", "seeds": [0]}, "s.yaml")
    _refused(capsys, ["sweep", str(sweep), "--dry-run"], "base", "latin1.yaml", "UTF-8")
    (tmp_path / "s2.yaml").write_bytes(b"seeds: [0]\nname: \xff\xfe\n")
    _refused(capsys, ["sweep", str(tmp_path / "s2.yaml"), "--dry-run"], "s2.yaml", "UTF-8")


def _tensors_cfg(small_cfg: dict, path: Path) -> dict:
    cfg = copy.deepcopy(small_cfg)
    cfg["data"] = {"source": "tensors", "path": str(path)}
    return cfg


def test_tensors_train_mask_without_test_samples_is_refused(small_cfg, tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 20)
    f = tmp_path / "all_train.npz"
    np.savez(f, x=rng.normal(size=(120, 8)).astype(np.float32), y=y,
             train=np.ones(120, dtype=bool))
    path = _write(tmp_path, _tensors_cfg(small_cfg, f))
    _refused(capsys, ["check", str(path)], "data.path", "no test samples")
    _refused(capsys, ["run", str(path), "--out", str(tmp_path / "o"), "--quiet"],
             "no test samples")
    assert not (tmp_path / "o").exists()


def test_tensors_with_a_huge_label_is_refused_fast(small_cfg, tmp_path):
    """One label of 1e9 is refused before a billion class names are built (in a subprocess
    under RLIMIT_AS = 1 GiB, so that a regression fails instead of exhausting memory)."""
    import resource
    import time

    f = tmp_path / "huge.npz"
    np.savez(f, x=np.zeros((2, 4), dtype=np.float32), y=np.array([0, 10**9]))
    path = _write(tmp_path, _tensors_cfg(small_cfg, f))

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "clenv.cli", "check", str(path)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=60, preexec_fn=cap)
    assert r.returncode == 2, r.stderr[-500:]
    err = r.stderr.strip()
    assert "\n" not in err and "100000 classes" in err, err
    assert time.perf_counter() - t0 < 10


def test_step_before_reset_says_to_call_reset():
    from clenv.config.loader import load_config
    from clenv.data.registry import load_pool
    from clenv.env import ContinualEnv
    from clenv.scenarios.registry import build_stream

    cfg = load_config(str(REPO / "scenarios" / "quickstart.yaml"))
    pool = load_pool(cfg["data"])
    env = ContinualEnv(pool, lambda s: build_stream(pool, {**cfg["scenario"], "seed": s},
                                                    "scenario"),
                       seed=0, batch_size=10)
    with pytest.raises(RuntimeError, match=r"before reset\(\).*call reset\(\)"):
        env.step(np.zeros(10, dtype=np.int64))
    env.reset(seed=0)
    env.step(np.zeros(10, dtype=np.int64))  # fine after reset


def test_setup_refusal_comes_before_any_file(small_cfg, tmp_path, capsys):
    """A forgetting target naming no module of the model is found by the strategy's setup:
    `run` into an existing folder refuses it before replacing any file there."""
    cfg = _set(small_cfg, "strategy", {"name": "er", "forgetting": {
        "schedule": "active", "every": 100, "target": "no_such_layer"}})
    path = _write(tmp_path, cfg)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("earlier: run\n")
    _refused(capsys, ["run", str(path), "--out", str(out), "--quiet"],
             "strategy.forgetting.target", "no_such_layer")
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) == ["config.yaml"]
    assert (out / "config.yaml").read_text() == "earlier: run\n"
