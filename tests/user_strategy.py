"""A user strategy named in YAML as tests.user_strategy:MajorityClass."""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.strategies.base import Strategy


class MajorityClass(Strategy):
    """Predicts the most frequent label seen so far."""

    fields = {"smoothing": Field(float, 0.0, "added to every count", min=0)}

    def setup(self, spec):
        super().setup(spec)
        self.counts = np.zeros(spec.n_classes) + self.params.get("smoothing", 0.0)

    def predict(self, obs):
        return np.tile(self.counts, (len(obs["x"]), 1)).astype(np.float32)

    def learn(self, batch, info):
        np.add.at(self.counts, info["y"][info["valid"]], 1)
        return {}
