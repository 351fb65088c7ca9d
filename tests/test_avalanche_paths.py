"""clenv <-> Avalanche both ways: export (to_benchmark), import (strategy: avalanche), the
samples each path trains on, task-boundary consolidation online, and one-line errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.conftest import SCENARIOS, one_line, require

require("avalanche")

from avalanche.core import SupervisedPlugin  # noqa: E402

from clenv.avalanche import export_stream, to_benchmark  # noqa: E402
from clenv.avalanche.strategy import AvalancheStrategy  # noqa: E402
from clenv.cli import main  # noqa: E402
from clenv.config.loader import load_config  # noqa: E402
from clenv.data.registry import load_pool  # noqa: E402
from clenv.errors import ConfigError  # noqa: E402
from clenv.events import EventLog  # noqa: E402
from clenv.runner import Run, episode, make_env, make_spec  # noqa: E402

BASE = {
    "name": "tiny_avalanche", "seed": 3,
    "scenario": {"generator": "disjoint", "seed": 1, "n_tasks": 3, "batch_size": 10},
    "data": {"source": "synthetic", "seed": 0, "branching": [6], "dim": 8, "separation": [1.5],
             "noise": 1.0, "train_per_class": 25, "test_per_class": 10},
    "model": {"name": "mlp", "hidden": [16]},
    "eval": {"every": 0}, "output": {"plots": False},
}


def config(strategy: dict, **scenario) -> dict:
    raw = copy.deepcopy(BASE)
    raw["scenario"].update(scenario)
    raw["strategy"] = {"name": "avalanche", **strategy}
    return load_config(raw)


class Recorder(SupervisedPlugin):
    """What every training iteration sees: the minibatch rows (as bytes) and labels."""

    def __init__(self) -> None:
        super().__init__()
        self.x: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []

    def before_forward(self, strategy, **kwargs) -> None:
        self.x.append(strategy.mb_x.detach().clone())
        self.y.append(strategy.mb_y.detach().clone())


def ids_of(rec: Recorder, pool) -> list[list[int]]:
    """Pool indices of the rows of each recorded minibatch (synthetic rows are unique)."""
    lookup = {pool.x[i].astype(np.float32).tobytes(): i for i in range(len(pool.x))}
    return [[lookup[row.numpy().tobytes()] for row in x] for x in rec.x]


def run_import(cfg: dict, plugins: list) -> AvalancheStrategy:
    """The import path: clenv's Runner drives the adapter (test-then-train, evaluation)."""
    pool = load_pool(cfg["data"])
    strategy = AvalancheStrategy(plugins=plugins,
                                 **{k: v for k, v in cfg["strategy"].items() if k != "name"})
    episode(cfg, make_env(cfg, pool), strategy, EventLog(None), {})
    return strategy


def run_export(cfg: dict, plugins: list) -> AvalancheStrategy:
    """The export path: an Avalanche user's loop over to_benchmark's train stream, with the
    same model, optimiser and strategy arguments (built by the adapter, same seeds)."""
    mode = cfg["strategy"]["mode"]
    bm = to_benchmark(cfg, mode=mode)
    section = {k: v for k, v in cfg["strategy"].items() if k != "name"}
    section["consolidate"] = "batch"  # a plain Avalanche loop: no boundary gating
    strategy = AvalancheStrategy(plugins=plugins, **section)
    pool = load_pool(cfg["data"])
    strategy.setup(make_spec(cfg, make_env(cfg, pool)))
    for exp in bm.train_stream:
        if mode == "online":
            strategy.avl.train(exp)  # Avalanche's default: shuffle within the mini experience
        else:
            strategy.avl.train(exp, shuffle=False)
    return strategy


