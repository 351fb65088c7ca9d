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

from clenv import results
from clenv.agcd.config import AGCD_STRATEGY_FIELDS
from clenv.agcd.learner import build_learner
from clenv.agcd.queries import priorities, rank_candidates
from clenv.agcd_env import ActiveDiscoveryEnv
from clenv.atomic import write_json_atomic, write_text_atomic
from clenv.config.loader import dump_config
from clenv.config.schema import Field
from clenv.errors import UserError
from clenv.events import EventLog
from clenv.families.discovery import make_agcd_env  # noqa: F401 (its old import path)
from clenv.metrics.active_discovery import summarize_agcd
from clenv.metrics.clustering import contingency
from clenv.provenance import provenance
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
    results folder (config.yaml, run.json, events.jsonl, metrics.json, agcd_rounds.png)."""
    if resume:
        raise UserError("agcd runs cannot resume (a run takes seconds): run it again without "
                        "--resume")
    cfg, env, pool = run.cfg, run.env, run.pool
    t0 = time.perf_counter()
    params = make_strategy(cfg["strategy"]).params
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:  # the Runner holds the folder's lock (clenv.results)
        results.start_run(out)
        write_text_atomic(out / "config.yaml", dump_config(cfg))
        write_json_atomic(out / "run.json", provenance(cfg, split_sha256(env)))
    log = EventLog(out / "events.jsonl" if out is not None else None)
    wall = {"setup": 0.0, "train": 0.0, "query": 0.0, "eval": 0.0}
    try:
        obs, info = env.reset()
        cand, labelled = info["candidates"], info["labelled"]
        old = info["old_classes"]
        new = env.split["new"]
        K = len(old) + len(new)
        test = pool.test_indices
        learner = build_learner(params, cfg["model"], pool.shape, cfg["seed"], cfg["device"])
        learner.setup(pool.x[labelled], info["labelled_y"], pool.x[cand], old, K)
        wall["setup"] = time.perf_counter() - t0
        log.write({"type": "start", "format": 1, "generator": "agcd", "family": "discovery",
                   "name": cfg["name"],
                   "strategy": cfg["strategy"]["name"], "learner": params["learner"],
                   "query": params["query"], "n_classes": pool.n_classes,
                   "class_names": pool.class_names, "n_clusters": K,
                   "old_classes": old.tolist(), "new_classes": new.tolist(),
                   "rounds": env.R, "budget": env.b, "n_candidates": env.N,
                   "n_labelled": len(labelled), "n_test": len(test), "seed": cfg["seed"],
                   "scenario_seed": cfg["scenario"]["seed"]})

        def evaluate(r: int) -> None:
            te = time.perf_counter()
            rec = {"type": "eval", "round": r}
            for split, ids in (("transductive", cand), ("inductive", test)):
                pred = learner.logits(pool.x[ids]).argmax(1)
                rec[split] = contingency(pool.y[ids], pred, pool.n_classes, K).tolist()
            wall["eval"] += time.perf_counter() - te
            rec.update(budget=learner.counters(), mapping=_mapping_json(learner.mapping()),
                       wall=round(time.perf_counter() - t0, 6))
            log.write(rec)

        tt = time.perf_counter()
        learner.train(params["base_epochs"])
        wall["train"] += time.perf_counter() - tt
        evaluate(0)
        rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], 0xA6CD]))
        bought = np.zeros(0, dtype=np.int64)  # candidate positions labelled so far
        bar = None
        if progress:
            from clenv.progress import progress_bar

            bar = progress_bar(env.R, "round", cfg["name"])
        for r in range(1, env.R + 1):  # query rounds count from 1, as train_al_ema.py's loop
            tq = time.perf_counter()
            query = params["query"]
            if query in ("none", "all"):
                obs, _, _, _, qinfo = env.unwrapped.query([])
                positions = qinfo["indices"]
                if query == "all" and r == 1:  # the reference reads the oracle directly
                    positions = np.arange(env.N)
                labels = pool.y[cand[positions]]
            else:
                open_idx = np.flatnonzero(obs["unlabelled"])
                x_open = pool.x[cand[open_idx]]
                feats = lab_feats = None
                if query == "kcenter":
                    feats = learner.features(x_open)
                    lab_feats = learner.features(pool.x[np.concatenate([labelled,
                                                                        cand[bought]])])
                order = rank_candidates(
                    query, logits=learner.logits(x_open) if query != "kcenter" else
                    np.zeros((len(open_idx), K), np.float32), features=feats,
                    labelled_features=lab_feats, n_old=len(old), budget=env.b, round_=r,
                    adaptive_round=params["adaptive_round"], rng=rng)
                obs, _, _, _, qinfo = env.step(priorities(order, open_idx, env.N))
                positions, labels = qinfo["indices"], qinfo["labels"]
            bought = np.concatenate([bought, positions])
            learner.add_queries(positions, labels)
            wall["query"] += time.perf_counter() - tq
            log.write({"type": "query", "round": r, "indices": positions.tolist(),
                       "sample_ids": cand[positions].tolist(), "labels": labels.tolist(),
                       "reference": query == "all"})
            tt = time.perf_counter()
            learner.train(params["epochs_per_round"])
            wall["train"] += time.perf_counter() - tt
            evaluate(r)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        wall["total"] = time.perf_counter() - t0
        log.write({"type": "end", "budget": learner.counters(), "wall": wall})
    finally:
        log.close()
    metrics = summarize_agcd(log.records)
    if out is not None:
        if cfg["output"]["plots"]:
            from clenv.agcd.plots import plot_agcd_rounds

            tmp = out / ".tmp-agcd_rounds.png"
            plot_agcd_rounds([out], tmp)
            os.replace(tmp, out / "agcd_rounds.png")
        results.write_metrics_last(out, metrics)
    return metrics
