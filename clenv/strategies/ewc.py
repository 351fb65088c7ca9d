"""Elastic Weight Consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting
in neural networks"): a quadratic penalty weighted by the diagonal empirical Fisher.

At each task end the Fisher is estimated on the task's kept samples as the mean over batches
of the squared batch gradient of the training loss, F_t = mean_b (d L_b / d theta)^2 (batch
level, as Avalanche 0.6's EWCPlugin), and the parameters theta*_t are stored. The loss is

- ``separate``: L + lambda * sum_{t' < t} sum_i F_t',i (theta_i - theta*_t',i)^2, one term per
  past task (the paper's penalty with lambda for its lambda / 2);
- ``online``: L + lambda * sum_i F~_i (theta_i - theta*_i)^2 with the running Fisher
  F~_t = gamma * F~_{t-1} + F_t and the anchor theta*_t of the last task end: online EWC of
  Schwarz et al. 2018 ("Progress & Compress", eq. 8-9), as Avalanche's ``mode="online"`` with
  ``decay_factor`` gamma.
"""

from __future__ import annotations

from clenv.strategies.penalty import PenaltyStrategy
from clenv.strategies.registry import STRATEGIES


class EWC(PenaltyStrategy):
    """EWC, separate (one Fisher per task) or online (decayed running Fisher)."""

    fields = STRATEGIES["ewc"].fields
    families = ("single_label", "multi_label", "hierarchical")
    strength_key = "ewc_lambda"
    keeps_task_samples = True

    def consolidate(self, task: int) -> None:
        if self.task_memory.size == 0:
            return
        model = self.model
        if self._mode_matters:
            model.eval()  # Avalanche's compute_importances runs the model in eval mode
        params = self.params_list()
        fisher = self.importance(self.loss, "square")
        anchors = [p.detach() for p in params]
        if self.param("mode") == "separate":
            self.quad.append(fisher, anchors)
            return
        if self.quad.active:
            gamma = float(self.param("decay_factor"))
            fisher = [gamma * old[0] + f for old, f in zip(self.quad.importances, fisher,
                                                           strict=True)]
        self.quad.replace(fisher, anchors)
