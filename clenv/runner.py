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

import clenv.progress as bars  # looked up at call time (tests swap the bar)
from clenv import checkpoint, results
from clenv.agcd.loop import run_agcd
from clenv.atomic import write_text_atomic
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
from clenv.recorder import Recorder, prepare_evaluation, start_record
from clenv.run_files import begin_results, write_end
from clenv.schedule import Schedule
from clenv.strategies.base import Strategy, resolve_device
from clenv.strategies.registry import make_strategy
from clenv.strategies.spec import StrategySpec


def make_env(cfg: dict, pool: Pool):
    """The Env of a validated config (its family's)."""
    return choose(cfg, pool)[1]


# a family's per-task matrix and its heatmap are files of the run folder (clenv.results)
for _family in FAMILIES:
    results.register_run_file(f"{_family.matrix}.csv")
    results.register_run_file(f"{_family.matrix}.png")

# the drivers of loops other than the stream loop, by Family.loop (one line per loop)
ROUND_LOOPS = {"query_rounds": run_agcd}


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
        if self.family.loop != "stream":  # query rounds: their own driver, same folder rules
            return ROUND_LOOPS[self.family.loop](self, out, progress=progress, resume=resume)
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
            begin_results(out, cfg, stream_sha, results.RESUME_KEEPS if resumed is not None
                          else frozenset())
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
            write_end(log, wall, t0, **end)
        finally:
            log.close()
            close_loggers(loggers)
        metrics = self.family.summarize(log.records)
        if self.validation_pool is not None:
            from clenv.validation import validation_metrics

            metrics["validation"] = validation_metrics(log.records)
        if out is not None:
            write_results(out, metrics, cfg, self.family)
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
        prepare_evaluation(copy)
        counts, _ = evaluator.evaluate(copy, seen, task_aware=False, columns=[pair["b"]])
        log.write({"type": "scratch", "pair": i, "samples": stop - start, "counts": counts})


def _joint_params(cfg: dict) -> dict:
    s = cfg["strategy"]
    keep = ("optimizer", "lr", "momentum", "weight_decay")
    return {k: s[k] for k in keep if k in s}


def write_results(out: Path, metrics: dict, cfg: dict, family: Family | None = None) -> None:
    """The family's per-task matrix as ``<family.matrix>.csv`` (accuracy_matrix.csv unless
    the family says otherwise), the figures, then metrics.json strictly last (clenv.results)."""
    matrix = family.matrix if family is not None else "accuracy_matrix"
    R = metrics[matrix]
    lines = ["row," + ",".join(f"task_{j}" for j in range(metrics["n_tasks"]))]
    lines += [f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(R)]
    write_text_atomic(out / f"{matrix}.csv", "\n".join(lines) + "\n")
    if cfg["output"]["plots"]:
        from clenv.plots import save_run_figures

        save_run_figures(out, metrics, *([family] if family is not None else []))
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
    family = family or stream_family(cfg, env)
    obs, _ = env.reset(seed=cfg["scenario"]["seed"])
    if not set_up:
        strategy.setup(make_spec(cfg, env, family))
        if checkpoint is not None:  # an uncheckpointable strategy is refused before any work
            strategy.state_dict()
    every = cfg["eval"]["every"] if anytime else 0
    limits = {k: v for k, v in cfg["budget"].items() if v is not None}
    if resume is None:
        log.write(start_record(cfg, env, family, every, limits))
    wall.update(train=0.0, eval=0.0)
    record = Recorder(cfg, env, strategy, family, log, wall)
    schedule = Schedule(env.stream, every)
    if resume is None:
        record("init")
    bar = bars.progress_bar(env.stream.length, "samples", cfg["name"]) if progress else None
    if resume is not None:  # continue from the checkpoint's position and schedule
        obs = resume.restore(strategy, env, record.state, record.scores)
        schedule.restore(resume.loop)
    stream_loop(obs, env, strategy, family.decoder(cfg), schedule, record,
                exposed=cfg["scenario"]["boundaries"] == "exposed", checkpoint=checkpoint,
                bar=bar)
    if schedule.end_needs_anytime(env.position):  # A_last: at the end of the stream
        record("anytime")
    if bar is not None:
        bar.update(env.position - bar.n)
        bar.close()
    counters = strategy.counters()
    if cfg["output"]["save_scores"] and out is not None:
        np.savez_compressed(out / "scores.npz", **record.scores)
    state = record.state
    return {"samples": env.position, "steps": state["steps"],
            "online": {"correct": env.online_correct, "count": env.online_count},
            "reward_sum": state["reward_sum"], "budget": counters,
            "budget_exceeded": _budget_check(limits, counters, env.stream.length, env.B)}


def stream_loop(obs: dict, env: ContinualEnv, strategy: Strategy, decode, schedule: Schedule,
                record: Recorder, *, exposed: bool, checkpoint=None, bar=None) -> None:
    """Test-then-train over the rest of the stream: predict, decode the action, step, learn;
    the schedule's evaluations at the positions where they fall due."""
    state, log, wall = record.state, record.log, record.wall
    drain = getattr(strategy, "drain_events", list)  # plug-in events (forgetting resets)
    tt = time.perf_counter()
    terminated = False
    while not terminated:
        if exposed and schedule.started < schedule.next_task:
            strategy.on_task_start(schedule.task_to_start())
        new_obs, reward, terminated, _, info = env.step(decode(strategy.predict(obs)))
        losses = strategy.learn(obs, info)
        if losses and losses.get("loss") is not None:
            state["loss_sum"] += float(losses["loss"])
            state["loss_count"] += 1
        for ev in drain():
            log.write({"type": "event", **ev, "samples": env.position,
                       "env_step": state["steps"] + 1})
        obs = new_obs
        state["steps"] += 1
        state["reward_sum"] += reward
        pos = env.position
        if bar is not None and state["steps"] % 50 == 0:
            bar.update(pos - bar.n)  # drawn after the bar's delay, at most ~10 times a second
        if pos >= schedule.next_due:
            for kind, extra in schedule.due(pos, terminated):
                wall["train"] += time.perf_counter() - tt
                if exposed and kind == "task_end":
                    strategy.on_task_end(extra["row"])
                record(kind, **extra)
                tt = time.perf_counter()
        if checkpoint is not None and not terminated and checkpoint.due(pos):
            checkpoint.save(strategy, env, log, state, record.scores, schedule.loop_state())
    wall["train"] += time.perf_counter() - tt
