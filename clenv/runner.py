"""The Runner (loop layer, docs/design.md): drives the Env with a strategy (test-then-train),
schedules evaluation, counts budgets, writes the results folder (config.yaml, run.json,
events.jsonl, metrics.json, accuracy_matrix.csv, figures)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from clenv import checkpoint, results
from clenv.atomic import write_json_atomic, write_text_atomic
from clenv.config.loader import dump_config
from clenv.data.pool import Pool
from clenv.data.registry import load_pool
from clenv.data.tree import parents
from clenv.env import ContinualEnv
from clenv.errors import UserError
from clenv.evaluation.single_label import Evaluator
from clenv.events import EventLog
from clenv.families.base import Family
from clenv.families.registry import FAMILIES, choose
from clenv.loggers import close_loggers, open_loggers
from clenv.provenance import provenance
from clenv.strategies.base import Strategy, resolve_device
from clenv.strategies.registry import make_strategy
from clenv.strategies.spec import StrategySpec


def make_env(cfg: dict, pool: Pool):
    """The Env of a validated config (its family's)."""
    return choose(cfg, pool)[1]


def stream_family(cfg: dict, env) -> Family:
    """The family that claims an Env's stream (for callers that built the Env themselves)."""
    return next(f for f in FAMILIES if f.claims(cfg, env.stream))


def make_spec(cfg: dict, env: ContinualEnv, family: Family | None = None) -> StrategySpec:
    """What the strategy learns at setup; ``family``: the run's Family record (None: the one
    that claims the Env's stream)."""
    sc, budget = cfg["scenario"], cfg["budget"]
    family = family or stream_family(cfg, env)
    return StrategySpec(
        input_shape=env.pool.shape, image=env.pool.is_image, n_classes=env.n_classes,
        batch_size=env.B, stream_length=env.stream.length, n_tasks=env.stream.n_tasks,
        task_ids=sc["task_ids"], boundaries=sc["boundaries"] == "exposed",
        multi_label=env.multi_label,
        levels=env.stream.levels, level_sizes=list(getattr(env, "level_sizes", [env.n_classes])),
        parents=(parents(env.pool) if env.stream.levels > 1 else []),
        device=str(resolve_device(cfg["device"])), seed=cfg["seed"],
        memory_size=budget["memory_size"], updates_per_sample=budget["updates_per_sample"],
        epochs=sc.get("epochs", 1), model=cfg["model"],
        task_ends=(env.stream.task_ends.tolist() if sc["boundaries"] == "exposed" else []),
        family=family.name)


class Run:
    """One run: the pool, Env, strategy, evaluator and event log of a resolved config."""

    def __init__(self, cfg: dict, pool: Pool | None = None) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg["threads"])
        self.pool = pool if pool is not None else load_pool(cfg["data"])
        self.validation_pool: Pool | None = None
        if cfg["scenario"].get("validation"):  # held out of training (clenv.validation)
            from clenv.validation import carve_validation

            self.pool, self.validation_pool = carve_validation(
                self.pool, cfg["scenario"]["validation"], cfg["scenario"]["seed"])
        self.family, self.env = choose(cfg, self.pool)  # the one place a family is chosen
        self.env.validation_pool = self.validation_pool

    def execute(self, out_dir: str | os.PathLike | None, *, progress: bool = False,
                resume: bool = False, force: bool = False) -> dict:
        """Run the episode (and the joint reference if asked); write the results folder.
        ``resume``: continue from out_dir/checkpoint.pt when there is one (clenv.checkpoint).
        The folder is locked for the run, cleared of a previous run's files, refused when it
        holds files clenv did not write unless ``force``, and gets metrics.json last
        (clenv.results)."""
        if out_dir is None:
            return self._execute(None, progress=progress, resume=resume)
        out = Path(out_dir)
        results.refuse_foreign(out, results.run_files(), force)  # before the lock file
        created = not out.exists()
        try:
            with results.FolderLock(out), results.guard_writes(out):
                return self._execute(out, progress=progress, resume=resume)
        except UserError:  # a user error leaves no folder behind that the run created
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise

    def _execute(self, out: Path | None, *, progress: bool, resume: bool) -> dict:
        cfg = self.cfg
        if self.family.loop == "query_rounds":
            from clenv.agcd.loop import run_agcd

            return run_agcd(self, out, progress=progress, resume=resume)
        t0 = time.perf_counter()
        strategy = make_strategy(cfg["strategy"])
        stream_sha = self.env.stream.sha256() if out is not None else None
        # refusals (no state protocol, an unreadable or foreign checkpoint, setup's checks of
        # plug-in targets and heads, a state that cannot be checkpointed) before any file
        saver, resumed = checkpoint.prepare(cfg, out, strategy, resume, stream_sha=stream_sha)
        self.env.reset(seed=cfg["scenario"]["seed"])
        strategy.setup(make_spec(cfg, self.env, self.family))
        if saver is not None:
            strategy.state_dict()
        if out is not None:  # nothing is written before the checkpoint is accepted
            results.start_run(out, keep=results.RESUME_KEEPS if resumed is not None
                              else frozenset())
            write_text_atomic(out / "config.yaml", dump_config(cfg))
            write_json_atomic(out / "run.json", provenance(cfg, stream_sha))
        log = (resumed.event_log(out / "events.jsonl") if resumed is not None
               else EventLog(out / "events.jsonl" if out is not None else None))
        loggers = (open_loggers(cfg["output"]["loggers"], out, log) if out is not None
                   else [])  # written inside the folder, closed before metrics.json
        wall: dict = {"setup": time.perf_counter() - t0}
        try:
            end = episode(cfg, self.env, strategy, log, wall, progress=progress, out=out,
                          checkpoint=saver, resume=resumed, set_up=True, family=self.family)
            if self.env.stream.meta.get("related"):
                tr = time.perf_counter()
                scratch_copies(cfg, self.env, log)
                wall["transfer"] = time.perf_counter() - tr
            if cfg["eval"]["reference"] == "joint":
                tr = time.perf_counter()
                ref_cfg = {**cfg, "strategy": {"name": "joint", **_joint_params(cfg)}}
                ref_log = EventLog(None)
                episode(ref_cfg, self.env, make_strategy(ref_cfg["strategy"]), ref_log, {},
                        anytime=False, family=self.family)
                for e in ref_log.records:
                    if e["type"] == "eval" and e["kind"] == "task_end":
                        log.write({"type": "reference", "strategy": "joint", "row": e["row"],
                                   "counts": e["counts"]})
                wall["reference"] = time.perf_counter() - tr
            wall["total"] = time.perf_counter() - t0
            log.write({"type": "end", **end, "wall": wall})
        finally:
            log.close()
            close_loggers(loggers)
        metrics = self.family.summarize(log.records)
        if self.validation_pool is not None:
            from clenv.validation import validation_metrics

            metrics["validation"] = validation_metrics(log.records)
        if out is not None:
            write_results(out, metrics, cfg)
            checkpoint.discard(out)
        return metrics


