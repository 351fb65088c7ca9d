"""docs/strategies.md's example, extracted from the page and run exactly as printed."""

from __future__ import annotations

import json
import re
import sys

import yaml

from clenv.cli import main
from tests.conftest import REPO, SCENARIOS

PAGE = REPO / "docs" / "strategies.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_example_strategy_runs_as_printed(tmp_path, monkeypatch):
    (code,) = _blocks("python")
    assert 20 <= len(code.splitlines()) <= 50
    (tmp_path / "my_strategies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_strategies", raising=False)
    section = yaml.safe_load(_blocks("yaml")[0])
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(section))
    out = tmp_path / "r"
    assert main(["check", str(SCENARIOS / "quickstart.yaml"), "--strategy",
                 str(tmp_path / "my.yaml")]) == 0
    assert main(["run", str(SCENARIOS / "quickstart.yaml"), "--strategy",
                 str(tmp_path / "my.yaml"), "--out", str(out), "--quiet",
                 "--set", "data.train_per_class=50", "--set", "output.plots=false"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["final_accuracy"] > 0.1
    # the memory rule: at most per_class samples of each of the 10 classes
    assert 0 < m["budget"]["buffer_samples"] <= 10 * section["strategy"]["per_class"]
    assert m["budget"]["grad_steps"] > 0