@pytest.mark.parametrize("cls,args,mode", [
    ("Naive", {}, "online"), ("Naive", {}, "offline"),
    ("Replay", {"mem_size": 20}, "online"), ("Replay", {"mem_size": 20}, "offline"),
    ("ER_ACE", {"mem_size": 20, "batch_size_mem": 5}, "online"),
])
def test_both_paths_train_on_the_same_samples(cls, args, mode):
    cfg = config({"class": cls, "args": args, "mode": mode})
    pool = load_pool(cfg["data"])
    rec_a, rec_b = Recorder(), Recorder()
    a = run_import(cfg, [rec_a])
    b = run_export(cfg, [rec_b])
    ids_a, ids_b = ids_of(rec_a, pool), ids_of(rec_b, pool)
    assert len(ids_a) == len(ids_b) == a.counters()["grad_steps"] == 15  # 3 tasks x 50 / 10
    assert ids_a == ids_b  # every minibatch: same samples in the same order, replay included
    assert all(torch.equal(p, q) for p, q in zip(rec_a.y, rec_b.y, strict=True))
    # the stream part of each minibatch is clenv's batch: in clenv's order offline, the same
    # rows shuffled within the batch online (Avalanche's loader default)
    stream = make_env(cfg, pool).stream.materialize()["sample_id"].tolist()
    lengths = np.diff([0, *make_env(cfg, pool).stream.task_ends.tolist()])
    sizes = [min(10, n - k) for n in lengths for k in range(0, n, 10)]
    heads = [batch[:n] for batch, n in zip(ids_a, sizes, strict=True)]
    clenv_batches = [stream[a:a + n] for a, n in zip(np.cumsum([0, *sizes[:-1]]), sizes,
                                                          strict=True)]
    if mode == "offline":
        assert heads == clenv_batches
    else:
        assert [sorted(h) for h in heads] == [sorted(b) for b in clenv_batches]
        assert heads != clenv_batches  # (the shuffle is real)
    if cls == "Naive":
        assert all(len(b) == n for b, n in zip(ids_a, sizes, strict=True))
    # the models end identical
    for p, q in zip(a.avl.model.parameters(), b.avl.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_export_offline_and_online_structure():
    cfg = config({"class": "Naive"})
    pool = load_pool(cfg["data"])
    env = make_env(cfg, pool)
    stream = env.stream
    ex = export_stream(cfg)
    order = stream.materialize()
    assert [len(t.y) for t in ex.train] == np.diff([0, *stream.task_ends.tolist()]).tolist()
    assert np.concatenate([t.sample_id for t in ex.train]).tolist() == order["sample_id"].tolist()
    assert torch.equal(torch.cat([t.x for t in ex.train]), torch.from_numpy(pool.x[order["index"]]))
    test_classes = [set(t.y.tolist()) for t in ex.test]
    assert test_classes == [set(c.tolist()) for c in stream.columns]
    assert sum(len(t.y) for t in ex.test) == 60  # 6 classes x 10 test samples

    bm = to_benchmark(ex, mode="offline")
    assert len(bm.train_stream) == 3 and len(bm.test_stream) == 3
    seen = set()
    for t, exp in enumerate(bm.train_stream):
        assert exp.current_experience == t
        assert exp.previous_classes == seen
        seen |= exp.classes_in_this_experience
        assert exp.classes_in_this_experience == set(stream.columns[t].tolist())
    online = list(to_benchmark(ex, mode="online").train_stream)
    assert len(online) == 15  # 3 tasks of 50 samples in batches of 10, never spanning tasks
    flags = [(e.is_first_subexp, e.is_last_subexp, e.sub_stream_length) for e in online]
    assert flags[:5] == [(True, False, 5), *[(False, False, 5)] * 3, (False, True, 5)]
    assert all(e.access_task_boundaries for e in online)


def test_export_lifelong_and_hle_streams():
    life = export_stream(SCENARIOS / "lifelong_recurring.yaml")
    assert len(life.train) == len(life.config["scenario"]["segments"])
    assert len(life.test) == len(life.column_names)
    assert all(t.x.dtype == torch.float32 for t in life.train)
    hle = export_stream(SCENARIOS / "hle_digits.yaml")
    assert hle.n_classes > 10  # flat label space over the levels
    for t in hle.test:
        assert int(t.y.max()) < hle.n_classes
    # a multi-label stream is refused with one line
    with pytest.raises(Exception) as exc:
        export_stream(SCENARIOS / "mlcil_canvas.yaml")
    one_line(exc, "multi-label")


STRATEGIES = [
    ("Naive", {}), ("Replay", {"mem_size": 20}), ("EWC", {"ewc_lambda": 10.0}),
    ("LwF", {"alpha": 1.0, "temperature": 2.0}), ("GEM", {"patterns_per_exp": 10}),
    ("AGEM", {"patterns_per_exp": 10, "sample_size": 10}), ("GDumb", {"mem_size": 20}),
    ("SI", {"si_lambda": 1.0}), ("DER", {"mem_size": 20}), ("ER_ACE", {"mem_size": 20}),
]


@pytest.mark.parametrize("cls,args", STRATEGIES, ids=[s[0] for s in STRATEGIES])
def test_import_path_runs_every_strategy(cls, args, tmp_path):
    cfg = config({"class": cls, "args": args})
    cfg["budget"]["memory_size"] = 30
    metrics = Run(cfg).execute(tmp_path / cls)
    assert (tmp_path / cls / "metrics.json").is_file()
    R = np.array(metrics["accuracy_matrix"])
    assert R.shape == (3, 3) and np.isfinite(R).all()
    assert R[0, 0] > 0.5  # learned the first task
    budget = metrics["budget"]
    if cls != "GDumb":  # GDumb retrains on its memory at every experience
        assert budget["grad_steps"] == 15
    assert budget["buffer_samples"] <= 30 and metrics["budget_exceeded"] == []


def test_online_task_consolidation_matches_offline():
    """Online with consolidate=task sees the same minibatches as offline and consolidates
    once per task on the task's data, so deterministic consolidators end where offline does;
    consolidating after every batch (Avalanche's own behaviour) ends elsewhere."""
    for cls, args in [("EWC", {"ewc_lambda": 50.0}), ("LwF", {"alpha": 5.0, "temperature": 2.0})]:
        rows = {}
        for mode, consolidate in [("offline", "task"), ("online", "task"), ("online", "batch")]:
            cfg = config({"class": cls, "args": args, "mode": mode, "consolidate": consolidate})
            s = run_import(cfg, [])
            rows[(mode, consolidate)] = [p.detach().clone() for p in s.avl.model.parameters()]
            if cls == "EWC":
                plugins = [getattr(p, "inner", p) for p in s.avl.plugins]
                plugin = next(p for p in plugins if "EWC" in type(p).__name__)
                keys = sorted(plugin.importances)
                assert keys == ([0, 1, 2] if consolidate == "task" else list(range(15)))
        # online shuffles rows within a batch: the same mean gradient up to float rounding
        gap = {k: max((p - q).abs().max().item() for p, q in zip(rows[("offline", "task")],
                                                                   v, strict=True))
               for k, v in rows.items()}
        assert gap[("online", "task")] < 1e-5, (cls, gap)
        assert not gap[("online", "batch")] < 1e-3, (cls, gap)  # (EWC even diverges: nan)


@pytest.mark.parametrize("strategy,needles", [
    ({"class": "Nope"}, ["strategy.class", "'Nope'", "Replay", "EWC"]),
    ({"class": "Replay", "args": {"memsize": 5}}, ["strategy.args.memsize", "mem_size"]),
    ({"class": "Replay", "args": {"mem_size": -5}}, ["strategy.args.mem_size", ">= 0"]),
    ({"class": "Replay", "args": {"mem_size": "big"}}, ["strategy.args.mem_size", "int"]),
    ({"class": "EWC"}, ["strategy.args.ewc_lambda", "needs"]),
    ({"class": "Naive", "args": {"model": 1}}, ["strategy.args.model", "set by clenv"]),
    ({"class": "Naive", "mode": "offline"}, ["strategy.mode", "boundaries"]),
])
def test_bad_class_or_args_is_one_line(strategy, needles):
    with pytest.raises(ConfigError) as exc:
        config(strategy, **({"boundaries": "hidden"} if "mode" in strategy else {}))
    one_line(exc, *needles)


def test_cli_exit_2_no_files(tmp_path, capsys):
    import yaml

    raw = copy.deepcopy(BASE)
    raw["strategy"] = {"name": "avalanche", "class": "Replay", "args": {"mem_size": 20}}
    path = tmp_path / "av.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert main(["check", str(path), "--set", "strategy.class=Replayy"]) == 2
    assert main(["run", str(path), "--out", str(out), "--set", "strategy.args.bogus=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "Replay" in err[0] and "strategy.args.bogus" in err[1]
    assert not out.exists()
    # an Avalanche failure during training is one line too, and leaves no files
    assert main(["run", str(path), "--out", str(out), "--set", "strategy.class=AGEM",
                 "--set", "strategy.args={patterns_per_exp: 5, sample_size: 1}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "AGEM" in err and "mode" in err
    assert not out.exists()
    # checkpoints are refused up front (the Avalanche strategy's state is not captured)
    assert main(["run", str(path), "--out", str(out), "--set",
                 "output.checkpoint_every=50"]) == 2
    assert "checkpoint" in capsys.readouterr().err and not out.exists()
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("preset", ["avalanche_replay", "avalanche_ewc", "avalanche_lwf",
                                    "avalanche_gdumb"])
def test_ready_presets(preset):
    raw = copy.deepcopy(BASE)
    raw["strategy"] = preset
    raw["budget"] = {"memory_size": 200}
    metrics = Run(load_config(raw)).execute(None)
    assert metrics["complete"] and metrics["budget_exceeded"] == []
    assert np.array(metrics["accuracy_matrix"])[0, 0] > 0.5


def test_storage_policy_replaces_the_replay_memory():
    s = run_import(config({"class": "Replay", "args": {"mem_size": 20},
                           "storage_policy": "reservoir"}), [])
    replay = next(p for p in s.avl.plugins if type(p).__name__ == "ReplayPlugin")
    assert type(replay.storage_policy).__name__ == "ReservoirSamplingBuffer"
    assert len(replay.storage_policy.buffer) == 20
    with pytest.raises(ConfigError) as exc:
        run_import(config({"class": "EWC", "args": {"ewc_lambda": 1.0},
                           "storage_policy": "reservoir"}), [])
    one_line(exc, "strategy.storage_policy", "ReplayPlugin")


def test_hierarchical_stream_is_refused_in_one_line():
    with pytest.raises(ConfigError) as exc:
        load_config(SCENARIOS / "hle_digits.yaml",
                    overrides=["strategy={name: avalanche, class: Naive}"])
    one_line(exc, "strategy.name", "hle", "to_benchmark")


def test_hidden_boundaries_online_every_batch_is_an_experience():
    seen = []

    class Flags(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs) -> None:
            seen.append(strategy.experience.access_task_boundaries)

    s = run_import(config({"class": "LwF", "args": {"alpha": 1.0, "temperature": 2.0}},
                          boundaries="hidden"), [Flags()])
    assert s.gated == [] and len(seen) == 15 and not any(seen)
    assert s.counters()["grad_steps"] == 15
