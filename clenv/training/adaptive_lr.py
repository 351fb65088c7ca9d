"""CLIB's adaptive learning rate (Koh et al., ICLR 2022), as the i-Blurry code computes it
(naver-ai/i-Blurry, methods/clib.py, ``adaptive_lr``; the HLE code's PL-FMS uses the same rule,
Hyun1A/HLE single_depth/methods/pl_fms.py).

Two rates alternate, ``high`` and ``low = lr_step · high``. Every ``lr_period`` importance updates
(each one recomputes the per-sample losses of the memory) the rate switches; at each switch the
mean decrease of the memory losses since the previous switch,
``d = mean_{i not replaced since} (loss_prev[i] - loss_now[i])``, joins the window of the rate
that was in force (the last ``lr_length`` values; none during the first 20 updates). When both
windows hold ``lr_length`` values, Welch's t-test asks whether the low rate's decreases are
greater: p < significance moves both rates down by ``lr_step`` (high = low), p > 1 - significance
moves them up (low = high); either way the windows empty and the rate in force stays the same
kind (high or low) as before the switch.

One difference, stated in docs/fidelity.md: a switch with no memory sample left to compare adds
nothing to the window (the official code adds NaN, which then keeps the t-test from ever
deciding until the window rolls over).
"""

from __future__ import annotations

import numpy as np

BURN_IN = 20  # importance updates before any loss decrease is recorded (the official constant)


class AdaptiveLR:
    """The rate CLIB's t-test schedule puts in force; ``observe`` after each importance update."""

    def __init__(self, base_lr: float, lr_step: float = 0.95, lr_period: int = 10,
                 lr_length: int = 10, significance: float = 0.05) -> None:
        self.lr_step = float(lr_step)
        self.lr_period = int(lr_period)
        self.lr_length = int(lr_length)
        self.significance = float(significance)
        self.high = float(base_lr)
        self.low = self.lr_step * self.high
        self.is_high = True
        self.high_window: list[float] = []
        self.low_window: list[float] = []
        self.prev: np.ndarray | None = None
        self.count = 0
        self.replaced: list[int] = []  # memory slots replaced since the last switch

    @property
    def lr(self) -> float:
        return self.high if self.is_high else self.low

    # the supervised base calls these on every schedule; they do nothing here
    def after_step(self) -> None:
        pass

    def on_task_start(self, task: int) -> None:
        pass

    def on_new_class(self) -> None:
        pass

    def note_replaced(self, slots) -> None:
        """Memory slots that received a new sample (their losses are not comparable)."""
        self.replaced.extend(int(s) for s in np.asarray(slots).ravel())

    def observe(self, losses: np.ndarray) -> None:
        """The memory's per-sample losses, just recomputed by an importance update."""
        self.count += 1
        if self.count % self.lr_period:
            return
        losses = np.asarray(losses, dtype=np.float64)
        if self.prev is not None and self.count > BURN_IN:
            n = min(len(self.prev), len(losses))
            keep = np.ones(n, dtype=bool)
            gone = [s for s in self.replaced if s < n]
            keep[gone] = False
            if keep.any():
                window = self.high_window if self.is_high else self.low_window
                window.append(float(np.mean((self.prev[:n] - losses[:n])[keep])))
                if len(window) > self.lr_length:
                    del window[0]
        self.prev = losses.copy()
        self.is_high = not self.is_high
        self.replaced = []
        if len(self.high_window) == len(self.low_window) >= self.lr_length:
            self._test()

    def _test(self) -> None:
        from scipy.stats import ttest_ind

        p = ttest_ind(self.low_window, self.high_window, equal_var=False,
                      alternative="greater").pvalue
        if p < self.significance:  # the lower rate decreases the loss more: go down
            self.high, self.low = self.low, self.low * self.lr_step
        elif p > 1 - self.significance:  # the higher rate does: go up
            self.high, self.low = self.high / self.lr_step, self.high
        else:
            return
        self.high_window, self.low_window = [], []
        self.is_high = not self.is_high  # the same kind of rate as before the switch

    def state_dict(self) -> dict:
        return {"high": self.high, "low": self.low, "is_high": self.is_high,
                "high_window": list(self.high_window), "low_window": list(self.low_window),
                "prev": None if self.prev is None else self.prev.copy(), "count": self.count,
                "replaced": list(self.replaced)}

    def load_state_dict(self, state: dict) -> None:
        self.high, self.low = float(state["high"]), float(state["low"])
        self.is_high = bool(state["is_high"])
        self.high_window = [float(v) for v in state["high_window"]]
        self.low_window = [float(v) for v in state["low_window"]]
        self.prev = None if state["prev"] is None else np.asarray(state["prev"], np.float64)
        self.count = int(state["count"])
        self.replaced = [int(s) for s in state["replaced"]]