def scratch_copies(cfg: dict, env: ContinualEnv, log: EventLog) -> None:
    """For each related pair (A -> B), a fresh copy of the strategy (same seed) learns exactly
    the samples of B's segment the learner had seen at its transfer probe, then is evaluated
    on B's test set: the from-scratch baseline of pair forward transfer."""
    stream = env.stream
    evaluator = Evaluator(env.pool, stream, cfg["eval"]["batch_size"])
    probes = {e["pair"]: e for e in log.records
              if e["type"] == "eval" and e["kind"] == "probe" and e.get("probe") == "transfer"}
    for i, pair in enumerate(stream.meta["related"]):
        if i not in probes:
            continue
        start, stop = pair["start"], probes[i]["samples"]
        copy = make_strategy(cfg["strategy"])
        copy.setup(make_spec(cfg, env))
        if cfg["scenario"]["boundaries"] == "exposed":
            copy.on_task_start(pair["segment"])
        for obs, info in env.iter_batches(start, stop):
            copy.learn(obs, info)
        part = stream.slice(start, stop)
        seen = np.zeros(env.n_classes, dtype=bool)
        seen[stream.labels_of(part["index"])] = True
        counts, _ = evaluator.evaluate(copy, seen, task_aware=False, columns=[pair["b"]])
        log.write({"type": "scratch", "pair": i, "samples": stop - start, "counts": counts})


def _joint_params(cfg: dict) -> dict:
    s = cfg["strategy"]
    keep = ("optimizer", "lr", "momentum", "weight_decay")
    return {k: s[k] for k in keep if k in s}


def write_results(out: Path, metrics: dict, cfg: dict) -> None:
    """accuracy_matrix.csv, the figures, then metrics.json strictly last (clenv.results)."""
    R = metrics["accuracy_matrix"]
    lines = ["row," + ",".join(f"task_{j}" for j in range(metrics["n_tasks"]))]
    lines += [f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(R)]
    write_text_atomic(out / "accuracy_matrix.csv", "\n".join(lines) + "\n")
    if cfg["output"]["plots"]:
        from clenv.plots import save_run_figures

        save_run_figures(out, metrics)
    results.write_metrics_last(out, metrics)


