"""`clenv schema`: the typed models (clenv.config.typed) accept every ready scenario and preset,
forbid unknown keys at every level, discriminate scenarios on generator and lifelong segments
on type, and export a JSON Schema; `clenv check` does not import them (nor torch)."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from clenv.cli import main
from clenv.config.typed import config_model
from tests.conftest import REPO, SCENARIOS


def _preset_config(path):
    d = yaml.safe_load(path.read_text())
    return {"scenario": {"generator": "disjoint"}, "strategy": d.get("strategy", d)}


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml"))
                         + sorted((REPO / "strategies").glob("*.yaml")), ids=lambda p: p.stem)
def test_ready_files_validate(path):
    d = yaml.safe_load(path.read_text()) if path.parent == SCENARIOS else _preset_config(path)
    config_model().model_validate(d)


@pytest.mark.parametrize("bad, where", [
    ({"scenario": {"generator": "disjoint", "n_taks": 5}}, "n_taks"),
    ({"scenario": {"generator": "disjoint"}, "evall": {}}, "evall"),
    ({"scenario": {"generator": "nope"}}, "generator"),
    ({"scenario": {"generator": "disjoint"}, "eval": {"threshold": 2}}, "threshold"),
    ({"scenario": {"generator": "disjoint"}, "output": {"loggers": ["csv"], "plot": 1}}, "plot"),
    ({"scenario": {"generator": "lifelong", "segments": [{"type": "drift", "length": 5,
                                                           "classes": [1]}]}}, "classes"),
    ({"scenario": {"generator": "disjoint"}, "strategy": {"name": "er", "memory_sise": 1}},
     "memory_sise"),
])
def test_unknown_keys_and_values_are_refused(bad, where):
    with pytest.raises(ValidationError) as exc:
        config_model().model_validate(bad)
    assert where in str(exc.value)


def test_a_preset_file_with_keys_beside_its_section_is_refused(tmp_path):
    """strategies/agcd.yaml held proj_hidden beside its strategy section, where the loader
    dropped it without a word (the typed model found it)."""
    from clenv.config.loader import load_config
    from clenv.errors import ConfigError

    bad = tmp_path / "p.yaml"
    bad.write_text("strategy: {name: er}\nlr: 0.1\n")
    with pytest.raises(ConfigError, match="holds lr beside its strategy section"):
        load_config({"scenario": {"generator": "disjoint"}, "strategy": {"preset": str(bad)}})
    cfg = load_config(SCENARIOS / "agcd_digits.yaml")
    assert cfg["strategy"]["proj_hidden"] == 256


def test_clenv_schema_prints_a_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "clenv config" and schema["additionalProperties"] is False
    scenario = schema["properties"]["scenario"]
    assert scenario["discriminator"]["propertyName"] == "generator"
    assert set(scenario["discriminator"]["mapping"]) >= {"disjoint", "lifelong", "hle", "agcd"}
    text = json.dumps(schema)
    assert '"propertyName": "type"' in text  # lifelong segments


# -- the typed model on the validation path (clenv.config.typed.check_config) ----------------
@pytest.mark.parametrize("path, value, message", [
    (("eval", "threshold"), 2, "eval.threshold: expected a value <= 1, got 2"),
    (("scenario", "boundaries"), "open",
     "scenario.boundaries: expected one of exposed, hidden, got 'open'"),
    (("scenario", "n_taks"), 5, "scenario.n_taks: unknown key; expected one of: "),
    (("strategy", "memory_size"), "many", "strategy.memory_size: expected an integer, "
                                          "got 'many'"),
    (("model", "hidden"), [32, "x"], "model.hidden[1]: expected an integer, got 'x'"),
    (("output", "plots"), [1], "output.plots: expected true/false, got [1]"),
])
def test_a_validation_error_is_one_config_error_line(small_cfg, path, value, message):
    """A resolved config the typed model refuses: one ConfigError line naming the key path,
    what was expected and what was given."""
    from clenv.config.loader import load_config
    from clenv.config.typed import check_config
    from clenv.errors import ConfigError

    cfg = load_config(small_cfg)
    cfg[path[0]][path[1]] = value
    with pytest.raises(ConfigError) as exc:
        check_config(cfg)
    text = str(exc.value)
    assert text.startswith(message) and "\n" not in text, text


def test_a_lifelong_segment_error_names_the_segment_not_the_union_tag():
    """pydantic puts a discriminated union's tag in its error location (segments.1.drift.to);
    the key path leaves it out."""
    from clenv.config.loader import load_config
    from clenv.config.typed import check_config
    from clenv.errors import ConfigError

    cfg = load_config(SCENARIOS / "lifelong_recurring.yaml")
    seg = next(i for i, s in enumerate(cfg["scenario"]["segments"]) if s["type"] == "drift")
    cfg["scenario"]["segments"][seg]["width"] = "wide"
    with pytest.raises(ConfigError, match=rf"^scenario\.segments\[{seg}\]\.width: expected a "
                                          r"number, got 'wide'$"):
        check_config(cfg)
    del cfg["scenario"]["segments"][seg]["type"]
    with pytest.raises(ConfigError, match=rf"^scenario\.segments\[{seg}\]\.type: missing"):
        check_config(cfg)


@pytest.mark.parametrize("section, message", [
    ({"scenario": {"generator": "plasticity", "tasks": "random_labels", "task_length": 10,
                   "samples_per_task": 20}}, "scenario.samples_per_task: a task serves"),
    ({"scenario": {"generator": "disjoint", "task_ids": True, "boundaries": "hidden"}},
     "scenario.task_ids: task ids in obs contradict hidden boundaries"),
    ({"scenario": {"generator": "lifelong", "segments": [
        {"type": "classes", "classes": [0], "length": 5, "name": "a"},
        {"type": "classes", "classes": [1], "length": 5, "name": "a"}]}},
     "scenario.segments[1].name: duplicate segment name 'a'"),
    ({"scenario": {"generator": "agcd", "old_classes": [0, 1], "n_old": 2}},
     "scenario.n_old: given together with old_classes"),
    ({"scenario": {"generator": "disjoint"}, "strategy": {"name": "er", "nesterov": True}},
     "strategy.nesterov: Nesterov momentum needs a momentum"),
    ({"scenario": {"generator": "agcd"},
      "strategy": {"name": "agcd", "teacher_temp": 0.5, "student_temp": 0.1}},
     "strategy.teacher_temp: the teacher must be sharper than the student"),
    ({"scenario": {"generator": "disjoint"},
      "data": {"source": "sine", "amplitude": [2.0, 1.0]}}, "data.amplitude: expected [low, "),
])
def test_cross_field_rules_are_validators_of_the_typed_model(section, message):
    """The rules declared beside a generator's, strategy's or source's fields (their
    ``check``) run inside the typed model, on a raw file as on a resolved config."""
    from clenv.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        config_model().model_validate(section)
    assert str(exc.value).startswith(message), str(exc.value)


def test_a_user_strategy_is_typed_from_its_own_fields(small_cfg):
    """A module:Class strategy with a ``fields`` dict of clenv Fields: its typed model is built
    from them (unknown keys and bad values refused, defaults kept)."""
    from clenv.config.loader import load_config
    from clenv.config.typed import check_config, resolved_model
    from clenv.errors import ConfigError

    small_cfg["strategy"] = {"name": "tests.user_strategy:MajorityClass", "smoothing": 0.5}
    cfg = load_config(small_cfg)
    assert cfg["strategy"]["smoothing"] == 0.5
    assert "smoothing" in resolved_model(cfg).model_fields["strategy"].annotation.__args__[0] \
        .model_fields
    cfg["strategy"]["smoothing"] = -1.0
    with pytest.raises(ConfigError, match=r"^strategy\.smoothing: expected a value >= 0, got"):
        check_config(cfg)
    small_cfg["strategy"]["smoothin"] = 1
    with pytest.raises(ConfigError, match=r"^strategy\.smoothin: unknown key"):
        load_config(small_cfg)


def test_check_builds_only_the_models_its_config_needs():
    """load_config builds the typed models of its own generator, source, strategy and model
    (cached), never the union of all of them that `clenv schema` exports; no torch."""
    import subprocess
    import sys

    code = ("import sys; from clenv.config.loader import load_config; "
            "from clenv.config import typed; load_config(sys.argv[1]); load_config(sys.argv[1]); "
            "assert typed.config_model.cache_info().currsize == 0; "
            "assert typed.scenario_model.cache_info().currsize == 1; "
            "assert typed._narrow.cache_info().hits == 1; "
            "assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code, str(SCENARIOS / "quickstart.yaml")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
