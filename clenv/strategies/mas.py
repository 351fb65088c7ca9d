"""Memory Aware Synapses (Aljundi et al. 2018, "Memory Aware Synapses: Learning what (not) to
forget"): importance from the sensitivity of the squared output norm.

At each task end, on the task's kept samples, Omega_new = mean_b |d/d theta mean_{x in b}
||f(x)||_2^2| (batch-level gradients of the raw logits' squared L2 norm, as Avalanche 0.6's
MASPlugin, itself after FACIL; ``importance_grads: sample`` averages per-sample absolute
gradients, as the paper, with the model in eval mode). Importances accumulate as
Omega = alpha * Omega_old + (1 - alpha) * Omega_new (the first task: Omega_new), the anchor is
the parameters at the task end, and the loss is L + lambda * sum_i Omega_i (theta_i - theta*_i)^2.
"""

from __future__ import annotations

from clenv.strategies.penalty import PenaltyStrategy
from clenv.strategies.registry import STRATEGIES


class MAS(PenaltyStrategy):
    """MAS: output-sensitivity importances, decayed across tasks."""

    fields = STRATEGIES["mas"].fields
    families = ("single_label",)
    strength_key = "lambda_reg"
    keeps_task_samples = True

    def consolidate(self, task: int) -> None:
        if self.task_memory.size == 0:
            return
        model = self.model
        if self._mode_matters:  # Avalanche's MAS computes importances in training mode
            model.eval() if self.per_sample else model.train()
        params = self.params_list()
        imp = self.importance(lambda out, y: out.square().sum(1).mean(), "abs")
        if self.quad.active:
            alpha = float(self.param("alpha"))
            imp = [alpha * old[0] + (1 - alpha) * new
                   for old, new in zip(self.quad.importances, imp, strict=True)]
        self.quad.replace(imp, [p.detach() for p in params])
