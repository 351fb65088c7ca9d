"""The stream loop's event records (loop layer, docs/design.md): the start record, and one
eval record per scheduled evaluation with the family evaluator's counts, the online counts,
the budget counters and the mean training loss since the previous record."""

from __future__ import annotations

import time

import numpy as np

from clenv.events import EventLog
from clenv.families.base import Family


def start_record(cfg: dict, env, family: Family, every: int, limits: dict) -> dict:
    """The start record of a stream run: everything the metrics need besides the evals."""
    stream, sc = env.stream, cfg["scenario"]
    return {
        "type": "start", "format": 3, "name": cfg["name"], "strategy": cfg["strategy"]["name"],
        "generator": stream.generator, "n_classes": env.n_classes,
        "class_names": env.pool.class_names, "n_tasks": stream.n_tasks,
        "n_domains": stream.n_domains,
        "columns": [np.asarray(c).tolist() for c in stream.columns],
        "column_names": stream.column_names, "first_row": stream.first_row,
        "square": stream.square, "task_starts": stream.task_starts.tolist(),
        "task_ends": stream.task_ends.tolist(),
        "unit_first_position": stream.unit_first_position.tolist(),
        "first_position": stream.first_position.tolist(), "stream_length": stream.length,
        "batch_size": env.B, "eval_every": every, "budget_limits": limits,
        "seed": cfg["seed"], "scenario_seed": sc["seed"], "lifelong": stream.meta,
        "multi_label": env.multi_label, "threshold": cfg["eval"]["threshold"],
        "family": family.name,
        "levels": stream.levels, "level_sizes": list(getattr(stream, "level_sizes", [])),
        "level_offsets": list(getattr(stream, "level_offsets", [])),
    }


class Recorder:
    """Writes the eval (and validation) records of one pass; ``state`` holds the loop's
    counters (steps, reward and loss sums) and ``scores`` the saved task-end scores, both
    saved and restored by checkpoints."""

    def __init__(self, cfg: dict, env, strategy, family: Family, log: EventLog,
                 wall: dict) -> None:
        self.env, self.stream, self.strategy, self.log, self.wall = (
            env, env.stream, strategy, log, wall)
        self.family = family
        self.evaluator = family.evaluator(env.pool, env.stream, cfg)
        val_pool = getattr(env, "validation_pool", None)  # scenario.validation
        self.val_evaluator = (family.evaluator(val_pool, env.stream, cfg)
                              if val_pool is not None else None)
        self.save_scores = cfg["output"]["save_scores"]
        self.scores: dict[str, np.ndarray] = {}
        self.state = {"steps": 0, "reward_sum": 0.0, "loss_sum": 0.0, "loss_count": 0}
        self.t_start = time.perf_counter()

    def _fwt_masks(self) -> np.ndarray | None:
        """Per column, the classes usable when R[j-1][j] is measured (the FWT baseline)."""
        stream = self.stream
        if not (stream.square and self.family.fwt_baseline):
            return None
        masks = np.zeros((stream.n_tasks, self.env.n_classes), dtype=bool)
        for j in range(1, stream.n_tasks):
            masks[j] = stream.seen_mask(int(stream.task_ends[j - 1]))
        return masks

    def __call__(self, kind: str, **extra) -> None:
        tp = time.perf_counter()
        prepare_evaluation(self.strategy)  # e.g. GDumb retrains here: training time
        self.wall["train"] += time.perf_counter() - tp
        te = time.perf_counter()
        env, stream, state = self.env, self.stream, self.state
        pos = env.position
        seen, units = stream.seen_mask(pos), stream.seen_units(pos)
        fwt_masks = self._fwt_masks() if kind == "init" else None
        aware = self.family.task_aware and kind in ("init", "task_end")
        counts, scores = self.evaluator.evaluate(
            self.strategy, seen, task_aware=aware, fwt_masks=fwt_masks,
            seen_units=units if kind in ("anytime", "probe") else None)
        if self.save_scores and kind == "task_end" and scores is not None:
            self.scores[f"row_{extra['row']}"] = scores.astype(np.float16)
        rec = {"type": "eval", "kind": kind, "samples": pos, "steps": state["steps"],
               "task": int(min(stream.task_at(max(pos - 1, 0)), stream.n_tasks - 1)),
               "seen": np.flatnonzero(units).tolist(), "counts": counts,
               "online": {"correct": env.online_correct, "count": env.online_count},
               "reward_sum": state["reward_sum"], "budget": self.strategy.counters(),
               "train_loss": (state["loss_sum"] / state["loss_count"] if state["loss_count"]
                              else None),  # mean of learn()'s losses since the last eval
               "wall": round(time.perf_counter() - self.t_start, 6), **extra}
        if kind == "task_end" and hasattr(stream, "task_samples"):  # plasticity streams
            rec["own_accuracy"] = own_accuracy(self.strategy, env, extra["row"])
        diagnose = getattr(self.strategy, "diagnostics_record", None)  # diagnostics: true
        if diagnose is not None and (diag := diagnose()) is not None:
            rec["diagnostics"] = diag
        state["loss_sum"], state["loss_count"] = 0.0, 0
        self.log.write(rec)
        if self.val_evaluator is not None and kind in ("init", "task_end"):
            vcounts, _ = self.val_evaluator.evaluate(self.strategy, seen,
                                                     task_aware=self.family.task_aware,
                                                     fwt_masks=fwt_masks)
            self.log.write({**rec, "type": "validation", "counts": vcounts})
        self.wall["eval"] += time.perf_counter() - te


def own_accuracy(strategy, env, task: int) -> float:
    """Training accuracy of ``strategy`` on the samples task ``task`` trained on, with the
    labels and input domain it saw them with (``stream.task_samples``: the plasticity of a
    random-label task, docs/plasticity.md)."""
    from clenv.evaluation.base import batched_scores

    stream = env.stream
    idx, y, domain = stream.task_samples(task)

    def inputs(rows: np.ndarray) -> np.ndarray:
        x = env.pool.x[idx[rows]]
        if domain:  # a fixed transform (permutation): the generator is not drawn from
            x = stream.transform(x, domain, np.random.default_rng(0))
        return x

    (scores,) = batched_scores(strategy, inputs, np.arange(len(idx)), [env.n_classes], 512)
    return float((scores.argmax(1) == y).mean()) if len(idx) else 0.0


def prepare_evaluation(strategy) -> None:
    """Tell a strategy that an evaluation follows (its optional ``prepare_evaluation`` hook:
    GDumb retrains on its memory there, iCaRL refreshes its class means)."""
    hook = getattr(strategy, "prepare_evaluation", None)
    if hook is not None:
        hook()
