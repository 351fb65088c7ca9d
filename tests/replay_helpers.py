"""Shared pieces of the A-GEM, ER-ACE and DER/DER++ tests: a strategy on a tiny spec, its
model copied for Avalanche, the small multi-label and hierarchical run configs, and killing
variants for the crash-and-resume checks."""

from __future__ import annotations

import copy

import torch

from clenv.strategies.agem import AGEM
from clenv.strategies.der import DER, DERPlusPlus
from clenv.strategies.er_ace import ERACE
from clenv.strategies.spec import StrategySpec
from tests.checkpoint_killer import _Killing

TINY = {"name": "mlp", "hidden": [8]}


def tiny_spec(**kw) -> StrategySpec:
    base = dict(input_shape=(4,), image=False, n_classes=5, batch_size=4, stream_length=100,
                n_tasks=2, model=TINY, seed=0)
    return StrategySpec(**{**base, **kw})


def ready(cls, spec: StrategySpec | None = None, all_seen: bool = True, **params):
    """``cls(**params)`` set up on ``spec`` (default: the tiny spec); every class seen."""
    torch.set_num_threads(1)
    s = cls(**{"optimizer": "sgd", "lr": 1.0, **params})
    s.setup(spec or tiny_spec())
    if all_seen:
        s.seen[:] = True
    return s


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def twin(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A copy of ``model`` (same weights) with SGD at rate 1 (a step subtracts the gradient)."""
    other = copy.deepcopy(model)
    return other, torch.optim.SGD(other.parameters(), lr=1.0)


def delta(before: torch.nn.Module, after: torch.nn.Module) -> torch.Tensor:
    """after - before, flattened (minus the gradient after one SGD step at rate 1)."""
    return torch.cat([(a - b).reshape(-1) for a, b in zip(after.parameters(),
                                                           before.parameters(), strict=True)])


ML_DATA = {"source": "canvas", "seed": 0, "canvas": 16, "glyph_scale": 1, "objects": [1, 3],
           "n_classes": 6, "train_size": 120, "test_size": 40}
HIER_DATA = {"source": "synthetic", "depth": 2, "branching": [3, 2], "dim": 8,
             "train_per_class": 20, "test_per_class": 5}


def family_config(family: str, strategy: dict) -> dict:
    """A run config of a tiny multi-label (mlcil) or hierarchical (hle) stream."""
    if family == "multi_label":
        scenario = {"generator": "mlcil", "seed": 0, "increment": 2, "batch_size": 16}
        data, model = ML_DATA, {"name": "mlp", "hidden": [16]}
    else:
        scenario = {"generator": "hle", "mode": "dual_label", "seed": 0, "batch_size": 10}
        data, model = HIER_DATA, {"name": "mlp", "hidden": [16]}
    return {"name": "t", "seed": 0, "scenario": scenario, "data": data, "strategy": strategy,
            "model": model, "eval": {"every": 0}, "output": {"plots": False},
            "budget": {"memory_size": 30}}


class KillingAGEM(_Killing, AGEM):
    """A-GEM that dies on request (tests/checkpoint_killer.py)."""


class KillingERACE(_Killing, ERACE):
    """ER-ACE that dies on request."""


class KillingDER(_Killing, DER):
    """DER that dies on request."""


class KillingDERPlusPlus(_Killing, DERPlusPlus):
    """DER++ that dies on request."""


def crash_and_resume(cfg: dict, tmp_path, monkeypatch, at: int = 23) -> None:
    """Run ``cfg`` (checkpointing) to the end; run it again crashing at learn call ``at``,
    resume, and check the metrics are byte-identical but for the wall times."""
    import re

    import pytest

    from clenv.config.loader import load_config
    from clenv.runner import Run

    def text(path):
        return re.sub(r'\n "wall_time": \{[^}]*\}', "", (path / "metrics.json").read_text())

    cfg = load_config({**cfg, "output": {"plots": False, "checkpoint_every": 30}})
    Run(cfg).execute(tmp_path / "ref")
    monkeypatch.setenv("CLENV_RAISE_LEARN", str(at))
    with pytest.raises(RuntimeError, match=f"learn call {at}"):
        Run(cfg).execute(tmp_path / "crashed")
    assert (tmp_path / "crashed" / "checkpoint.pt").is_file()
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(tmp_path / "crashed", resume=True)
    assert text(tmp_path / "crashed") == text(tmp_path / "ref")
