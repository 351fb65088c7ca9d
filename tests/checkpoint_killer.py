"""Test strategies that die on request, to interrupt runs mid-task and mid-evaluation.

``learn`` kills its own process with SIGKILL at its k-th call when CLENV_KILL_LEARN=k, and an
evaluation ``predict`` (a call on a batch that is not a stream batch) at its k-th call when
CLENV_KILL_EVAL=k; with CLENV_KILL_SIGNAL=INT it sends SIGINT to its whole process group
instead (Ctrl-C in a terminal), with CLENV_KILL_SIGNAL=KILLPG it SIGKILLs its whole process
group (the machine going down); CLENV_RAISE_LEARN=k raises RuntimeError (an in-process crash).
CLENV_KILL_SEED=s SIGKILLs the process at the first learn call of a run whose seed is s (a sweep
worker killed by the OS). CLENV_BLOCK_LEARN=PATH makes the first learn call create PATH.started
and wait (up to 120 s) until PATH exists (a run held mid-way, for concurrent writers).
``Crashing`` always raises in learn (a crashing sweep run); ``Stateless`` is a strategy without
the state protocol.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from clenv.strategies.base import Strategy
from clenv.strategies.er import ExperienceReplay
from clenv.strategies.joint import Joint
from clenv.strategies.naive import Naive
from clenv.strategies.plfms import PLFMS


def _maybe_die(var: str, count: int) -> None:
    target = os.environ.get(var)
    if target is not None and count == int(target):
        if os.environ.get("CLENV_KILL_SIGNAL") == "INT":  # Ctrl-C: the whole process group
            os.killpg(os.getpgid(0), signal.SIGINT)
            signal.pause()  # until the interrupt arrives here too
        if os.environ.get("CLENV_KILL_SIGNAL") == "KILLPG":
            os.killpg(os.getpgid(0), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


class _Killing:
    def learn(self, batch, info):
        self.learn_calls = getattr(self, "learn_calls", 0) + 1
        if os.environ.get("CLENV_KILL_SEED") == str(self.spec.seed):
            os.kill(os.getpid(), signal.SIGKILL)
        block = os.environ.get("CLENV_BLOCK_LEARN")
        if block and self.learn_calls == 1:
            Path(block + ".started").touch()
            deadline = time.monotonic() + 120
            while not os.path.exists(block) and time.monotonic() < deadline:
                time.sleep(0.02)
        _maybe_die("CLENV_KILL_LEARN", self.learn_calls)
        if os.environ.get("CLENV_RAISE_LEARN") == str(self.learn_calls):
            raise RuntimeError(f"interrupted at learn call {self.learn_calls}")
        return super().learn(batch, info)

    def predict(self, obs):
        if len(obs["x"]) != self.spec.batch_size:
            self.eval_calls = getattr(self, "eval_calls", 0) + 1
            _maybe_die("CLENV_KILL_EVAL", self.eval_calls)
        return super().predict(obs)


class KillingER(_Killing, ExperienceReplay):
    """ER that dies on request (see the module doc)."""


class KillingNaive(_Killing, Naive):
    """Naive that dies on request."""


class KillingJoint(_Killing, Joint):
    """Joint that dies on request."""


class KillingPLFMS(_Killing, PLFMS):
    """PL-FMS that dies on request."""


class Crashing(Naive):
    """Raises in its first learn call."""

    def learn(self, batch, info):
        raise RuntimeError("boom: this strategy always crashes")


class Stateless(Strategy):
    """Predicts class 0; has no state_dict (so it cannot be checkpointed)."""

    def predict(self, obs):
        import torch

        scores = np.full((len(obs["x"]), self.spec.n_classes), -1.0, dtype=np.float32)
        scores[:, 0] = 0.0
        return torch.from_numpy(scores)


def _multilane():
    from clenv.strategies.multilane import MultiLaneStrategy

    class KillingMultiLane(_Killing, MultiLaneStrategy):
        """MULTI-LANE that dies on request."""

    return KillingMultiLane


def __getattr__(name: str):  # MULTI-LANE imports timm: built on first use only
    if name == "KillingMultiLane":
        return _multilane()
    raise AttributeError(name)
