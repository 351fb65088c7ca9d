"""CLIB (Koh et al., ICLR 2022, "Online Continual Learning on Class Incremental Blurry Task
Configuration with Anytime Inference"), as the i-Blurry code runs it (naver-ai/i-Blurry,
methods/clib.py).

Per stream batch: (1) every sample is written to the importance memory
(clenv.strategies.importance_memory: when full, the least important sample of the largest
class is replaced; ``samplewise_importance_memory``); (2) ``n_steps`` gradient steps, each on
a batch of min(size, ``memory_batch_size``) memory samples drawn without replacement and no
stream sample (``online_train`` with stream_batch_size 0); (3) every ``importance_period``
steps (1 in i-Blurry) the memory's per-sample losses are recomputed and the importance of the
samples drawn since the last update moves by the released rule (``samplewise_loss_update``),
and the losses feed CLIB's adaptive learning rate when ``schedule: {type: adaptive}``
(clenv.training.adaptive_lr; the preset sets it, as the official default scheduler).

The official loop writes one sample, then trains; clenv writes the Env batch, then trains as
many steps as ``updates_per_sample`` credits (one per batch by default). docs/methods/clib.md.
"""

from __future__ import annotations

import numpy as np
import torch

from clenv.strategies.plfms import PLFMS
from clenv.strategies.registry import STRATEGIES
from clenv.strategies.spec import StrategySpec


class CLIB(PLFMS):
    """Importance memory, memory-only training steps and the adaptive rate, single-label."""

    fields = STRATEGIES["clib"].fields
    families = ("single_label",)

    def setup(self, spec: StrategySpec) -> None:
        self.params = {"importance_period": 1, "importance_ema": 0.9, **self.params,
                       "pseudo_labels": False, "flexible_sampling": False}
        if self.params.get("importance_period") is None:
            self.params["importance_period"] = 1
        super().setup(spec)
        self.replay_k = self.params.get("memory_batch_size") or spec.batch_size

    def learn(self, batch: dict, info: dict) -> dict[str, float]:
        x, y = self.stream_batch(batch, info)
        n = len(y)
        units = y.cpu().numpy()
        pseudo = np.zeros((n, 0), dtype=np.int64)
        slots = np.empty(n, dtype=np.int64)
        for i in range(n):  # the memory update comes first, sample by sample
            slots[i] = self.memory.choose_slot(int(units[i]))
            self.memory.put(int(slots[i]), x[i], y[i], int(units[i]), pseudo[i])
        if hasattr(self.lr_schedule, "note_replaced"):  # the adaptive rate skips new slots
            self.lr_schedule.note_replaced(slots)
        loss = None
        period = self.params["importance_period"]
        for _ in range(self.n_steps(n)):
            idx = torch.from_numpy(self.memory.sample(self.replay_k)).to(self.memory.x.device)
            loss = self.step(self.memory.x[idx], self.memory.y[idx])
            self.steps_since += 1
            if self.steps_since >= period:
                self.refresh()
        return {} if loss is None else {"loss": loss.item()}
