"""Checkpoints of a single run and ``clenv run --resume``.

With ``output.checkpoint_every: N`` the Runner writes ``checkpoint.pt`` into the results folder
after the first step that reaches each multiple of N stream samples, once that position's
evaluations are logged. It holds the strategy's ``state_dict()`` (model, optimiser, replay
buffer, numpy generator, counters), torch's global RNG state, the stream position and the
online-accuracy counters, the loop's schedule (next task end, next anytime evaluation, probes
done, task hooks called), the step count and reward sum, the saved scores and the byte offset
of events.jsonl. The file is written atomically (temp file, then rename), so a run killed at
any moment leaves either the previous checkpoint or the new one.

The file holds only tensors and plain types (clenv.strategies.state: numpy arrays, generators
and stateful objects are encoded explicitly) and is read with ``torch.load(...,
weights_only=True)``, then checked to hold nothing else: a crafted checkpoint.pt cannot run
code; it is refused in one line.

Resuming rebuilds the run from config.yaml, calls ``setup(spec)``, restores that state, cuts
events.jsonl back to the checkpoint's offset (records of the lost stretch are written again),
seeks the Env to the position (streams are keyed by position) and continues: the finished run
has exactly the metrics of an uninterrupted one.

The checkpoint also holds the flattened resolved config, its sha256 and the stream's sha256
(:func:`identity`): a resume after config.yaml was edited (lr, seed, n_tasks, model...) or the
data changed is refused with one line naming the changed keys, so two runs are never spliced.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from clenv.atomic import write_bytes_atomic
from clenv.errors import UserError
from clenv.events import EventLog
from clenv.strategies.base import Strategy, supports_checkpoint
from clenv.strategies.state import CheckpointUnsupported, StateMismatch, check_plain, decode, encode

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = 2  # 1: attributes pickled (read no more); 2: explicit state, weights_only


def _save_atomic(obj: dict, path: Path) -> None:
    """Serialise in memory, then write (a full disk is an OSError, not torch's RuntimeError)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


#: Config keys that do not change what a run computes: editing them before a resume is allowed.
RESUME_FREE_KEYS = frozenset({"output.plots", "output.dir", "output.checkpoint_every"})


def flatten_config(cfg: dict, prefix: str = "") -> dict:
    """The resolved config as {dotted key: JSON value} (plain str/int/float/bool/None/list)."""
    flat: dict = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten_config(v, key + "."))
        elif key not in RESUME_FREE_KEYS:
            flat[key] = json.loads(json.dumps(v, default=str))
    return flat


