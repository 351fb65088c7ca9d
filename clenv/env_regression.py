"""The Env of continual regression (envs layer; docs/design.md, "A new family"): the stream Env
with real-valued actions. action = one prediction per row, a (B,) float array (Box);
reward = minus the mean squared error over the valid rows; info["target"] holds the batch's
real targets beside the function ids in info["y"]. The Env's online counts hold the squared-
error sum (``online_correct``) and the number (``online_count``) of first-exposure rows."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from clenv.data.sine import sine_targets
from clenv.env import ContinualEnv
from clenv.env_labels import SingleLabelRows


class RegressionRows(SingleLabelRows):
    """One real prediction per row, scored by its squared error against the row's target."""

    def __init__(self, env) -> None:
        self.env = env
        env.action_space = spaces.Box(-np.inf, np.inf, (env.B,), dtype=np.float32)

    def targets(self, batch: dict) -> np.ndarray:
        """The real targets of a batch's rows (padding rows get a value too, never scored)."""
        return sine_targets(self.env.pool, batch["x"], batch["ints"][0])

    def score(self, batch: dict, action, valid: np.ndarray) -> float:
        """-MSE over the valid rows; adds first exposures' squared errors to the online counts."""
        env = self.env
        action = np.asarray(action)
        if action.shape != (env.B,) or action.dtype.kind not in "iuf" \
                or not np.isfinite(action).all():
            raise ValueError(f"action must be a finite real array of shape ({env.B},), one "
                             f"prediction per row; got {action.dtype} {action.shape}")
        se = (action.astype(np.float64) - self.targets(batch)) ** 2
        first = batch["flags"][2] & valid
        env.online_correct += float(se[first].sum())
        env.online_count += int(first.sum())
        return -float(se[valid].mean()) if valid.any() else 0.0

    def add_info(self, info: dict, batch: dict) -> None:
        info["target"] = self.targets(batch)


class RegressionEnv(ContinualEnv):
    """The stream Env over a sine pool (clenv.data.sine), with :class:`RegressionRows`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows = RegressionRows(self)
        self._extra = self.rows.extra
