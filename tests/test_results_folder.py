"""The results folder's promises (clenv.results, docs/reliability.md): one writer per folder, a
folder's files belong to one run, metrics.json written last, a resume only of what was
checkpointed, and one line for an environment failure (a full disk) or a bad output path."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clenv.cli import main
from clenv.sweep.driver import is_complete
from tests.conftest import REPO

KILLER = "tests.checkpoint_killer"


def _env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    for k in [k for k in env if k.startswith("CLENV_KILL") or k.startswith("CLENV_BLOCK")]:
        env.pop(k)
    env.update(extra or {})
    return env


def _cfg(small_cfg: dict, *, plots: bool = False, every: int | None = None,
         strategy: dict | None = None, seed: int = 0) -> dict:
    cfg = copy.deepcopy(small_cfg)
    cfg["seed"] = seed
    cfg["strategy"] = strategy or {"name": f"{KILLER}:KillingER", "memory_size": 50}
    cfg["output"] = {"plots": plots, **({"checkpoint_every": every} if every else {})}
    return cfg


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes) but the lock file, whose content
    is the pid of its last holder: 'touches nothing' compares these."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".clenv.lock"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _one_line_err(capsys, *parts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: "), err
    for part in parts:
        assert part in err, err
    return err


def _without_wall(path: Path) -> str:
    return re.sub(r'\n "wall_time": \{[^}]*\}', "", path.read_text())


# -- one writer per folder ----------------------------------------------------------------------

def test_second_run_or_resume_into_a_busy_folder_is_refused_and_touches_nothing(
        small_cfg, tmp_path, capsys):
    """A real `clenv run` holds the folder (blocked at its first learn call); a second `clenv
    run --out SAME` and a `clenv run --resume SAME` get one line and exit 2, and the folder's
    bytes are unchanged; the first run then finishes with one start and one end record."""
    cfg_file = _write(tmp_path / "c.yaml", _cfg(small_cfg, every=40))
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = subprocess.Popen([sys.executable, "-m", "clenv.cli", "run", str(cfg_file), "--out",
                              str(out), "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=_env({"CLENV_BLOCK_LEARN": str(gate)}))
    try:
        _wait_for(Path(str(gate) + ".started"), first)
        before = _snapshot(out)
        assert main(["run", str(cfg_file), "--out", str(out), "--quiet"]) == 2
        _one_line_err(capsys, str(out), "another clenv process", f"pid {first.pid}")
        assert main(["run", "--resume", str(out)]) == 2
        _one_line_err(capsys, "another clenv process")
        assert _snapshot(out) == before
    finally:
        gate.touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    types = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert types.count("start") == 1 and types.count("end") == 1
    assert is_complete(out)


def test_second_sweep_into_a_busy_sweep_folder_is_refused_and_touches_nothing(
        small_cfg, tmp_path, capsys):
    cfg = _cfg(small_cfg)
    sweep = {"name": "busy", "base": cfg, "seeds": [0], "workers": 1}
    sf = _write(tmp_path / "s.yaml", sweep)
    out, gate = tmp_path / "sw", tmp_path / "gate"
    first = subprocess.Popen([sys.executable, "-m", "clenv.cli", "sweep", str(sf), "--out",
                              str(out)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=_env({"CLENV_BLOCK_LEARN": str(gate)}))
    try:
        _wait_for(Path(str(gate) + ".started"), first)
        before = _snapshot(out)
        assert main(["sweep", str(sf), "--out", str(out)]) == 2
        _one_line_err(capsys, str(out), "another clenv process")
        (run_dir,) = (out / "runs").iterdir()  # a run folder is held by its worker too
        assert main(["run", str(_write(tmp_path / "c.yaml", cfg)), "--out", str(run_dir),
                     "--quiet"]) == 2
        _one_line_err(capsys, "another clenv process")
        assert _snapshot(out) == before
    finally:
        gate.touch()
        stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr
    assert json.loads((out / "sweep.json").read_text())["runs"][0]["status"] == "complete"


# -- a folder's files belong to one run --------------------------------------------------------

def test_folder_with_foreign_files_is_refused_unless_force(small_cfg, tmp_path, capsys):
    cfg_file = _write(tmp_path / "c.yaml", _cfg(small_cfg, strategy={"name": "naive"}))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("my own work")
    assert main(["run", str(cfg_file), "--out", str(out), "--quiet"]) == 2
    _one_line_err(capsys, "thesis.tex", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    sweep_file = _write(tmp_path / "s.yaml", {"name": "s", "base": _cfg(
        small_cfg, strategy={"name": "naive"}), "seeds": [0]})
    assert main(["sweep", str(sweep_file), "--out", str(out)]) == 2
    _one_line_err(capsys, "thesis.tex", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert main(["run", str(cfg_file), "--out", str(out), "--quiet", "--force"]) == 0
    assert (out / "thesis.tex").read_text() == "my own work" and is_complete(out)


_KILL_AT_METRICS = """
import os, signal, sys
from pathlib import Path
real = os.replace
def replace(src, dst, *a, **k):
    if Path(dst).name == "metrics.json":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from clenv.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_after_figures_before_metrics_leaves_an_incomplete_folder(
        small_cfg, tmp_path, capsys):
    """A complete run, then a re-run (another seed) into the same folder SIGKILLed after its
    CSV and figures and before metrics.json: the old metrics.json is gone (never beside the new
    events), the folder is incomplete for --resume and sweeps; --resume finishes it with the
    metrics of an uninterrupted run of the new seed and no temp file is left."""
    out, ref = tmp_path / "out", tmp_path / "ref"
    old = _write(tmp_path / "old.yaml", _cfg(small_cfg, plots=True, every=40, seed=0))
    new = _write(tmp_path / "new.yaml", _cfg(small_cfg, plots=True, every=40, seed=1))
    assert main(["run", str(old), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(new), "--out", str(ref), "--quiet"]) == 0
    (out / ".metrics.json.tmp").write_text("{}")  # a leftover of an earlier kill
    r = subprocess.run([sys.executable, "-c", _KILL_AT_METRICS, "run", str(new), "--out",
                        str(out), "--quiet"], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == -9, r.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[0]["seed"] == 1 and events[-1]["type"] == "end"  # the new run's log
    assert (out / "forgetting.png").is_file() and (out / "accuracy_matrix.csv").is_file()
    assert not (out / "metrics.json").exists()  # no stale metrics beside the new events
    assert not is_complete(out)
    assert main(["run", "--resume", str(out)]) == 0
    assert "resumed from its checkpoint" in capsys.readouterr().out
    assert _without_wall(out / "metrics.json") == _without_wall(ref / "metrics.json")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / "checkpoint.pt").exists()


