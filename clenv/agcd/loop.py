"""The AGCD round loop behind ``clenv run`` for ``scenario.generator: agcd``.

Round 0 trains the learner on the initial labelled + unlabelled data; each round r = 1..R
ranks the still-unlabelled candidates with the query strategy, hands the Env the matching
priorities (the Env labels the top ``budget``), gives the oracle's labels to the learner (which
maps them to its clusters) and trains ``epochs_per_round`` epochs. After every round the log
gets the contingency matrices on the unlabelled candidates (transductive) and on the held-out
test split (inductive); metrics.json is a pure function of that log. ``query: none`` buys no
label (the lower reference, via the strict path with no index); ``query: all`` hands the learner
every candidate's label in round 1, outside the Env's budget (the upper reference)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import clenv.progress as bars  # looked up at call time (tests swap the bar)
from clenv import results
from clenv.agcd.config import AGCD_STRATEGY_FIELDS
from clenv.agcd.learner import build_learner
from clenv.agcd.queries import priorities, rank_candidates
from clenv.agcd_env import ActiveDiscoveryEnv
from clenv.config.schema import Field
from clenv.events import EventLog
from clenv.families.discovery import make_agcd_env  # noqa: F401 (its old import path)
from clenv.metrics.active_discovery import summarize_agcd
from clenv.metrics.clustering import contingency
from clenv.run_files import begin_results, write_end
from clenv.strategies.registry import make_strategy


class AGCDStrategy:
    """The ``agcd`` strategy section: a GCD learner and a query strategy (it drives the AGCD
    Env through :func:`run_agcd`, not the supervised predict/learn loop)."""

    fields: ClassVar[dict[str, Field]] = AGCD_STRATEGY_FIELDS

    def __init__(self, **params: Any) -> None:
        self.params = params


def split_sha256(env: ActiveDiscoveryEnv) -> str:
    """sha256 of the split (old classes, initially labelled ids, candidate ids)."""
    h = hashlib.sha256()
    for key in ("old", "labelled", "candidates"):
        h.update(np.ascontiguousarray(env.split[key], dtype=np.int64).tobytes())
    return h.hexdigest()


def _mapping_json(mapping: dict[int, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(mapping.items())}


def run_agcd(run, out_dir: str | os.PathLike | None, *, progress: bool = False,
             resume: bool = False) -> dict:
    """Play every query round of ``run`` (a clenv.runner.Run on an agcd scenario); write the
    results folder (config.yaml, run.json, events.jsonl, metrics.json, agcd_rounds.png).
    ``resume`` (how a sweep runs each run: continue from a checkpoint when there is one): an
    agcd run writes no checkpoint, so it starts over, the folder cleared of a previous try."""
    cfg, env, pool = run.cfg, run.env, run.pool
    t0 = time.perf_counter()
    params = make_strategy(cfg["strategy"]).params
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # the Runner holds the folder's lock (clenv.results)
        begin_results(out, cfg, split_sha256(env))
    log = EventLog(out / "events.jsonl" if out is not None else None)
    wall = {"setup": 0.0, "train": 0.0, "query": 0.0, "eval": 0.0}
    try:
        obs, info = env.reset()
        K = len(info["old_classes"]) + len(env.split["new"])
        learner = build_learner(params, cfg["model"], pool.shape, cfg["seed"], cfg["device"])
        learner.setup(pool.x[info["labelled"]], info["labelled_y"],
                      pool.x[info["candidates"]], info["old_classes"], K)
        wall["setup"] = time.perf_counter() - t0
        log.write(start_record(cfg, env, params, info, K))
        rounds = QueryRounds(cfg, env, learner, params, info, obs, log, wall, t0)
        rounds.train(params["base_epochs"])
        rounds.evaluate(0)
        bar = bars.progress_bar(env.R, "round", cfg["name"]) if progress else None
        for r in range(1, env.R + 1):  # query rounds count from 1, as train_al_ema.py's loop
            rounds.play(r)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        write_end(log, wall, t0, budget=learner.counters())
    finally:
        log.close()
    metrics = summarize_agcd(log.records)
    if out is not None:
        if cfg["output"]["plots"]:
            from clenv.agcd.plots import plot_agcd_rounds  # matplotlib: only for a figure

            tmp = out / ".tmp-agcd_rounds.png"
            plot_agcd_rounds([out], tmp)
            os.replace(tmp, out / "agcd_rounds.png")
        results.write_metrics_last(out, metrics)
    return metrics


def start_record(cfg: dict, env: ActiveDiscoveryEnv, params: dict, info: dict, K: int) -> dict:
    """The start record of an AGCD run: the split, the budget and the learner's names."""
    pool = env.pool
    return {"type": "start", "format": 1, "generator": "agcd", "family": "discovery",
            "name": cfg["name"],
            "strategy": cfg["strategy"]["name"], "learner": params["learner"],
            "query": params["query"], "n_classes": pool.n_classes,
            "class_names": pool.class_names, "n_clusters": K,
            "old_classes": info["old_classes"].tolist(), "new_classes": env.split["new"].tolist(),
            "rounds": env.R, "budget": env.b,
            "budget_per_class": env.split["budget_per_class"], "n_candidates": env.N,
            "n_labelled": len(info["labelled"]), "n_test": len(pool.test_indices),
            "seed": cfg["seed"], "scenario_seed": cfg["scenario"]["seed"]}


