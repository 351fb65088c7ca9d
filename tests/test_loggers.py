"""Loggers: the quickstart with ``output.loggers: [tensorboard, csv]`` writes a TensorBoard event
file and a flat CSV, read back here with tensorboard's own reader; both are functions of the
event log (they subscribe to it), and each eval record carries ``train_loss``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.errors import ConfigError, UserError
from clenv.events import EventLog
from clenv.loggers import LOGGER_FILES, LOGGERS, check_loggers, close_loggers, open_loggers
from clenv.runner import Run
from tests.conftest import SCENARIOS, one_line, require
from tests.user_strategy import MajorityClass

SMALL = ["data.train_per_class=30", "data.test_per_class=20", "eval.every=100",
         "output.plots=false"]


def _run(out: Path, *extra: str) -> dict:
    args = ["run", str(SCENARIOS / "quickstart.yaml"), "--quiet", "--out", str(out)]
    for s in SMALL:
        args += ["--set", s]
    assert main([*args, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _csv(out: Path) -> list[dict]:
    with open(out / "evaluations.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Path:
    require("tensorboard")
    out = tmp_path_factory.mktemp("logged") / "run"
    _run(out, "--logger", "tensorboard", "--set", "output.loggers=[csv]")
    return out


def test_csv_has_one_row_per_evaluation(logged: Path) -> None:
    events = [json.loads(line) for line in (logged / "events.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["type"] == "eval"]
    rows = _csv(logged)
    assert [r["kind"] for r in rows] == [e["kind"] for e in evals]
    assert [int(r["samples"]) for r in rows] == [e["samples"] for e in evals]
    metrics = json.loads((logged / "metrics.json").read_text())
    task_ends = [r for r in rows if r["kind"] == "task_end"]
    for r, expected in zip(task_ends, metrics["accuracy_matrix"], strict=True):
        assert [_num(r[f"task_{j}"]) for j in range(5)] == pytest.approx(expected)
    # forgetting so far at the last task end is metrics.json's average forgetting
    assert _num(task_ends[-1]["forgetting"]) == pytest.approx(metrics["average_forgetting"])
    assert rows[0]["forgetting"] == "" and rows[0]["train_loss"] == ""  # nothing learnt yet
    assert all(_num(r["train_loss"]) > 0 for r in task_ends)
    last = rows[-1]
    assert _num(last["accuracy"]) == pytest.approx(metrics["a_last"])
    assert _num(last["online_accuracy"]) == pytest.approx(metrics["online_accuracy"])
    assert int(last["budget_grad_steps"]) == metrics["budget"]["grad_steps"]


class StepLoss(MajorityClass):
    """learn() call n returns loss n (and no loss on every fifth call)."""

    def setup(self, spec):
        super().setup(spec)
        self.calls = 0

    def learn(self, batch, info):
        super().learn(batch, info)
        self.calls += 1
        return {} if self.calls % 5 == 0 else {"loss": float(self.calls)}


def test_train_loss_is_the_mean_of_learn_losses_since_the_last_eval(small_cfg,
                                                                    tmp_path: Path) -> None:
    """An eval record's train_loss is the mean of the losses learn() returned since the
    previous evaluation (calls without a loss do not count); None when there were none."""
    cfg = load_config({**small_cfg, "strategy": {"name": "tests.test_loggers:StepLoss"},
                       "eval": {"every": 70}})
    Run(cfg).execute(tmp_path)
    evals = [e for e in map(json.loads, (tmp_path / "events.jsonl").read_text().splitlines())
             if e["type"] == "eval"]
    assert len(evals) > 5
    prev = 0
    for e in evals:
        losses = [n for n in range(prev + 1, e["steps"] + 1) if n % 5]
        if losses:
            assert e["train_loss"] == pytest.approx(sum(losses) / len(losses)), e["kind"]
        else:
            assert e["train_loss"] is None, e["kind"]
        prev = e["steps"]
    assert evals[0]["train_loss"] is None


def test_tensorboard_scalars_read_back(logged: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((logged / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(logged / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"accuracy/seen", "forgetting", "train_loss", "online_accuracy",
            "budget/grad_steps", *(f"accuracy/task_{j}" for j in range(5))} <= tags
    rows = [r for r in _csv(logged) if r["kind"] != "probe"]
    for tag, column in (("accuracy/task_0", "task_0"), ("train_loss", "train_loss"),
                        ("forgetting", "forgetting"), ("budget/grad_steps", "budget_grad_steps")):
        got = [(s.step, s.value) for s in acc.Scalars(tag)]
        want = [(int(r["samples"]), _num(r[column])) for r in rows if r[column] != ""]
        assert [g[0] for g in got] == [w[0] for w in want], tag
        assert [g[1] for g in got] == pytest.approx([w[1] for w in want], rel=1e-6), tag


def test_loggers_replay_the_log_they_join(tmp_path: Path) -> None:
    """A logger opened on a log that already holds records (a resumed run) writes them first,
    then follows the records to come: its file is a function of the whole log."""
    out = _run_plain(tmp_path / "plain")
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    half = len(records) // 2
    log = EventLog(tmp_path / "replay.jsonl")
    for r in records[:half]:
        log.write(r)
    (tmp_path / "evaluations.csv").write_text("stale\n")
    loggers = open_loggers(["csv"], tmp_path, log)
    for r in records[half:]:
        log.write(r)
    log.close()
    close_loggers(loggers)
    assert [r["samples"] for r in _csv(tmp_path)] == [
        str(r["samples"]) for r in records if r["type"] == "eval"]


def _run_plain(out: Path) -> Path:
    _run(out)
    assert not any((out / name).exists() for name in LOGGER_FILES)  # none unless asked
    return out


def test_logger_names_checked() -> None:
    assert check_loggers(["csv", "csv", "tensorboard"]) == ["csv", "tensorboard"]
    assert set(LOGGERS) == {"csv", "tensorboard"}
    with pytest.raises(ConfigError) as exc:
        load_config(str(SCENARIOS / "quickstart.yaml"), overrides=["output.loggers=[wandb]"])
    one_line(exc, "output.loggers[0]", "wandb", "tensorboard, csv")
    with pytest.raises(ConfigError) as exc:
        load_config(str(SCENARIOS / "agcd_synthetic.yaml"), loggers=["csv"])
    one_line(exc, "output.loggers", "agcd")


def test_missing_tensorboard_is_one_line(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(UserError) as exc:
        check_loggers(["tensorboard"])
    one_line(exc, "tensorboard", "clenv[loggers]")


def test_bad_logger_on_the_command_line_writes_nothing(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(SCENARIOS / "quickstart.yaml"), "--logger", "wandb",
              "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and not (tmp_path / "x").exists()
    assert "invalid choice" in capsys.readouterr().err


def _csv_without_wall(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall"} for r in _csv(out)]


def test_crash_then_resume_writes_the_same_logs(small_cfg, tmp_path: Path, monkeypatch) -> None:
    """A run that crashes after a checkpoint and is resumed ends with the CSV and TensorBoard
    scalars of the uninterrupted run: the loggers replay the log the checkpoint kept (the
    train_loss accumulators are part of the checkpoint)."""
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config({**small_cfg, "strategy": {"name": "tests.checkpoint_killer:KillingNaive",
                                                 "optimizer": "adam", "lr": 0.01},
                       "eval": {"every": 40},
                       "output": {"plots": False, "checkpoint_every": 30,
                                  "loggers": ["csv", "tensorboard"]}})
    ref = tmp_path / "ref"
    Run(cfg).execute(ref)
    out = tmp_path / "crashed"
    monkeypatch.setenv("CLENV_RAISE_LEARN", "23")
    with pytest.raises(RuntimeError, match="learn call 23"):
        Run(cfg).execute(out)
    assert (out / "checkpoint.pt").is_file()
    monkeypatch.delenv("CLENV_RAISE_LEARN")
    Run(cfg).execute(out, resume=True)
    assert _csv_without_wall(out) == _csv_without_wall(ref)
    scalars = []
    for d in (ref, out):
        assert len(list((d / "tensorboard").iterdir())) == 1  # the crashed run's file is gone
        acc = EventAccumulator(str(d / "tensorboard"))
        acc.Reload()
        scalars.append({t: [(s.step, s.value) for s in acc.Scalars(t)]
                        for t in acc.Tags()["scalars"]})
    assert scalars[0] == scalars[1] and scalars[0]["train_loss"]


def test_logger_files_belong_to_the_run_and_a_rerun_clears_them(tmp_path):
    """The loggers' outputs are run files (clenv.results): a re-run without loggers leaves none
    of the previous run's logger files behind."""
    from clenv.loggers import LOGGER_FILES
    from clenv.results import run_files, start_run

    assert set(LOGGER_FILES) <= run_files()
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out").write_text("x")
    (tmp_path / "evaluations.csv").write_text("x")
    start_run(tmp_path)
    assert not (tmp_path / "tensorboard").exists() and not (tmp_path / "evaluations.csv").exists()
