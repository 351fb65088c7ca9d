"""A validation split held out of the training pool, for CL-legal hyper-parameter selection.

``scenario.validation: f`` takes, for every class (so every task of a class-incremental stream
gives up the same share), round(f * n_c) of its n_c training samples, drawn without
replacement from ``SeedSequence([scenario.seed, 0x7A11D])`` — the same samples for every
learner of a seed. They leave the training pool before the stream is built, so no learner
trains on them, and are evaluated at initialisation and at every task end beside the test set
(``validation`` records in events.jsonl); metrics.json ``validation`` holds the accuracy matrix
and its metrics computed from them. Multi-label pools hold out round(f * n) training images.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from clenv.data.pool import Pool

VALIDATION_KEYS = ("accuracy_matrix", "final_accuracy", "avg_incremental_accuracy",
                   "average_forgetting", "forgetting_chaudhry", "bwt", "map", "average_map",
                   "cf1", "of1")


def held_out_indices(pool: Pool, fraction: float, seed: int) -> np.ndarray:
    """Sorted pool indices of the validation split (see the module doc)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A11D]))
    train = pool.train_indices
    if pool.y.ndim == 2:
        k = int(round(fraction * len(train)))
        return np.sort(rng.choice(train, size=k, replace=False))
    y = pool.y[train]
    order = np.argsort(y, kind="stable")
    classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    picks = []
    for start, n in zip(starts.tolist(), counts.tolist(), strict=True):  # one draw per class
        k = int(round(fraction * n))
        if k:
            picks.append(train[order[start:start + n]][rng.choice(n, size=k, replace=False)])
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def carve_validation(pool: Pool, fraction: float, seed: int) -> tuple[Pool, Pool]:
    """(training pool without the validation samples, validation pool whose every sample is
    an evaluation sample)."""
    held = np.zeros(len(pool.y), dtype=bool)
    held[held_out_indices(pool, fraction, seed)] = True
    keep = ~held
    rest = dataclasses.replace(pool, x=pool.x[keep], y=pool.y[keep], train=pool.train[keep])
    val = dataclasses.replace(pool, x=pool.x[held], y=pool.y[held],
                              train=np.zeros(int(held.sum()), dtype=bool),
                              name=f"{pool.name}-validation")
    return rest, val


def validation_metrics(events: list[dict]) -> dict:
    """The metrics of the validation records, computed as summarize() computes the test ones
    (the validation records stand in for the init and task-end evaluations)."""
    from clenv.metrics.summary import summarize

    val = [{**e, "type": "eval"} for e in events if e["type"] == "validation"]
    other = [e for e in events if e["type"] in ("start", "end")]
    m = summarize(other[:1] + val + other[1:])
    return {k: m[k] for k in VALIDATION_KEYS if k in m}
