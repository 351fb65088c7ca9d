"""The README's Python example and its two Quickstart commands stay true."""

from __future__ import annotations

import os
import re

from tests.conftest import REPO


def _blocks(lang: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_python_example_runs(capsys):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        (code,) = _blocks("python")
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "new classes:" in out and "online accuracy:" in out


def test_quickstart_commands_match_ci():
    bash = _blocks("bash")
    install_run, install_test = bash[0].strip(), bash[1].strip()
    assert install_run.endswith("clenv run scenarios/quickstart.yaml")
    assert '".[all]"' in install_run
    assert '".[all,dev]"' in install_test
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == install_test