def identity(cfg: dict, stream_sha: str | None) -> dict:
    """What a checkpoint belongs to: the flattened config, its sha256, the stream's sha256."""
    flat = flatten_config(cfg)
    text = json.dumps(flat, sort_keys=True, separators=(",", ":"))
    return {"config": flat, "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "stream_sha256": stream_sha}


class Checkpointer:
    """Saves the episode's state every ``every`` stream samples into ``out/checkpoint.pt``."""

    def __init__(self, out: Path, every: int, start: int = 0,
                 ident: dict | None = None) -> None:
        self.path = Path(out) / CHECKPOINT_NAME
        self.every = int(every)
        self.next = (start // self.every + 1) * self.every
        self.identity = dict(ident or {})

    def due(self, position: int) -> bool:
        return position >= self.next

    def save(self, strategy: Strategy, env, log: EventLog, state: dict,
             scores: dict[str, np.ndarray], loop: dict) -> None:
        """Write the checkpoint at the Env's current position."""
        pos = env.position
        _save_atomic({
            "format": FORMAT, "position": int(pos),
            "online": encode([env.online_correct, env.online_count]),
            "state": encode(dict(state)), "loop": encode(dict(loop)),
            "scores": encode(dict(scores)),
            "strategy": strategy.state_dict(), "torch_rng": torch.get_rng_state(),
            "log_offset": int(log.offset), "log_records": len(log.records), **self.identity,
        }, self.path)
        self.next = (pos // self.every + 1) * self.every


class Resumed:
    """A loaded checkpoint: restores the episode's state and reopens its event log."""

    def __init__(self, data: dict, path: Path) -> None:
        if data.get("format") != FORMAT:
            raise UserError(f"{path}: checkpoint format {data.get('format')!r} is not "
                            f"{FORMAT}; delete it to rerun from the start")
        self.data = data
        self.path = path
        try:
            self.position = int(data["position"])
            self.loop = decode(data["loop"])
            for k in ("next_task", "next_eval", "started", "probes_done"):
                self.loop[k]  # noqa: B018 - a missing key is a damaged checkpoint
            if not all(type(data.get(k)) is int for k in ("log_offset", "log_records")) \
                    or not isinstance(data.get("torch_rng"), torch.Tensor):
                raise ValueError("bad log offset or RNG state")
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: the checkpoint lacks its position or schedule; delete it "
                            "to rerun from the start") from None

    def check_identity(self, cfg: dict, stream_sha: str | None) -> None:
        """Refuse, in one line, to continue a checkpoint of another config or stream."""
        saved = self.data.get("config")
        if not isinstance(saved, dict) or "config_sha256" not in self.data:
            raise UserError(f"{self.path}: the checkpoint holds no config hash (written by an "
                            "older clenv), so it cannot be matched to config.yaml; delete it "
                            "to rerun from the start")
        now = identity(cfg, stream_sha)
        if now["config_sha256"] != self.data["config_sha256"]:
            missing = object()
            changed = sorted(k for k in set(saved) | set(now["config"])
                             if saved.get(k, missing) != now["config"].get(k, missing))
            shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more"
                                              if len(changed) > 8 else "")
            raise UserError(f"{self.path}: config.yaml was edited after the checkpoint was "
                            f"written ({shown or 'the config hash'} changed); put the values "
                            "back to resume, or delete checkpoint.pt to rerun from the start")
        if stream_sha is not None and self.data.get("stream_sha256") != stream_sha:
            raise UserError(f"{self.path}: the stream differs from the checkpoint's (the data "
                            "or the stream generator changed); delete checkpoint.pt to rerun "
                            "from the start")

    def event_log(self, path: Path) -> EventLog:
        log = EventLog.reopen(path, self.data["log_offset"])
        if len(log.records) != self.data["log_records"]:
            raise UserError(f"{path}: holds {len(log.records)} records before the checkpoint's "
                            f"offset, expected {self.data['log_records']}; the results folder "
                            "was changed: delete checkpoint.pt to rerun from the start")
        return log

    def restore(self, strategy: Strategy, env, state: dict,
                scores: dict[str, np.ndarray]) -> dict:
        """Load the strategy (after its setup), the RNG, counters and the Env position;
        return the obs at the position."""
        try:
            strategy.load_state_dict(self.data["strategy"])
            torch.set_rng_state(self.data["torch_rng"])
            state.update(decode(self.data["state"]))
            scores.update(decode(self.data["scores"]))
            correct, count = decode(self.data["online"])
        except (KeyError, TypeError, ValueError, RuntimeError, StateMismatch) as exc:
            why = " ".join(str(exc).split())[:200]
            raise UserError(f"{self.path}: the checkpoint does not fit this run ({why}); "
                            "delete it to rerun from the start") from None
        return env.seek(self.position, correct, count)


def prepare(cfg: dict, out: Path | None, strategy: Strategy, resume: bool, *,
            stream_sha: str | None = None) -> tuple[Checkpointer | None, Resumed | None]:
    """The checkpointer (``output.checkpoint_every``) and the checkpoint to resume from (when
    ``resume`` and ``out/checkpoint.pt`` exists). Refuses strategies without the state
    protocol, and a checkpoint of another config or stream (``stream_sha``), with one line."""
    every = int(cfg["output"].get("checkpoint_every") or 0)
    found = resume and out is not None and (out / CHECKPOINT_NAME).is_file()
    if not (every or found):
        return None, None
    if not supports_checkpoint(strategy):
        refuse(cfg, strategy, "output.checkpoint_every" if every else "--resume")
    resumed = None
    if found:
        path = out / CHECKPOINT_NAME
        resumed = Resumed(load_checkpoint(path), path)
        resumed.check_identity(cfg, stream_sha)
    saver = None
    if every and out is not None:
        saver = Checkpointer(out, every, resumed.position if resumed is not None else 0,
                             identity(cfg, stream_sha))
    return saver, resumed


def load_checkpoint(path: Path) -> dict:
    """Read ``path`` with ``weights_only=True`` and check it holds only the checkpoint's
    vocabulary (clenv.strategies.state.check_plain); anything else is a one-line UserError."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or crafted file is a user problem
        raise UserError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: it is "
                        "damaged, written by an older clenv, or holds objects other than "
                        "tensors and plain values); delete it to rerun from the start") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a clenv checkpoint; delete it to rerun from the start")
    check_plain(data, str(path))
    return data


def verify(out: Path) -> None:
    """Refuse an unreadable, old or crafted ``out/checkpoint.pt`` (one-line UserError), without
    building the run: what ``clenv sweep`` checks before it starts any run."""
    path = Path(out) / CHECKPOINT_NAME
    if path.is_file():
        Resumed(load_checkpoint(path), path)


def refuse(cfg: dict, strategy: Strategy, what: str) -> None:
    """Raise the one-line error for a strategy without the state protocol."""
    raise CheckpointUnsupported(
        f"{what}: strategy {cfg['strategy']['name']} ({type(strategy).__name__}) does not "
        "support checkpoints (no state_dict/load_state_dict); run it without checkpoints "
        "and resume, or implement them")


def discard(out: Path | None) -> None:
    """Remove the checkpoint of a finished run."""
    if out is not None:
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