def _budget_check(limits: dict, counters: dict, stream_samples: int, batch: int) -> list[str]:
    exceeded = []
    mem = limits.get("memory_size")
    if mem is not None and counters.get("buffer_samples", 0) > mem:
        exceeded.append(f"memory_size: buffer holds {counters['buffer_samples']} samples "
                        f"> {mem}")
    ups = limits.get("updates_per_sample")
    if ups is not None and counters.get("grad_steps", 0) > ups * stream_samples + max(1, batch):
        exceeded.append(f"updates_per_sample: {counters['grad_steps']} gradient steps for "
                        f"{stream_samples} stream samples > {ups:g} per sample")
    return exceeded


def episode(cfg: dict, env: ContinualEnv, strategy: Strategy, log: EventLog, wall: dict, *,
            progress: bool = False, anytime: bool = True, out: Path | None = None,
            checkpoint=None, resume=None, set_up: bool = False,
            family: Family | None = None) -> dict:
    """One full pass over the stream; writes start and eval records to ``log``, adds phase
    times to ``wall`` and returns the fields of the end record. ``checkpoint`` (a
    clenv.checkpoint.Checkpointer) saves the loop's state as it goes; ``resume`` (a
    clenv.checkpoint.Resumed) continues from a saved state instead of the stream's start.
    ``set_up``: the caller already ran ``strategy.setup`` on this Env's spec. ``family``: the
    run's Family record (None: the one that claims the Env's stream)."""
    sc = cfg["scenario"]
    family = family or stream_family(cfg, env)
    obs, _ = env.reset(seed=sc["seed"])
    stream = env.stream
    if not set_up:
        strategy.setup(make_spec(cfg, env, family))
        if checkpoint is not None:  # an uncheckpointable strategy is refused before any work
            strategy.state_dict()
    multi_label = env.multi_label
    threshold = cfg["eval"]["threshold"]
    evaluator = family.evaluator(env.pool, stream, cfg)
    val_pool = getattr(env, "validation_pool", None)  # scenario.validation (clenv.validation)
    val_evaluator = (family.evaluator(val_pool, stream, cfg) if val_pool is not None
                     else None)
    decode = family.decoder(cfg)
    task_aware = family.task_aware
    T = stream.n_tasks
    every = cfg["eval"]["every"] if anytime else 0
    limits = {k: v for k, v in cfg["budget"].items() if v is not None}
    start_record = {
        "type": "start", "format": 3, "name": cfg["name"], "strategy": cfg["strategy"]["name"],
        "generator": stream.generator, "n_classes": env.n_classes,
        "class_names": env.pool.class_names, "n_tasks": T, "n_domains": stream.n_domains,
        "columns": [np.asarray(c).tolist() for c in stream.columns],
        "column_names": stream.column_names, "first_row": stream.first_row,
        "square": stream.square, "task_starts": stream.task_starts.tolist(),
        "task_ends": stream.task_ends.tolist(),
        "unit_first_position": stream.unit_first_position.tolist(),
        "first_position": stream.first_position.tolist(), "stream_length": stream.length,
        "batch_size": env.B, "eval_every": every, "budget_limits": limits,
        "seed": cfg["seed"], "scenario_seed": sc["seed"], "lifelong": stream.meta,
        "multi_label": multi_label, "threshold": threshold, "family": family.name,
        "levels": stream.levels, "level_sizes": list(getattr(stream, "level_sizes", [])),
        "level_offsets": list(getattr(stream, "level_offsets", [])),
    }
    if resume is None:
        log.write(start_record)
    wall.update(train=0.0, eval=0.0)
    exposed = sc["boundaries"] == "exposed"
    save_scores = cfg["output"]["save_scores"]
    scores_store: dict[str, np.ndarray] = {}
    state = {"steps": 0, "reward_sum": 0.0, "loss_sum": 0.0, "loss_count": 0}
    t_start = time.perf_counter()

    def record(kind: str, **extra) -> None:
        te = time.perf_counter()
        pos = env.position
        seen = stream.seen_mask(pos)
        units = stream.seen_units(pos)
        fwt_masks = None
        if kind == "init" and stream.square and family.fwt_baseline:
            fwt_masks = np.zeros((T, env.n_classes), dtype=bool)
            for j in range(1, T):
                fwt_masks[j] = stream.seen_mask(int(stream.task_ends[j - 1]))
        counts, sc_arr = evaluator.evaluate(
            strategy, seen, task_aware=task_aware and kind in ("init", "task_end"),
            fwt_masks=fwt_masks,
            seen_units=units if kind in ("anytime", "probe") else None)
        if save_scores and kind == "task_end" and sc_arr is not None:
            scores_store[f"row_{extra['row']}"] = sc_arr.astype(np.float16)
        rec = {"type": "eval", "kind": kind, "samples": pos, "steps": state["steps"],
               "task": int(min(stream.task_at(max(pos - 1, 0)), T - 1)),
               "seen": np.flatnonzero(units).tolist(), "counts": counts,
               "online": {"correct": env.online_correct, "count": env.online_count},
               "reward_sum": state["reward_sum"], "budget": strategy.counters(),
               "train_loss": (state["loss_sum"] / state["loss_count"] if state["loss_count"]
                              else None),  # mean of learn()'s losses since the last eval
               "wall": round(time.perf_counter() - t_start, 6), **extra}
        state["loss_sum"], state["loss_count"] = 0.0, 0
        log.write(rec)
        if val_evaluator is not None and kind in ("init", "task_end"):
            vcounts, _ = val_evaluator.evaluate(strategy, seen, task_aware=task_aware,
                                                fwt_masks=fwt_masks)
            log.write({**rec, "type": "validation", "counts": vcounts})
        wall["eval"] += time.perf_counter() - te

    if resume is None:
        record("init")
    bar = None
    if progress:
        from clenv.progress import progress_bar

        bar = progress_bar(stream.length, "samples", cfg["name"])
    task_ends = stream.task_ends.tolist()
    next_task = 0  # index of the next task end to reach
    next_eval = every if every else None
    probes = list(stream.probes)
    next_probe = probes[0][0] if probes else None
    started = -1
    n_probes = len(probes)
    if resume is not None:  # continue from the checkpoint's position and schedule
        obs = resume.restore(strategy, env, state, scores_store)
        next_task, next_eval, started = (resume.loop[k] for k in ("next_task", "next_eval",
                                                                   "started"))
        del probes[:resume.loop["probes_done"]]
        next_probe = probes[0][0] if probes else None
    tt = time.perf_counter()
    terminated = end_served = False
    while not terminated:
        if exposed and started < next_task:
            strategy.on_task_start(next_task)
            started = next_task
        action = decode(strategy.predict(obs))
        new_obs, reward, terminated, _, info = env.step(action)
        losses = strategy.learn(obs, info)
        if losses and losses.get("loss") is not None:
            state["loss_sum"] += float(losses["loss"])
            state["loss_count"] += 1
        for ev in getattr(strategy, "drain_events", list)():  # plug-in events (resets)
            log.write({"type": "event", **ev, "samples": env.position,
                       "env_step": state["steps"] + 1})
        obs = new_obs
        state["steps"] += 1
        state["reward_sum"] += reward
        pos = env.position
        if bar is not None and state["steps"] % 50 == 0:
            bar.update(pos - bar.n)  # drawn after the bar's delay, at most ~10 times a second
        # task ends first: a task hook (e.g. joint's retraining) is part of reaching pos
        while next_task < T and pos >= task_ends[next_task]:
            wall["train"] += time.perf_counter() - tt
            if exposed:
                strategy.on_task_end(next_task)
            # one record per position (events format 3): the last task end at pos also serves
            # as the anytime point due here, or as the one at the end of the stream
            last_here = next_task + 1 == T or pos < task_ends[next_task + 1]
            serves = last_here and bool(every) and (
                terminated or (next_eval is not None and pos >= next_eval))
            record("task_end", row=next_task,
                   **({"kinds": ["task_end", "anytime"]} if serves else {}))
            if serves:
                next_eval = (pos // every + 1) * every
                end_served = terminated
            next_task += 1
            tt = time.perf_counter()
        if next_eval is not None and pos >= next_eval:
            wall["train"] += time.perf_counter() - tt
            record("anytime")
            next_eval = (pos // every + 1) * every
            tt = time.perf_counter()
        while next_probe is not None and pos >= next_probe:
            wall["train"] += time.perf_counter() - tt
            record("probe", target=next_probe, **probes.pop(0)[1])
            next_probe = probes[0][0] if probes else None
            tt = time.perf_counter()
        if checkpoint is not None and not terminated and checkpoint.due(pos):
            checkpoint.save(strategy, env, log, state, scores_store, {
                "next_task": next_task, "next_eval": next_eval, "started": started,
                "probes_done": n_probes - len(probes)})
    wall["train"] += time.perf_counter() - tt
    if every and env.position % every and not end_served:  # A_last: at the end of the stream
        record("anytime")
    if bar is not None:
        bar.update(env.position - bar.n)
        bar.close()
    counters = strategy.counters()
    if save_scores and out is not None:
        np.savez_compressed(out / "scores.npz", **scores_store)
    return {"samples": env.position, "steps": state["steps"],
            "online": {"correct": env.online_correct, "count": env.online_count},
            "reward_sum": state["reward_sum"], "budget": counters,
            "budget_exceeded": _budget_check(limits, counters, stream.length, env.B)}
