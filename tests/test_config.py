"""Config validation: every problem is one line naming the key path, expected and given."""

from __future__ import annotations

import pytest

from clenv.config.loader import load_config
from clenv.errors import ConfigError
from tests.conftest import SCENARIOS


def _err(cfg, **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_ready_configs_validate():
    for f in SCENARIOS.glob("*.yaml"):
        cfg = load_config(f)
        assert cfg["name"] == f.stem
        assert cfg["strategy"]["name"] in ("naive", "er", "joint", "plfms", "multilane", "agcd")


def test_defaults_are_filled(small_cfg):
    cfg = load_config(small_cfg)
    assert cfg["scenario"]["epochs"] == 1
    assert cfg["strategy"]["lr"] == 0.05
    assert cfg["budget"] == {"memory_size": None, "updates_per_sample": None}
    assert cfg["eval"]["batch_size"] == 1024


def test_unknown_key_names_path(small_cfg):
    small_cfg["scenario"]["n_taks"] = 3
    msg = _err(small_cfg)
    assert msg.startswith("scenario.n_taks: unknown key") and "n_tasks" in msg


def test_unknown_top_level_key(small_cfg):
    small_cfg["strategyy"] = {}
    assert _err(small_cfg).startswith("strategyy: unknown key")


def test_wrong_type(small_cfg):
    small_cfg["scenario"]["batch_size"] = "ten"
    msg = _err(small_cfg)
    assert msg == "scenario.batch_size: expected an integer, got 'ten'"


def test_bool_is_not_an_int(small_cfg):
    small_cfg["scenario"]["n_tasks"] = True
    assert "scenario.n_tasks: expected an integer" in _err(small_cfg)


def test_negative_size(small_cfg):
    small_cfg["budget"] = {"memory_size": -5}
    assert _err(small_cfg) == "budget.memory_size: expected a value >= 0, got -5"


def test_out_of_range_and_choices(small_cfg):
    small_cfg["scenario"]["boundaries"] = "sometimes"
    expected = "scenario.boundaries: expected one of exposed, hidden, got 'sometimes'"
    assert expected in _err(small_cfg)


def test_strategy_param_checked(small_cfg):
    small_cfg["strategy"]["lr"] = -1
    assert _err(small_cfg).startswith("strategy.lr: expected a value >= 0")
    small_cfg["strategy"] = {"name": "er", "mem": 3}
    assert _err(small_cfg).startswith("strategy.mem: unknown key")


def test_unknown_names(small_cfg):
    cfg = dict(small_cfg, strategy={"name": "nope"})
    assert _err(cfg).startswith("strategy.name: unknown strategy 'nope'")
    cfg = dict(small_cfg, model={"name": "vit9"})
    assert _err(cfg).startswith("model.name: unknown model 'vit9'")
    cfg = dict(small_cfg, data={"source": "imagenet"})
    assert _err(cfg).startswith("data.source: unknown data source 'imagenet'")
    cfg = dict(small_cfg, scenario={"generator": "weird"})
    assert _err(cfg).startswith("scenario.generator: unknown generator 'weird'")


def test_generator_specific_keys(small_cfg):
    small_cfg["scenario"]["blurry"] = 10
    assert _err(small_cfg).startswith("scenario.blurry: unknown key")
    small_cfg["scenario"]["generator"] = "blurry"
    assert load_config(small_cfg)["scenario"]["blurry"] == 10.0


def test_yaml_syntax_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario:\n  n_tasks: [1, 2\n")
    msg = _err(bad)
    assert "YAML syntax error" in msg and "line" in msg and str(bad) in msg


def test_missing_file(tmp_path):
    assert "file not found" in _err(tmp_path / "nope.yaml")


def test_set_overrides(small_cfg):
    cfg = load_config(small_cfg, overrides=["scenario.n_tasks=2", "strategy.lr=0.1",
                                             "model.hidden=[16, 16]", "eval.every=0"])
    assert cfg["scenario"]["n_tasks"] == 2 and cfg["strategy"]["lr"] == 0.1
    assert cfg["model"]["hidden"] == [16, 16] and cfg["eval"]["every"] == 0
    assert _err(small_cfg, overrides=["scenario.n_tasks"]).startswith("--set: expected")
    assert _err(small_cfg, overrides=["scenario.bogus=1"]).startswith("scenario.bogus")


def test_strategy_presets(small_cfg, tmp_path):
    cfg = load_config(small_cfg, strategy="naive")
    assert cfg["strategy"]["name"] == "naive"
    preset = tmp_path / "mine.yaml"
    preset.write_text("name: er\nlr: 0.2\nmemory_size: 7\n")
    cfg = load_config(small_cfg, strategy=str(preset))
    assert cfg["strategy"]["lr"] == 0.2 and cfg["strategy"]["memory_size"] == 7
    small_cfg["strategy"] = {"preset": "er", "lr": 0.3}
    cfg = load_config(small_cfg)
    assert cfg["strategy"]["name"] == "er" and cfg["strategy"]["lr"] == 0.3
    assert _err(small_cfg, strategy="no_such_preset").startswith("strategy.preset: no preset")


def test_seed_override_and_name(small_cfg):
    cfg = load_config(small_cfg, seed=7)
    assert cfg["seed"] == 7 and cfg["name"] == "small"


def test_joint_needs_boundaries(small_cfg):
    small_cfg["strategy"] = {"name": "joint"}
    small_cfg["scenario"]["boundaries"] = "hidden"
    assert "scenario.boundaries: exposed" in _err(small_cfg)


def test_user_strategy_import_error(small_cfg):
    small_cfg["strategy"] = {"name": "nonexistent_pkg.mod:Thing"}
    assert _err(small_cfg).startswith("strategy.name: cannot import")


def test_resolved_config_reloads(small_cfg, tmp_path):
    from clenv.config.loader import dump_config

    cfg = load_config(small_cfg)
    f = tmp_path / "resolved.yaml"
    f.write_text(dump_config(cfg))
    assert load_config(f) == {**cfg, "name": "small"}


def test_task_ids_need_exposed_boundaries(small_cfg):
    small_cfg["scenario"].update(task_ids=True, boundaries="hidden")
    assert _err(small_cfg).startswith("scenario.task_ids: task ids in obs contradict")


def test_iblurry_takes_n_tasks_only(small_cfg):
    small_cfg["scenario"].update(generator="iblurry", classes_per_task=[2, 2, 2])
    assert _err(small_cfg).startswith("scenario.classes_per_task: unknown key")


def test_joint_reference_only_for_task_streams(small_cfg):
    small_cfg["eval"]["reference"] = "joint"
    small_cfg["scenario"] = {"generator": "lifelong",
                             "segments": [{"type": "classes", "classes": [0], "length": 5}]}
    assert _err(small_cfg).startswith("eval.reference: the joint reference")
