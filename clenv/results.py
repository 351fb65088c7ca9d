"""The results folder's rules, in one place (used by the Runner, ``--resume``, the AGCD loop and
sweeps):

- one writer per folder: :class:`FolderLock` holds ``fcntl.flock`` on ``.clenv.lock`` inside the
  folder for the life of a run, a resume or a sweep; a second writer gets one line (exit 2) and
  touches nothing;
- a folder's files belong to one run: :func:`start_run` refuses a folder holding files clenv did
  not write (unless ``force``) and clears the previous run's files before the first write;
- ``metrics.json`` is written last (:func:`write_metrics_last`), so a folder without it is
  incomplete (:func:`is_complete`), whatever else it holds;
- temp files (``.NAME.tmp``, ``.NAME.PID.tmp``, ``.tmp-NAME``) are removed at start and when a
  run fails; a write that fails for lack of space (or any other OS error) becomes one
  :class:`~clenv.errors.EnvironmentFailure` line (:func:`guard_writes`);
- readers of finished folders (:func:`read_metrics`, :func:`read_run_events`) turn a damaged or
  foreign file into one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from clenv.atomic import write_json_atomic
from clenv.config.loader import check_folder_name  # noqa: F401 (its old path)
from clenv.errors import EnvironmentFailure, UserError

LOCK_NAME = ".clenv.lock"
METRICS_NAME = "metrics.json"
EVENTS_NAME = "events.jsonl"
CHECKPOINT_NAME = "checkpoint.pt"
#: Every file a run writes into its folder (``clenv plot`` adds the figures it draws there).
RUN_FILES = frozenset({
    "config.yaml", "run.json", EVENTS_NAME, METRICS_NAME, "accuracy_matrix.csv", "scores.npz",
    CHECKPOINT_NAME, "error.json", "forgetting.png", "accuracy_matrix.png", "agcd_rounds.png",
    "forgetting_compare.png", "agcd_rounds_compare.png",
    "evaluations.csv", "tensorboard",  # the loggers' files (clenv.loggers.LOGGER_FILES)
})
#: What a resumed run keeps: the rest is rewritten from the checkpoint on.
RESUME_KEEPS = frozenset({"config.yaml", "run.json", EVENTS_NAME, CHECKPOINT_NAME})
#: Every entry clenv writes into a sweep folder (each run has its folder under runs/).
SWEEP_FILES = frozenset({"sweep.json", "runs", "summary.csv", "summary.md", "selection.json",
                         "curves.png"})
_extra_run_files: set[str] = set()


def register_run_file(name: str) -> None:
    """Declare one more file that runs write into their folder (e.g. a logger's output), so
    re-runs clear it and folders holding it count as clenv's."""
    _extra_run_files.add(name)


def run_files() -> frozenset[str]:
    return RUN_FILES | _extra_run_files


def is_temp(name: str) -> bool:
    """A temp file of an atomic write (clenv.atomic, the checkpoint, the figures)."""
    return (name.startswith(".") and name.endswith(".tmp")) or name.startswith(".tmp-")


def check_out_path(out: Path, flag: str = "--out") -> None:
    """Refuse an output folder that is a file or a dangling symbolic link."""
    if out.is_symlink() and not out.exists():
        raise UserError(f"{flag} {out}: a symbolic link to a missing target "
                        f"({os.readlink(out)}); remove the link or give another folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: is a file, not a folder; give a folder path")


# -- one writer per folder ---------------------------------------------------------------------

_held: dict[str, list] = {}  # realpath -> [open lock file, depth]: re-entrant in one process


class FolderLock:
    """An exclusive ``flock`` on ``folder/.clenv.lock`` (the folder is created if missing).

    Another process holding it makes :meth:`acquire` raise a one-line UserError; the same
    process may take it again (nested: a sweep worker, then the run it executes). Acquiring
    writes the holder's pid into the file. The kernel drops the lock when the holder dies, so
    a killed run never leaves its folder locked."""

    def __init__(self, folder: str | os.PathLike, flag: str = "--out") -> None:
        self.folder = Path(folder)
        self.flag = flag
        self._key: str | None = None

    def acquire(self) -> FolderLock:
        check_out_path(self.folder, self.flag)
        self.folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.folder)
        if key in _held:
            _held[key][1] += 1
            self._key = key
            return self
        path = self.folder / LOCK_NAME
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            fh.close()
            raise UserError(f"{self.flag} {self.folder}: another clenv process (pid {pid}) is "
                            "writing this folder; wait for it to finish or give another "
                            "folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        _held[key] = [fh, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        entry = _held[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self._key]
            fcntl.flock(entry[0].fileno(), fcntl.LOCK_UN)
            entry[0].close()
        self._key = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def started_after(folder: str | os.PathLike, t_ns: int) -> bool:
    """True when a process took ``folder``'s lock at or after ``t_ns`` (time.time_ns()): the
    sweep tells the runs that were in flight when a worker died from those still queued."""
    try:
        return (Path(folder) / LOCK_NAME).stat().st_mtime_ns >= t_ns
    except OSError:
        return False


# -- a folder's files belong to one run --------------------------------------------------------

def foreign_files(folder: Path, known: frozenset[str]) -> list[str]:
    """Entries of ``folder`` that clenv did not write (sorted names)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in known and p.name != LOCK_NAME and not is_temp(p.name))


def refuse_foreign(folder: Path, known: frozenset[str], force: bool, flag: str = "--out") -> None:
    """One line when ``folder`` holds files clenv did not write, unless ``force``."""
    extra = foreign_files(folder, known)
    if extra and not force:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise UserError(f"{flag} {folder}: holds files clenv did not write ({shown}); give an "
                        "empty or new folder, or add --force to write beside them (clenv then "
                        "replaces only its own files)")


def clean_temp(folder: Path) -> None:
    """Remove leftover temp files of atomic writes."""
    if folder.is_dir():
        for p in folder.iterdir():
            if is_temp(p.name) and p.is_file():
                p.unlink(missing_ok=True)


def start_run(folder: Path, *, keep: frozenset[str] = frozenset()) -> None:
    """Clear the previous run's files (all of :func:`run_files` but ``keep``) and temp files,
    before the run writes anything."""
    clean_temp(folder)
    for name in run_files() - keep:
        p = folder / name
        if p.is_file() or p.is_symlink():
            p.unlink()
        elif p.is_dir():  # a logger's folder (tensorboard/)
            shutil.rmtree(p)


def write_metrics_last(folder: Path, metrics: dict) -> None:
    """Write metrics.json atomically: call it after every other file of the run is written."""
    write_json_atomic(folder / METRICS_NAME, metrics)


def is_complete(folder: str | os.PathLike) -> bool:
    """True when ``folder/metrics.json`` exists and parses to a mapping."""
    try:
        return isinstance(json.loads((Path(folder) / METRICS_NAME).read_text()), dict)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def guard_writes(folder: Path | None) -> Iterator[None]:
    """Around a run's writes: on any failure remove temp files; an OSError (a full disk, a
    quota, a read-only or vanished folder) becomes one EnvironmentFailure line. metrics.json
    is written last, so a failed run never leaves one."""
    try:
        yield
    except OSError as exc:
        if folder is None:
            raise
        with contextlib.suppress(OSError):
            clean_temp(folder)
        what = os.strerror(exc.errno) if exc.errno else str(exc)
        where = f" ({exc.filename})" if exc.filename else ""
        hint = ("free some space and run again (--resume continues from the last checkpoint)"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
                else "check the folder and run again")
        raise EnvironmentFailure(f"{folder}: the run stopped on an OS error: {what}{where}; "
                                 f"{hint}; no metrics.json was written") from None
    except BaseException:
        if folder is not None:
            with contextlib.suppress(OSError):
                clean_temp(folder)
        raise


# -- reading finished folders ------------------------------------------------------------------

def written_by(folder: str | os.PathLike) -> str:
    """'clenv X' from run.json's provenance, or 'an unknown clenv version'."""
    try:
        info = json.loads((Path(folder) / "run.json").read_text())
        return f"clenv {info['clenv']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown clenv version"