class QueryRounds:
    """One AGCD run's rounds: query the oracle through the Env, train, evaluate."""

    def __init__(self, cfg: dict, env: ActiveDiscoveryEnv, learner, params: dict, info: dict,
                 obs: dict, log: EventLog, wall: dict, t0: float) -> None:
        self.env, self.pool, self.learner, self.params = env, env.pool, learner, params
        self.log, self.wall, self.t0 = log, wall, t0
        self.cand, self.labelled, self.old = (info["candidates"], info["labelled"],
                                              info["old_classes"])
        self.K = len(self.old) + len(env.split["new"])
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0xA6CD]))
        self.bought = np.zeros(0, dtype=np.int64)  # candidate positions labelled so far
        self.obs = obs  # the Env's latest observation (which candidates are still open)

    def train(self, epochs: int) -> None:
        tt = time.perf_counter()
        self.learner.train(epochs)
        self.wall["train"] += time.perf_counter() - tt

    def evaluate(self, r: int) -> None:
        """Contingency matrices on the candidates (transductive) and the test split."""
        te = time.perf_counter()
        pool, learner = self.pool, self.learner
        rec = {"type": "eval", "round": r}
        for split, ids in (("transductive", self.cand), ("inductive", pool.test_indices)):
            pred = learner.logits(pool.x[ids]).argmax(1)
            rec[split] = contingency(pool.y[ids], pred, pool.n_classes, self.K).tolist()
        self.wall["eval"] += time.perf_counter() - te
        rec.update(budget=learner.counters(), mapping=_mapping_json(learner.mapping()),
                   wall=round(time.perf_counter() - self.t0, 6))
        self.log.write(rec)

    def play(self, r: int) -> None:
        """Round r: buy labels, hand them to the learner, train, evaluate."""
        tq = time.perf_counter()
        query = self.params["query"]
        positions, labels = (self.reference(r) if query in ("none", "all")
                             else self.ask(query, r))
        self.bought = np.concatenate([self.bought, positions])
        self.learner.add_queries(positions, labels)
        self.wall["query"] += time.perf_counter() - tq
        self.log.write({"type": "query", "round": r, "indices": positions.tolist(),
                        "sample_ids": self.cand[positions].tolist(), "labels": labels.tolist(),
                        "reference": query == "all"})
        self.train(self.params["epochs_per_round"])
        self.evaluate(r)

    def reference(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """query none (no label, via the strict path) or all (every candidate in round 1)."""
        self.obs, _, _, _, qinfo = self.env.unwrapped.query([])
        positions = qinfo["indices"]
        if self.params["query"] == "all" and r == 1:  # the reference reads the oracle directly
            positions = np.arange(self.env.N)
        return positions, self.pool.y[self.cand[positions]]

    def ask(self, query: str, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank the open candidates with the query strategy; the Env labels the top b."""
        env, pool, learner = self.env, self.pool, self.learner
        open_idx = np.flatnonzero(self.obs["unlabelled"])
        x_open = pool.x[self.cand[open_idx]]
        feats = lab_feats = None
        if query == "kcenter":
            feats = learner.features(x_open)
            lab_feats = learner.features(pool.x[np.concatenate([self.labelled,
                                                                self.cand[self.bought]])])
        order = rank_candidates(
            query, logits=learner.logits(x_open) if query != "kcenter" else
            np.zeros((len(open_idx), self.K), np.float32), features=feats,
            labelled_features=lab_feats, n_old=len(self.old), budget=env.b, round_=r,
            adaptive_round=self.params["adaptive_round"], rng=self.rng)
        self.obs, _, _, _, qinfo = env.step(priorities(order, open_idx, env.N))
        return qinfo["indices"], qinfo["labels"]
