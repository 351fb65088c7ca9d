"""CLI conventions: --version, python -m clenv, exit codes in --help, progress bars only on a
terminal and without --quiet (runs: samples with an ETA; sweeps: runs done with an ETA, and each
run's own bar only when runs go one at a time), and clenv sweep --quiet."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import clenv
from clenv import progress
from clenv.cli import main
from tests.conftest import REPO, SCENARIOS

SMALL = ["--set", "data.train_per_class=60", "--set", "data.test_per_class=10",
         "--set", "output.plots=false", "--set", "eval.every=0"]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"clenv {clenv.__version__}"


def test_python_dash_m_clenv() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "clenv", "--version"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"clenv {clenv.__version__}"
    bad = subprocess.run([sys.executable, "-m", "clenv", "check", "no_such.yaml"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: config: file not found")


def test_help_lists_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code, what in (("0", "success"), ("1", "environment failure"), ("2", "user error"),
                       ("130", "interrupted")):
        assert re.search(rf"^\s+{code}\s+{what}", text, flags=re.M), (code, text)


def _eager_bars(monkeypatch) -> None:
    """Bars drawn at once and at every update (no delay, no minimum interval)."""
    make = progress.progress_bar

    def eager(*args, **kwargs):
        bar = make(*args, **kwargs)
        bar.mininterval = bar.miniters = 0
        return bar

    monkeypatch.setattr(progress, "BAR_DELAY_S", 0.0)
    monkeypatch.setattr(progress, "progress_bar", eager)


def _run_with_stderr(monkeypatch, tmp_path: Path, stderr, *extra: str) -> str:
    monkeypatch.setattr(sys, "stderr", stderr)
    _eager_bars(monkeypatch)
    assert main(["run", str(SCENARIOS / "quickstart.yaml"), "--out", str(tmp_path / "r"),
                 *SMALL, *extra]) == 0
    return stderr.getvalue()


def test_run_bar_on_a_terminal(monkeypatch, tmp_path: Path) -> None:
    err = _run_with_stderr(monkeypatch, tmp_path, Terminal())
    assert "quickstart" in err and "samples/s" in err
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", err), err  # elapsed<remaining: the ETA


def test_no_run_bar_when_quiet_or_not_a_terminal(monkeypatch, tmp_path: Path) -> None:
    assert _run_with_stderr(monkeypatch, tmp_path, Terminal(), "--quiet") == ""
    assert _run_with_stderr(monkeypatch, tmp_path, io.StringIO()) == ""


def test_bar_waits_for_slow_runs(monkeypatch) -> None:
    """With the default delay a bar prints nothing for work that ends quickly."""
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    bar = progress.progress_bar(10, "samples", "quick")
    bar.update(10)
    bar.close()
    assert progress.BAR_DELAY_S >= 1 and err.getvalue() == ""


# --------------------------------------------------------------------------- sweeps


class InlinePool:
    """A ProcessPoolExecutor stand-in that runs each job at submit (same calls, no spawn)."""

    def __init__(self, max_workers: int, mp_context=None) -> None:
        self.max_workers = max_workers

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch) -> SimpleNamespace:
    """A two-run sweep file (``path``) whose runs go in-process; ``calls`` records whether
    each run was asked to draw its own bar."""
    import clenv.sweep.backends as backends

    calls: list[bool] = []

    def fake_execute(cfg, run_dir, run_bar=False):
        from clenv.sweep.worker import execute_run

        calls.append(run_bar)
        return execute_run(cfg, run_dir, run_bar)

    monkeypatch.setattr(backends, "ProcessPoolExecutor", InlinePool)
    monkeypatch.setattr(backends, "execute_run", fake_execute)
    _eager_bars(monkeypatch)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "base": str(SCENARIOS / "quickstart.yaml"), "seeds": [0, 1],
        "set": {"data.train_per_class": 60, "data.test_per_class": 10, "output.plots": False,
                "eval.every": 0}}))
    return SimpleNamespace(path=path, calls=calls)


def test_sweep_quiet_prints_nothing(sweep, tmp_path: Path, monkeypatch,
                                    capsys) -> None:
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert main(["sweep", str(sweep.path), "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert capsys.readouterr().out == "" and sys.stderr.getvalue() == ""
    assert (tmp_path / "q" / "sweep.json").is_file()


def test_sweep_bar_of_runs(sweep, tmp_path: Path, monkeypatch, capsys) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["sweep", str(sweep.path), "--out", str(tmp_path / "a"), "--workers", "2"]) == 0
    text = err.getvalue()
    assert "sweep tiny" in text and "2/2" in text and re.search(r"(run/s|s/run)", text)
    assert "samples/s" not in text  # several workers: no per-run bars
    assert sweep.calls == [False, False]
    out = capsys.readouterr().out
    assert "[1/2]" in out and "[2/2]" in out  # the per-run lines still go to stdout


def test_sweep_per_run_bars_with_one_worker(sweep, tmp_path: Path, monkeypatch,
                                            capsys) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["sweep", str(sweep.path), "--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    assert sweep.calls == [True, True]
    assert "samples/s" in err.getvalue()


def test_sweep_not_a_terminal_has_lines_only(sweep, tmp_path: Path, monkeypatch,
                                             capsys) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert main(["sweep", str(sweep.path), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert sys.stderr.getvalue() == "" and sweep.calls == [False, False]
    assert "[2/2]" in capsys.readouterr().out
