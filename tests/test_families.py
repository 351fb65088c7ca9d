"""The Family records (docs/design.md, "Families"): chosen once per run, one per ready
scenario family, the evaluators' explicit arguments and the one refusal of a pairing."""

from __future__ import annotations

import numpy as np
import pytest

from clenv.config.loader import load_config
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.evaluation.base import batched_scores
from clenv.evaluation.hierarchical import HierarchyEvaluator
from clenv.evaluation.multi_label import MultiLabelEvaluator
from clenv.families.registry import FAMILIES, by_name, choose
from clenv.strategies.base import STREAM_FAMILIES, Strategy
from clenv.strategies.spec import StrategySpec
from tests.conftest import SCENARIOS

EXPECTED = {"quickstart": "single_label", "iblurry_digits": "single_label",
            "lifelong_recurring": "single_label", "hle_digits": "hierarchical",
            "hle_dual_label": "hierarchical", "mlcil_canvas": "multi_label",
            "agcd_synthetic": "discovery"}


@pytest.mark.parametrize("stem, name", sorted(EXPECTED.items()))
def test_a_ready_scenario_gets_its_family(stem, name):
    cfg = load_config(SCENARIOS / f"{stem}.yaml")
    if cfg["data"]["source"] == "canvas":
        cfg["data"].update(train_size=60, test_size=20)
    family, env = choose(cfg, load_pool(cfg["data"]))
    assert family.name == name and family is by_name(name)
    assert family.loop == ("query_rounds" if name == "discovery" else "stream")


def test_family_names_are_unique_and_the_supervised_ones_have_codecs():
    names = [f.name for f in FAMILIES]
    assert len(set(names)) == len(names)
    assert set(STREAM_FAMILIES) <= set(names)


def test_the_strategy_base_refuses_an_undeclared_family_in_one_line():
    class SingleOnly(Strategy):
        families = ("single_label",)

    spec = StrategySpec(input_shape=(4,), image=False, n_classes=3, batch_size=2,
                        stream_length=10, n_tasks=1, levels=2, level_sizes=[2, 3])
    assert spec.family == "hierarchical"
    with pytest.raises(ConfigError) as exc:
        SingleOnly().setup(spec)
    assert "\n" not in str(exc.value) and "not hierarchical" in str(exc.value)


class _Const:
    def __init__(self, heads):
        self.heads, self.calls = heads, 0

    def predict(self, obs):
        self.calls += 1
        n = len(obs["x"])
        out = {lv: np.full((n, c), float(lv), np.float32) for lv, c in enumerate(self.heads)}
        return out if len(self.heads) > 1 else out[0]


def test_batched_scores_splits_rows_and_keeps_every_head():
    s = _Const([2, 3])
    out = batched_scores(s, lambda rows: np.zeros((len(rows), 1)), np.arange(7), [2, 3], 3)
    assert s.calls == 3 and [o.shape for o in out] == [(7, 2), (7, 3)]
    assert (out[1] == 1).all()


def _pool_stream(stem):
    cfg = load_config(SCENARIOS / f"{stem}.yaml")
    if cfg["data"]["source"] == "canvas":
        cfg["data"].update(train_size=60, test_size=20)
    _, env = choose(cfg, load_pool(cfg["data"]))
    return env.pool, env.stream


def test_evaluators_refuse_what_they_cannot_count():
    """Before, the hierarchy evaluator ignored fwt_masks and columns and the multi-label one
    swallowed every keyword argument."""
    pool, stream = _pool_stream("hle_digits")
    ev = HierarchyEvaluator(pool, stream, 64)
    seen = np.ones(ev.U, dtype=bool)
    with pytest.raises(ValueError, match="no FWT baseline"):
        ev.evaluate(_Const(ev.sizes), seen, fwt_masks=np.ones((1, 1), bool))
    all_cols, _ = ev.evaluate(_Const(ev.sizes), seen, task_aware=False)
    col0, _ = ev.evaluate(_Const(ev.sizes), seen, task_aware=False, columns=[0])
    in0 = ev.col_of_unit == 0
    assert sum(col0["total"]) > 0 and not np.asarray(col0["total"])[~in0].any()
    assert np.asarray(col0["total"])[in0].tolist() == np.asarray(all_cols["total"])[in0].tolist()
    pool, stream = _pool_stream("mlcil_canvas")
    ml = MultiLabelEvaluator(pool, stream, 64)
    seen = np.ones(pool.n_classes, dtype=bool)
    for bad in ({"task_aware": True}, {"columns": [0]}, {"fwt_masks": np.ones((1, 1), bool)}):
        with pytest.raises(ValueError):
            ml.evaluate(_Const([pool.n_classes]), seen, **bad)