def test_rerun_clears_the_previous_runs_files(small_cfg, tmp_path):
    out = tmp_path / "out"
    with_scores = _cfg(small_cfg, strategy={"name": "naive"})
    with_scores["output"]["save_scores"] = True
    assert main(["run", str(_write(tmp_path / "a.yaml", with_scores)), "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "scores.npz").is_file()
    (out / ".events.jsonl.123.tmp").write_text("x")
    from clenv.results import register_run_file

    register_run_file("test_logger.log")  # a logger's output is the run's file too
    (out / "test_logger.log").write_text("the previous run's log")
    plain = _cfg(small_cfg, strategy={"name": "naive"})
    assert main(["run", str(_write(tmp_path / "b.yaml", plain)), "--out", str(out),
                 "--quiet"]) == 0  # not refused as foreign, and cleared
    names = {p.name for p in out.iterdir()}
    assert not {"scores.npz", ".events.jsonl.123.tmp", "test_logger.log"} & names


# -- resume only what was checkpointed ---------------------------------------------------------

@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> Path:
    """A run that crashed in task 2 with a checkpoint (no metrics.json)."""
    from tests.conftest import small_cfg as small

    d = tmp_path_factory.mktemp("crashed")
    cfg_file = _write(d / "c.yaml", _cfg(small.__wrapped__(), every=40))
    r = subprocess.run([sys.executable, "-m", "clenv.cli", "run", str(cfg_file), "--out",
                        str(d / "out"), "--quiet"], cwd=REPO, capture_output=True, text=True,
                       env=_env({"CLENV_RAISE_LEARN": "23"}), timeout=180)
    assert r.returncode != 0 and "learn call 23" in r.stderr
    assert (d / "out" / "checkpoint.pt").is_file()
    return d / "out"


@pytest.mark.parametrize(("edit", "key"), [
    (lambda c: c["strategy"].update(lr=0.5), "strategy.lr"),
    (lambda c: c.update(seed=7), "seed"),
    (lambda c: c["scenario"].update(n_tasks=2), "scenario.n_tasks"),
    (lambda c: c["model"].update(hidden=[16]), "model.hidden"),
])
def test_resume_after_config_edit_is_refused_naming_the_keys(crashed, tmp_path, capsys, edit,
                                                             key):
    out = tmp_path / "out"
    import shutil

    shutil.copytree(crashed, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    edit(cfg)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = _snapshot(out)
    assert main(["run", "--resume", str(out)]) == 2
    err = _one_line_err(capsys, "config.yaml was edited", key, "delete checkpoint.pt")
    assert err.split("(")[1].split(" changed")[0] == key  # only that key
    assert _snapshot(out) == before


def test_resume_with_unedited_config_still_works(crashed, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(crashed, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["output"]["plots"] = True  # not part of what the run computes
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", "--resume", str(out)]) == 0
    assert "resumed from its checkpoint" in capsys.readouterr().out and is_complete(out)


# -- environment failures: a full disk ---------------------------------------------------------

def _pages(*sizes: int) -> int:
    return sum(-(-s // 4096) for s in sizes)


@pytest.fixture(scope="module")
def file_sizes(tmp_path_factory) -> dict[str, int]:
    """Sizes of the files of a complete run (plots on, the checkpoint kept)."""
    from clenv import checkpoint
    from clenv.config.loader import load_config
    from clenv.runner import Run
    from tests.conftest import small_cfg as small

    out = tmp_path_factory.mktemp("sizes") / "out"
    keep = checkpoint.discard
    checkpoint.discard = lambda _out: None
    try:
        Run(load_config(_cfg(small.__wrapped__(), plots=True, every=40))).execute(out)
    finally:
        checkpoint.discard = keep
    return {p.name: p.stat().st_size for p in out.iterdir()}


def _mount_tmpfs(path: Path, size: int) -> bool:
    if os.environ.get("CLENV_TEST_NO_TMPFS"):
        return False
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def _inject_enospc(monkeypatch, where: str) -> None:
    """The fallback where tmpfs cannot be mounted: the write at ``where`` fails with ENOSPC
    after leaving a temp file, as a full disk does."""
    import errno

    def full(path) -> OSError:
        Path(path).write_bytes(b"\0" * 10)
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "events":
        from clenv.events import EventLog

        real = EventLog.write

        def write(self, record):
            if len(self.records) >= 4 and self._fh is not None:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(self, record)

        monkeypatch.setattr(EventLog, "write", write)
    elif where == "png":
        from matplotlib.figure import Figure

        def savefig(self, fname, *a, **k):
            raise full(fname)

        monkeypatch.setattr(Figure, "savefig", savefig)
    else:
        import clenv.checkpoint

        def write_bytes(path, data):
            raise full(Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp"))

        monkeypatch.setattr(clenv.checkpoint, "write_bytes_atomic", write_bytes)


@pytest.mark.parametrize("where", ["events", "png", "checkpoint"])
def test_disk_full_mid_run_is_one_line_exit_1_without_metrics_or_temp_files(
        small_cfg, tmp_path, capsys, monkeypatch, file_sizes, where):
    """A small tmpfs sized so that the disk fills at the events log, at the first figure or at
    the first checkpoint (an injected ENOSPC where tmpfs cannot be mounted; never a skip)."""
    s = file_sizes
    base = _pages(s.get(".clenv.lock", 1), s["config.yaml"], s["run.json"] + 200)
    if where == "events":
        cfg, size = _cfg(small_cfg), base + _pages(s["events.jsonl"]) - 1
    elif where == "png":
        cfg = _cfg(small_cfg, plots=True)
        size = base + _pages(s["events.jsonl"], s["accuracy_matrix.csv"]) + 1
    else:
        cfg, size = _cfg(small_cfg, every=40), base + 2 + _pages(s["checkpoint.pt"]) // 2
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, size * 4096)
    if not mounted:
        _inject_enospc(monkeypatch, where)
    out = disk / "out"
    try:
        assert main(["run", str(_write(tmp_path / "c.yaml", cfg)), "--out", str(out),
                     "--quiet"]) == 1
        _one_line_err(capsys, "No space left on device", "no metrics.json")
        names = {p.name for p in out.iterdir()}
        assert "metrics.json" not in names and not [n for n in names if n.endswith(".tmp")
                                                    or n.startswith(".tmp-")]
        if where == "png":  # the disk filled at the figures: the log was complete
            assert "forgetting.png" not in names and "accuracy_matrix.csv" in names
        if where == "checkpoint":
            assert "checkpoint.pt" not in names
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_memory_and_os_errors_are_one_line_exit_1(monkeypatch, tmp_path, capsys):
    import clenv.cli

    def boom(_args):
        raise MemoryError

    monkeypatch.setitem(clenv.cli.COMMANDS, "list", boom)
    assert main(["list"]) == 1
    _one_line_err(capsys, "out of memory")

    def denied(_args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setitem(clenv.cli.COMMANDS, "list", denied)
    assert main(["list"]) == 1
    _one_line_err(capsys, "Permission denied", str(tmp_path / "x"))


# -- bad output paths ----------------------------------------------------------------------------

def test_out_that_is_a_file_or_a_dangling_link_is_one_line(small_cfg, tmp_path, capsys):
    cfg_file = _write(tmp_path / "c.yaml", _cfg(small_cfg, strategy={"name": "naive"}))
    f = tmp_path / "afile"
    f.write_text("keep")
    assert main(["run", str(cfg_file), "--out", str(f), "--quiet"]) == 2
    _one_line_err(capsys, "is a file")
    assert f.read_text() == "keep"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    assert main(["run", str(cfg_file), "--out", str(link), "--quiet"]) == 2
    _one_line_err(capsys, "symbolic link")
    assert main(["sweep", str(_write(tmp_path / "s.yaml", {"name": "s", "base": _cfg(
        small_cfg, strategy={"name": "naive"}), "seeds": [0]})), "--out", str(f)]) == 2
    _one_line_err(capsys, "is a file")
    assert not (tmp_path / "gone").exists() and f.read_text() == "keep"


@pytest.mark.parametrize("name", ["../escape", "/abs/olute", "a/b", ".."])
def test_a_name_that_is_a_path_is_a_config_error(small_cfg, tmp_path, capsys, name):
    cfg = _cfg(small_cfg, strategy={"name": "naive"})
    cfg["name"] = name
    assert main(["check", str(_write(tmp_path / "c.yaml", cfg))]) == 2
    _one_line_err(capsys, "name:", "plain folder name")
    sweep = {"name": name, "base": cfg | {"name": "ok"}, "seeds": [0]}
    assert main(["sweep", str(_write(tmp_path / "s.yaml", sweep)), "--dry-run"]) == 2
    _one_line_err(capsys, "name:", "plain folder name")


def test_list_into_a_closed_pipe_exits_quietly():
    p = subprocess.Popen([sys.executable, "-m", "clenv.cli", "list"], cwd=REPO, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # `| head` that has already gone
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert err == "" and p.returncode == 0, err


# -- damaged, foreign or older results ---------------------------------------------------------

@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A complete stream run (plots off)."""
    from tests.conftest import small_cfg as small

    d = tmp_path_factory.mktemp("done")
    cfg = _cfg(small.__wrapped__(), strategy={"name": "naive"})
    assert main(["run", str(_write(d / "c.yaml", cfg)), "--out", str(d / "run"),
                 "--quiet"]) == 0
    return d / "run"


def _copy(done: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(done, dest)
    return dest


@pytest.mark.parametrize(("text", "needle"), [
    ("{{{ not json", "not a readable JSON file"), ("", "not a readable JSON file"),
    ("[1, 2]", "got a list"), ("{}", "has no name"),
])
def test_plot_and_compare_over_a_damaged_metrics_json(done, tmp_path, capsys, text, needle):
    run = _copy(done, tmp_path / "run")
    (run / "metrics.json").write_text(text)
    before = _snapshot(run)
    for cmd in (["compare", str(run)], ["plot", str(run)]):
        assert main(cmd) == 2
        _one_line_err(capsys, "metrics.json", needle)
    assert _snapshot(run) == before  # nothing drawn


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda lines: [], "empty"),
    (lambda lines: lines[:2] + ['{"type": "eval", "broken\n'] + lines[3:], "line 3"),
    (lambda lines: lines[:2] + ["\0" * 80 + "\n"] + lines[3:], "line 3"),
    (lambda lines: lines[:1] + ["[1, 2]\n"] + lines[2:], "line 2"),
])
def test_plot_over_a_damaged_events_log(done, tmp_path, capsys, damage, needle):
    run = _copy(done, tmp_path / "run")
    lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(damage(lines)))
    assert main(["plot", str(run)]) == 2
    _one_line_err(capsys, "events.jsonl", needle)
    assert not (run / "forgetting.png").exists()


@pytest.mark.parametrize("index", [[], {"runs": "x", "axes": {}, "replicates": []},
                                   {"runs": [{"id": 1}], "axes": {}, "replicates": []},
                                   {"runs": [{"id": "a", "dir": "../../etc", "params": {}}],
                                    "axes": {}, "replicates": []}])
def test_compare_and_plot_over_a_sweep_json_of_the_wrong_shape(tmp_path, capsys, index):
    (tmp_path / "sweep.json").write_text(json.dumps(index))
    for cmd in (["compare", str(tmp_path)], ["plot", str(tmp_path)]):
        assert main(cmd) == 2
        _one_line_err(capsys, "sweep.json", "run the sweep again")


@pytest.mark.parametrize(("edit", "fam"), [
    ({"multi_label": True}, "multi-label"), ({"levels": 2}, "hierarchical"),
    ({"generator": "agcd"}, "agcd"),
])
def test_runs_of_different_scenario_families_never_share_a_figure(done, tmp_path, capsys,
                                                                  edit, fam):
    other = _copy(done, tmp_path / "other")
    lines = (other / "events.jsonl").read_text().splitlines(keepends=True)
    lines[0] = json.dumps({**json.loads(lines[0]), **edit}) + "\n"
    (other / "events.jsonl").write_text("".join(lines))
    out = tmp_path / "both.png"
    assert main(["plot", str(done), str(other), "--out", str(out)]) == 2
    _one_line_err(capsys, "different scenario families", "(stream)", f"({fam})")
    assert not out.exists()


def test_a_folder_of_an_older_clenv_names_its_version(done, tmp_path, capsys):
    old = _copy(done, tmp_path / "old")
    lines = (old / "events.jsonl").read_text().splitlines(keepends=True)
    start = json.loads(lines[0])
    del start["columns"], start["task_starts"]
    lines[0] = json.dumps(start) + "\n"
    (old / "events.jsonl").write_text("".join(lines))
    info = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**info, "clenv": "0.0.1"}))
    assert main(["plot", str(old), "--out", str(tmp_path / "f.png")]) == 2
    _one_line_err(capsys, "written by clenv 0.0.1", "run it again")


def test_plot_out_paths(done, tmp_path, capsys):
    run = _copy(done, tmp_path / "run")
    assert main(["plot", str(run), "--out", str(tmp_path / "missing" / "f.png")]) == 2
    _one_line_err(capsys, "does not exist")
    assert main(["plot", str(run), "--out", str(tmp_path / "f.xyz")]) == 2
    _one_line_err(capsys, "unknown figure extension", ".png")
    assert main(["plot", str(run), "--out", str(tmp_path / "noext")]) == 2
    _one_line_err(capsys, "unknown figure extension")
    assert not list(tmp_path.glob("f.*")) and not list(tmp_path.glob("noext*"))
    figs = tmp_path / "figs"
    figs.mkdir()
    assert main(["plot", str(run), "--out", str(figs)]) == 0
    assert (figs / "forgetting.png").is_file() and not (tmp_path / "figs.png").exists()
    assert main(["plot", str(run), "--out", str(tmp_path / "f.pdf")]) == 0
    assert (tmp_path / "f.pdf").is_file()
