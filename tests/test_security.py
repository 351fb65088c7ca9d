"""Security (docs/reliability.md): a crafted checkpoint cannot run code, a config calls only
strategies, and a tiny config cannot cause unbounded work."""

from __future__ import annotations

import copy
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clenv.cli import main
from tests.conftest import REPO


class Payload:
    """Unpickling this creates ``path`` (it stands for any code a pickle can run)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _sweep_file(tmp: Path, small_cfg: dict) -> Path:
    base = copy.deepcopy(small_cfg)
    base["output"] = {"plots": False, "checkpoint_every": 30}
    base.pop("strategy")
    sweep = {"name": "crafted", "base": base, "workers": 1, "seeds": [0],
             "strategies": [{"name": "tests.checkpoint_killer:KillingNaive"}]}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> tuple[Path, Path, str]:
    """A sweep file and a run folder of its only run, crashed after a checkpoint (no
    metrics.json): a real checkpoint.pt to craft from."""
    from clenv.runner import Run
    from clenv.sweep.spec import load_sweep

    small = {
        "name": "small", "seed": 0, "device": "cpu",
        "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 3, "batch_size": 10},
        "data": {"source": "synthetic", "seed": 0, "branching": [6], "dim": 8,
                 "separation": [1.5], "noise": 1.0, "train_per_class": 60,
                 "test_per_class": 20},
        "strategy": {"name": "naive"}, "model": {"name": "mlp", "hidden": [16]},
        "eval": {"every": 50}, "output": {"plots": False}}
    tmp = tmp_path_factory.mktemp("crafted")
    sf = _sweep_file(tmp, small)
    run = load_sweep(sf).runs[0]
    folder = tmp / "run"
    os.environ["CLENV_RAISE_LEARN"] = "12"
    try:
        with pytest.raises(RuntimeError):
            Run(run.config).execute(folder)
    finally:
        del os.environ["CLENV_RAISE_LEARN"]
    assert (folder / "checkpoint.pt").is_file() and not (folder / "metrics.json").exists()
    return sf, folder, run.id


def _craft(src: Path, dst: Path, where: str, marker: Path) -> None:
    """Copy the crashed folder to ``dst`` with a payload in its checkpoint: at the top level,
    as an object inside the strategy's state, or as pickled bytes inside it (what the old
    attribute pickle read)."""
    import torch

    shutil.copytree(src, dst)
    data = torch.load(dst / "checkpoint.pt", weights_only=True)  # an honest checkpoint
    if where == "top":
        data["extra"] = Payload(marker)
    elif where == "strategy_object":
        data["strategy"]["extra"] = Payload(marker)
    else:
        data["strategy"]["attributes"] = pickle.dumps({"extra": Payload(marker)})
    torch.save(data, dst / "checkpoint.pt")


WHERE = ["top", "strategy_object", "strategy_pickle"]


@pytest.mark.parametrize("where", WHERE)
def test_crafted_checkpoint_is_refused_by_resume(crashed, tmp_path, capsys, where):
    _, folder, _ = crashed
    marker = tmp_path / "pwned"
    _craft(folder, tmp_path / "run", where, marker)
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "checkpoint" in err, err
    assert not marker.exists()


@pytest.mark.parametrize("where", WHERE)
def test_crafted_checkpoint_is_refused_by_sweep(crashed, tmp_path, capsys, where):
    sf, folder, run_id = crashed
    marker = tmp_path / "pwned"
    out = tmp_path / "sweep"
    _craft(folder, out / "runs" / run_id, where, marker)
    assert main(["sweep", str(sf), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "checkpoint" in err, err
    assert not marker.exists()
    assert not (out / "sweep.json").exists()  # refused before the sweep wrote anything


def test_honest_checkpoint_still_resumes(crashed, tmp_path):
    from clenv.checkpoint import load_checkpoint

    _, folder, _ = crashed
    shutil.copytree(folder, tmp_path / "run")
    data = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # weights_only, checked
    assert "attributes" not in data["strategy"]
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "metrics.json").is_file()


# -- a config calls only strategies -------------------------------------------------------------
@pytest.mark.parametrize("target", ["os:system", "subprocess:Popen", "pathlib:Path",
                                    "tests.user_strategy:NOT_THERE"])
def test_strategy_name_must_be_a_strategy_class(tmp_path, capsys, target):
    """``module:attr`` that is not a clenv Strategy subclass is refused before it is called
    (os.system would run the command it is given)."""
    marker = tmp_path / "ran"
    cfg = {"name": "x", "strategy": {"name": target, "command": f"touch {marker}"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for argv in (["check", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "strategy.name" in err, err
        assert not marker.exists()
    assert not (tmp_path / "o").exists()


def test_make_strategy_refuses_a_callable_that_is_not_a_strategy(tmp_path):
    from clenv.errors import ConfigError
    from clenv.runner import make_strategy

    with pytest.raises(ConfigError, match="strategy.name.*not a clenv Strategy"):
        make_strategy({"name": "os:system", "command": "true"})


# -- bounded work -------------------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    """About 360 bytes of YAML whose ``name`` expands to 9**9 scalars through nested aliases
    (any code that walks the value, even to print it, expands it)."""
    parts = ["&a0 [x,x,x,x,x,x,x,x,x]"]
    parts += [f"&a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "name: [" + ", ".join(parts) + "]\n"


def _limited(args: list[str], gib: float = 1.0) -> subprocess.CompletedProcess:
    """clenv in a subprocess under RLIMIT_AS."""
    limit = int(gib * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "clenv.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=cap)


def test_alias_bomb_is_refused_fast_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert len(path.read_bytes()) < 420
    t0 = time.perf_counter()
    r = _limited(["check", str(path)])
    took = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert "\n" not in err and "100000" in err.replace(",", "") and "alias" in err, err
    assert took < 5, took


def test_large_config_is_refused_by_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("items: [" + ",".join(["1234567"] * 3_200_000) + "]\n")  # ~25 MB
    t0 = time.perf_counter()
    assert main(["check", str(path)]) == 2
    assert time.perf_counter() - t0 < 2


def test_sweep_file_and_its_base_are_bounded(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    assert main(["sweep", str(bomb), "--dry-run"]) == 2
    assert "alias" in capsys.readouterr().err
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": "bomb.yaml", "seeds": [0]}))
    assert main(["sweep", str(sweep), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "base" in err and "alias" in err, err