def read_metrics(folder: str | os.PathLike, keys: tuple[str, ...] = ("name",)) -> dict:
    """A results folder's metrics.json as a mapping holding ``keys``, or one UserError line."""
    path = Path(folder) / METRICS_NAME
    if not path.is_file():
        raise UserError(f"{folder}: no {METRICS_NAME}; give a results folder written by clenv "
                        "run (an incomplete run has none: finish it with clenv run --resume)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({type(exc).__name__}); the folder "
                        "is damaged: run it again") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of metrics, got a "
                        f"{type(data).__name__}; the folder is damaged: run it again")
    missing = [k for k in keys if k not in data]
    if missing:
        raise UserError(f"{path}: has no {', '.join(missing)} (written by "
                        f"{written_by(folder)}?); run it again with this clenv")
    return data


def read_run_events(folder: str | os.PathLike) -> list[dict]:
    """A results folder's events.jsonl records (first one a start record), or one UserError
    line naming the file (and the line of a damaged record)."""
    from clenv.metrics.summary import read_events

    path = Path(folder) / EVENTS_NAME
    if not path.is_file():
        raise UserError(f"{folder}: no {EVENTS_NAME}; give a results folder written by clenv "
                        "run")
    events = read_events(path)
    if not events:
        raise UserError(f"{path}: empty (the run wrote no record); run it again")
    if events[0].get("type") != "start":
        raise UserError(f"{path} line 1: expected the start record, got type "
                        f"{str(events[0].get('type'))[:40]!r}; the folder is damaged: run it "
                        "again")
    return events


def family(start: dict) -> str:
    """The scenario family of a start record: agcd, multi-label, hierarchical, regression or
    stream."""
    if start.get("generator") == "agcd":
        return "agcd"
    if start.get("family") == "regression":
        return "regression"
    if start.get("multi_label"):
        return "multi-label"
    if (start.get("levels") or 1) > 1:
        return "hierarchical"
    return "stream"


FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def figure_out(out: str | None, default: Path) -> Path:
    """Where ``clenv plot`` writes: ``--out`` (a file with a figure extension in an existing
    folder, or an existing folder to hold the default name), else ``default``."""
    if not out:
        return default
    path = Path(out)
    if path.is_dir():
        return path / default.name
    if not path.parent.is_dir():
        raise UserError(f"--out {out}: folder {path.parent} does not exist; create it first or "
                        "give an existing folder")
    ext = path.suffix.lower().lstrip(".")
    if ext not in FIGURE_FORMATS:
        raise UserError(f"--out {out}: unknown figure extension {path.suffix or '(none)'!r}; "
                        f"expected one of {', '.join('.' + f for f in FIGURE_FORMATS)}")
    return path
