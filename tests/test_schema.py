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
