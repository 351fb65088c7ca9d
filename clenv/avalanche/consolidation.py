"""Task-boundary consolidation for Avalanche plugins in online mode.

Avalanche 0.6 marks the sub experiences of ``split_online_stream(...,
access_task_boundaries=True)`` with ``is_first_subexp`` / ``is_last_subexp``, but only model
adaptation and FeatureDistillation read them: EWC, LwF, SI, MAS, LFL, RWalk, GEM and AGEM
consolidate in ``after_training_exp``, i.e. after every mini experience (every Env batch), and
count experiences with ``clock.train_exp_counter``, i.e. batches.

``BoundaryGate`` wraps such a plugin: every callback is forwarded unchanged except the two
experience-level ones, ``before_training_exp`` (forwarded at a task's first batch) and
``after_training_exp`` (forwarded at its last batch, with ``strategy.experience`` set to the
whole task seen so far, so importances, distillation targets and episodic memories are taken
over the task's data, as in offline training). The adapter also keeps the strategy's
experience counter at the task index, so penalties index their per-task state by task.
"""

from __future__ import annotations

from collections.abc import Callable

CONSOLIDATING = ("EWCPlugin", "LwFPlugin", "SynapticIntelligencePlugin", "MASPlugin",
                 "LFLPlugin", "RWalkPlugin", "GEMPlugin", "AGEMPlugin")


class BoundaryGate:
    """Forwards a plugin's callbacks; the experience-level ones only at task boundaries.

    ``where()`` returns (first batch of a task, last batch of a task, the task experience
    holding every sample of the task seen so far).
    """

    def __init__(self, inner, where: Callable[[], tuple[bool, bool, object]]) -> None:
        self.inner = inner
        self.where = where

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def before_training_exp(self, strategy, **kwargs) -> None:
        first, _, _ = self.where()
        if first and hasattr(self.inner, "before_training_exp"):
            self.inner.before_training_exp(strategy, **kwargs)

    def after_training_exp(self, strategy, **kwargs) -> None:
        _, last, task_exp = self.where()
        if not (last and hasattr(self.inner, "after_training_exp")):
            return
        current = strategy.experience
        strategy.experience = task_exp
        try:
            self.inner.after_training_exp(strategy, **kwargs)
        finally:
            strategy.experience = current


def gate_plugins(strategy, where: Callable[[], tuple[bool, bool, object]]) -> list[str]:
    """Wrap the consolidating plugins of an Avalanche strategy in place; their class names."""
    gated = []
    for i, p in enumerate(strategy.plugins):
        if type(p).__name__ in CONSOLIDATING:
            strategy.plugins[i] = BoundaryGate(p, where)
            gated.append(type(p).__name__)
    return gated
