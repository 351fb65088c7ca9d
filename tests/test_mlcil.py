"""Multi-label class-incremental learning (MLCIL): task membership and splits, partial labels,
the multi-label Env contract, masked losses, ER's (labels, mask) memory, seen-class evaluation
and metrics.json, MULTI-LANE end to end, and the ready scenario files through the CLI."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data.pool import Pool
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.evaluation.multi_label import MultiLabelEvaluator
from clenv.events import EventLog
from clenv.metrics.multilabel import sample_f1
from clenv.models.registry import validate_model
from clenv.runner import Run, episode, make_env
from clenv.scenarios.registry import build_stream, validate_scenario
from clenv.strategies.base import Strategy
from clenv.strategies.er import ExperienceReplay
from clenv.strategies.naive import Naive
from clenv.strategies.spec import StrategySpec
from tests.conftest import SCENARIOS, require

DATA = {"source": "canvas", "seed": 0, "canvas": 16, "glyph_scale": 1, "objects": [1, 3],
        "n_classes": 6, "train_size": 300, "test_size": 100}
TINY_VIT = {"name": "vit", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 4}
MLP = {"name": "mlp", "hidden": [16]}
ML_KEYS = {"map", "average_map", "cf1", "cf1_prs", "of1", "map_matrix", "map_forgetting",
           "online_f1"}


@pytest.fixture(scope="module")
def canvas() -> Pool:
    return load_pool(DATA)


def random_pool(n_classes: int, n: int = 400, p: float = 0.1, seed: int = 0) -> Pool:
    """A multi-label pool with random multi-hot rows, each with at least one positive."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, n_classes)) < p
    y[np.arange(n), rng.integers(0, n_classes, n)] = True
    x = rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    train = np.arange(n) < int(0.8 * n)
    return Pool(x, y.astype(np.uint8), train, [f"c{i}" for i in range(n_classes)])


def stream_of(pool: Pool, **scenario):
    cfg = validate_scenario({"generator": "mlcil", **scenario})
    return build_stream(pool, cfg, "scenario")


def config(tmp: dict | None = None, **over) -> dict:
    raw = {"name": "t", "seed": 0,
           "scenario": {"generator": "mlcil", "seed": 0, "increment": 2, "epochs": 1,
                        "batch_size": 16},
           "data": DATA, "strategy": {"name": "naive", "optimizer": "adam", "lr": 0.003},
           "model": MLP, "eval": {"every": 0}, "output": {"plots": False},
           "budget": {"memory_size": 40}}
    raw.update(tmp or {})
    raw.update(over)
    return load_config(raw)


# --------------------------------------------------------------------------- task membership


def test_membership_every_member_once_per_epoch_and_shared_images() -> None:
    pool = random_pool(20, p=0.15)
    s = stream_of(pool, base_classes=0, increment=4, epochs=2, chunk_size=37)
    rec = s.materialize()
    train = pool.train_indices
    assert s.n_tasks == 5 and s.length == len(rec["index"])
    whole = stream_of(pool, base_classes=0, increment=4, epochs=2).materialize()
    for f in ("index", "task", "epoch", "y", "is_new_class"):  # chunking changes nothing
        assert np.array_equal(rec[f], whole[f]), f
    shared = 0
    for t, cls in enumerate(s.task_classes):
        members = set(train[pool.y[train][:, cls].any(axis=1)].tolist())
        for e in range(2):
            got = rec["index"][(rec["task"] == t) & (rec["epoch"] == e)]
            assert len(got) == len(set(got.tolist())) == len(members)  # once per epoch
            assert set(got.tolist()) == members
        shared += len(members & set(rec["index"][rec["task"] != t].tolist()))
    assert shared > 0  # the same image belongs to several tasks
    # an image is in task t iff it has one of task t's classes
    for i in train[:50]:
        tasks = set(rec["task"][rec["index"] == i].tolist())
        assert tasks == {t for t, c in enumerate(s.task_classes) if pool.y[i, c].any()}


def test_class_order_default_given_and_seeded() -> None:
    pool = random_pool(20)
    default = stream_of(pool, increment=5)
    assert [c.tolist() for c in default.task_classes] == [list(range(5 * t, 5 * t + 5))
                                                          for t in range(4)]
    assert [c.tolist() for c in stream_of(pool, increment=5, seed=9).task_classes] == \
        [c.tolist() for c in default.task_classes]  # the seed does not shuffle by default
    order = np.random.default_rng(3).permutation(20).tolist()
    given = stream_of(pool, increment=5, class_order=order)
    assert np.concatenate(given.task_classes).tolist() == order
    a = np.concatenate(stream_of(pool, increment=5, shuffle_classes=True, seed=1).task_classes)
    b = np.concatenate(stream_of(pool, increment=5, shuffle_classes=True, seed=1).task_classes)
    c = np.concatenate(stream_of(pool, increment=5, shuffle_classes=True, seed=2).task_classes)
    assert sorted(a.tolist()) == list(range(20)) and np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(20)) and not np.array_equal(a, c)
    with pytest.raises(ConfigError, match=r"^scenario\.class_order"):
        stream_of(pool, increment=5, class_order=list(range(19)) + [0])


@pytest.mark.parametrize(("n_classes", "split", "sizes"), [
    (20, "voc_b0_c4", [4] * 5), (20, "voc_b10_c2", [10] + [2] * 5),
    (80, "coco_b0_c10", [10] * 8), (80, "coco_b40_c10", [40] + [10] * 4)])
def test_split_presets(n_classes: int, split: str, sizes: list[int]) -> None:
    s = stream_of(random_pool(n_classes, n=600, p=0.05), split=split)
    assert [len(c) for c in s.task_classes] == sizes
    assert np.concatenate(s.task_classes).tolist() == list(range(n_classes))
    assert s.task_mask.sum(axis=1).tolist() == sizes and (s.task_mask.sum(axis=0) == 1).all()


def test_base_and_increment_without_preset() -> None:
    s = stream_of(random_pool(20), base_classes=10, increment=2)
    assert [len(c) for c in s.task_classes] == [10, 2, 2, 2, 2, 2]


@pytest.mark.parametrize("scenario", [{"base_classes": 0, "increment": 3},
                                      {"base_classes": 10, "increment": 4},
                                      {"base_classes": 20, "increment": 2},
                                      {"split": "coco_b40_c10"}])
def test_bad_splits_name_increment(scenario: dict) -> None:
    with pytest.raises(ConfigError) as info:
        stream_of(random_pool(20), **scenario)
    # a preset names its own key: it is a split of 80 classes, the pool has 20
    key = "scenario.split" if "split" in scenario else "scenario.increment"
    assert str(info.value).startswith(key)


def test_single_label_pool_rejected() -> None:
    rng = np.random.default_rng(0)
    pool = Pool(rng.random((40, 3)).astype(np.float32), np.arange(40) % 4, np.ones(40, bool),
                list("abcd"))
    with pytest.raises(ConfigError) as info:
        stream_of(pool, increment=2)
    assert str(info.value).startswith("scenario.generator")


# --------------------------------------------------------------------------- partial labels


def run_env(env, action_fn=None):
    """Step an episode; returns [(obs, action, reward, info)]."""
    obs, _ = env.reset(seed=env.default_seed)
    out, done = [], False
    while not done:
        a = np.zeros(env.action_space.shape, np.int8) if action_fn is None else action_fn(obs)
        nxt, r, done, trunc, info = env.step(a)
        assert not trunc
        out.append((obs, a, r, info))
        obs = nxt
    return out


def test_partial_labels_and_new_classes(canvas: Pool) -> None:
    cfg = config(scenario={"generator": "mlcil", "seed": 0, "increment": 2, "epochs": 2,
                           "batch_size": 16})
    env = make_env(cfg, canvas)
    s = env.stream
    announced: set[int] = set()
    hidden_pos = 0
    for _, _, _, info in run_env(env):
        v = info["valid"]
        mask, y = info["label_mask"], info["y"]
        assert mask.shape == y.shape == (16, 6) and mask.dtype == y.dtype == np.uint8
        assert (mask[~v] == 0).all() and (y[~v] == 0).all()
        for r in np.flatnonzero(v):
            t = int(info["task"][r])
            assert np.array_equal(mask[r], s.task_mask[t])
            full = canvas.y[info["sample_id"][r]]
            assert np.array_equal(y[r], full * s.task_mask[t])  # hidden labels are 0
            assert y[r].any()  # a member has a visible positive
            hidden_pos += int((full * (1 - s.task_mask[t])).sum())
            other = np.setdiff1d(np.arange(6), s.task_classes[t])
            assert not y[r, other].any()
        visible = set(np.flatnonzero(y[v].any(axis=0)).tolist())
        new = info.get("new_classes", {})
        assert set(new) == visible - announced
        assert all(new[c] == canvas.class_names[c] for c in new)
        assert all(c in s.task_classes[int(info["task"][0])] for c in new)
        announced |= visible
    assert hidden_pos > 0  # some images carry labels of other tasks (kept hidden)
    assert announced == set(range(6))


# --------------------------------------------------------------------------- the Env


def test_check_env_and_observation_space(canvas: Pool) -> None:
    from gymnasium.utils.env_checker import check_env

    env = make_env(config(), canvas)
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (16, 6)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        assert env.observation_space.contains(obs)
        obs, _, done, _, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)


def test_reward_is_masked_sample_f1(canvas: Pool) -> None:
    env = make_env(config(), canvas)
    ref = run_env(env)
    infos = [i for *_, i in ref]
    assert all(r == 0.0 for _, _, r, _ in ref)  # nothing predicted, a visible positive per row
    steps = iter(infos)
    assert all(r == 1.0 for _, _, r, _ in run_env(env, lambda o: next(steps)["y"]))
    # predicting hidden labels (here: every hidden class) does not lower the reward
    steps = iter(infos)
    run = run_env(env, lambda o: (lambda i: i["y"] | (1 - i["label_mask"]))(next(steps)))
    assert all(r == 1.0 for _, _, r, _ in run)
    rng = np.random.default_rng(0)
    run = run_env(env, lambda o: rng.integers(0, 2, (16, 6)).astype(np.int8))
    for (_, a, r, info), ri in zip(run, infos, strict=True):
        v = info["valid"]
        assert np.array_equal(info["y"], ri["y"])
        m, y = info["label_mask"][v].astype(int), info["y"][v].astype(int)
        p = a[v].astype(int) * m
        f1 = np.where((p + y).sum(1) > 0, 2 * (p * y).sum(1) / np.maximum((p + y).sum(1), 1), 1)
        assert r == pytest.approx(f1.mean())
        assert r == pytest.approx(sample_f1(y, a[v], m).mean())
    assert 0 < np.mean([r for _, _, r, _ in run]) < 1


@pytest.mark.parametrize("action", [np.zeros(16, np.int8), np.zeros((16, 7), np.int8),
                                    np.zeros((15, 6), np.int8), np.zeros((16, 6), np.float32),
                                    np.full((16, 6), 2, np.int8), np.full((16, 6), -1, np.int64)])
def test_bad_actions_raise(canvas: Pool, action: np.ndarray) -> None:
    env = make_env(config(), canvas)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(action)


# --------------------------------------------------------------------------- masked losses


def spec(**over) -> StrategySpec:
    kw = {"input_shape": (1, 16, 16), "image": True, "n_classes": 6, "batch_size": 8,
          "stream_length": 100, "n_tasks": 3, "multi_label": True,
          "model": validate_model(MLP)}
    return StrategySpec(**{**kw, **over})


def loss_and_grads(y: np.ndarray, mask: np.ndarray, x: np.ndarray):
    strat = Naive(optimizer="adam", lr=0.01)
    strat.setup(spec())
    info = {"y": y, "label_mask": mask, "valid": np.ones(len(y), bool)}
    rx, yt = strat.stream_batch({"x": x}, info)
    loss = strat.loss(strat.model(strat.as_input(rx)), yt)
    loss.backward()
    grads = [p.grad.clone() for p in strat.model.parameters()]
    strat2 = Naive(optimizer="adam", lr=0.01)
    strat2.setup(spec())
    strat2.learn({"x": x}, info)
    return loss.item(), grads, [p.detach().clone() for p in strat2.model.parameters()]


def test_loss_ignores_hidden_labels() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 1, 16, 16), dtype=np.uint8)
    mask = np.zeros((8, 6), np.uint8)
    mask[:, :2] = 1
    y = (rng.random((8, 6)) < 0.5).astype(np.uint8) * mask
    base = loss_and_grads(y, mask, x)
    hidden = y.copy()
    hidden[3, 4] = 1  # a hidden positive (mask 0)
    same = loss_and_grads(hidden, mask, x)
    assert same[0] == base[0]
    assert all(torch.equal(a, b) for a, b in zip(same[1], base[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(same[2], base[2], strict=True))
    visible = y.copy()
    visible[3, 1] ^= 1
    diff = loss_and_grads(visible, mask, x)
    assert diff[0] != base[0]
    assert not all(torch.equal(a, b) for a, b in zip(diff[1], base[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(diff[2], base[2], strict=True))


class RecordingER(ExperienceReplay):
    """ER that records the task and the (labels, mask) rows of every gradient step."""

    def setup(self, spec):
        super().setup(spec)
        self.task, self.steps = -1, []

    def on_task_start(self, task):
        self.task = task

    def step(self, raw_x, y):
        self.steps.append((self.task, y.clone()))
        return super().step(raw_x, y)


def test_er_buffer_keeps_each_rows_mask(canvas: Pool) -> None:
    cfg = config(strategy={"name": "er", "optimizer": "adam", "lr": 0.003})
    env = make_env(cfg, canvas)
    strat = RecordingER(**{k: v for k, v in cfg["strategy"].items() if k != "name"})
    episode(cfg, env, strat, EventLog(None), {})
    s = env.stream
    task_masks = {tuple(m.tolist()): t for t, m in enumerate(s.task_mask)}
    mem = strat.memory
    assert mem.y.shape == (40, 2, 6) and mem.size == 40
    by_x: dict[bytes, list[int]] = {}
    for i in canvas.train_indices:
        by_x.setdefault(canvas.x[i].tobytes(), []).append(int(i))
    stored = set()
    for x, (lab, m) in zip(mem.x[:mem.size].numpy(), mem.y[:mem.size].numpy(), strict=True):
        t = task_masks[tuple(m.tolist())]  # the mask is a task's class indicator
        stored.add(t)
        assert any(np.array_equal(lab, canvas.y[i] * s.task_mask[t]) for i in by_x[x.tobytes()])
    assert len(stored) >= 2
    replayed_old = 0
    for t, y in strat.steps:
        masks = [task_masks[tuple(m.tolist())] for m in y[:, 1].numpy()]
        assert (y[:, 0] <= y[:, 1]).all()  # hidden labels stay 0
        assert masks[0] == t  # the stream rows come first, with the current task's mask
        replayed_old += sum(m < t for m in masks)
    assert replayed_old > 0  # replayed rows of earlier tasks keep their own mask


# --------------------------------------------------------------------------- evaluation


class Oracle(Strategy):
    """Scores the true labels of an image (looked up from the pool) as +10, the rest -10;
    ``also`` adds +10 on those classes for every image."""

    def setup(self, spec):
        super().setup(spec)
        pool = load_pool(self.params["data"])
        self.labels = {x.tobytes(): y for x, y in zip(pool.x, pool.y, strict=True)}
        self.also = np.asarray(self.params.get("also", []), dtype=np.int64)
        self.seen_x: list[bytes] = []

    def predict(self, obs):
        out = np.full((len(obs["x"]), self.spec.n_classes), -10.0, dtype=np.float32)
        for i, x in enumerate(obs["x"]):
            self.seen_x.append(x.tobytes())
            y = self.labels.get(x.tobytes())
            if y is not None:
                out[i, y.astype(bool)] = 10.0
        out[:, self.also] = 10.0
        return out


def test_evaluator_scores_seen_classes_on_images_with_one(canvas: Pool) -> None:
    s = stream_of(canvas, increment=2)
    ev = MultiLabelEvaluator(canvas, s, batch_size=32, threshold=0.8)
    oracle = Oracle(data=DATA, also=[0, 4, 5])  # always predicts class 0 and unseen 4, 5
    oracle.setup(spec())
    seen = np.zeros(6, bool)
    seen[[0, 1, 2, 3]] = True
    rec, scores = ev.evaluate(oracle, seen)
    ty = canvas.y[canvas.test_indices]
    rows = np.flatnonzero(ty[:, :4].any(axis=1))
    assert 0 < len(rows) < len(ty)  # some test images have only unseen classes
    assert rec["n_images"] == len(rows) == len(scores)
    assert set(oracle.seen_x) == {canvas.x[canvas.test_indices[r]].tobytes() for r in rows}
    assert rec["ap"][4] is None and rec["ap"][5] is None
    pos = ty[rows].sum(axis=0)
    assert rec["ap"][1:4] == [1.0] * 3
    assert rec["ap"][0] == pytest.approx(pos[0] / len(rows))  # one tie: the positive rate
    assert rec["pos"] == [*pos[:4].tolist(), 0, 0]
    assert rec["tp"] == rec["pos"] and rec["fn"] == [0] * 6
    assert rec["fp"] == [len(rows) - int(pos[0]), 0, 0, 0, 0, 0]  # unseen classes not scored


def test_oracle_run_scores_one(canvas: Pool, tmp_path: Path) -> None:
    cfg = config(strategy={"name": "tests.test_mlcil:Oracle", "data": DATA})
    m = Run(cfg, canvas).execute(tmp_path)
    assert m["map"] == m["average_map"] == 1.0
    assert m["cf1"] == m["cf1_prs"] == m["of1"] == 1.0
    assert m["map_forgetting"] == 0.0
    assert m["online_f1"] == 1.0  # it also predicts the hidden labels: no penalty


def test_metrics_json_and_map_from_events(canvas: Pool, tmp_path: Path) -> None:
    Run(config(), canvas).execute(tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert ML_KEYS <= set(m) and m["complete"] and m["multi_label"]
    T = m["n_tasks"]
    assert T == 3 and np.shape(m["map_matrix"]) == (T, T)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    ends = sorted((e for e in events if e["type"] == "eval" and e["kind"] == "task_end"),
                  key=lambda e: e["row"])
    assert len(ends) == T
    first = ends[0]
    assert first["seen"] == [0, 1] and first["counts"]["ap"][2:] == [None] * 4
    assert first["counts"]["n_images"] == int(
        canvas.y[canvas.test_indices][:, :2].any(axis=1).sum())
    maps = []
    for e in ends:
        ap = e["counts"]["ap"]
        maps.append(np.mean([ap[c] for c in e["seen"] if ap[c] is not None]))
    assert ends[-1]["seen"] == list(range(6))
    assert m["map"] == pytest.approx(maps[-1])
    assert m["average_map"] == pytest.approx(np.mean(maps))
    for i, e in enumerate(ends):
        for j in range(T):
            ap = [e["counts"]["ap"][c] for c in (2 * j, 2 * j + 1)]
            ap = [a for a in ap if a is not None]
            assert m["map_matrix"][i][j] == pytest.approx(np.mean(ap) if ap else 0.0)
    for k in ("cf1", "cf1_prs", "of1", "online_f1", "map_forgetting"):
        assert 0.0 <= m[k] <= 1.0


# --------------------------------------------------------------------------- MULTI-LANE


def test_multilane_end_to_end_old_lanes_frozen(canvas: Pool) -> None:
    require("timm")
    from clenv.strategies.multilane import MultiLaneStrategy

    class Snapshots(MultiLaneStrategy):
        def setup(self, spec):
            super().setup(spec)
            self.snaps: list[dict] = []
            self.vit0 = copy.deepcopy(self.net.vit.state_dict())

        def on_task_end(self, task):
            self.snaps.append({k: v.detach().clone() for k, v in self.net.named_parameters()})

    model = {**TINY_VIT, "pretrain": {"data": {"source": "canvas", "seed": 1, "glyphs": "shapes",
                                               "canvas": 16, "glyph_scale": 1,
                                               "train_size": 64, "test_size": 4},
                                      "epochs": 1, "batch_size": 32}}
    cfg = config(strategy={"name": "multilane", "lr": 0.01, "n_selectors": 2, "n_prompts": 2,
                           "prompt_layers": 1}, model=model)
    env = make_env(cfg, canvas)
    strat = Snapshots(**{k: v for k, v in cfg["strategy"].items() if k != "name"})
    end = episode(cfg, env, strat, EventLog(None), {})
    T = env.stream.n_tasks
    net = strat.net
    assert T == 3 and net.n_lanes == T and len(strat.snaps) == T
    assert net.task_classes == [c.tolist() for c in env.stream.task_classes]
    final = dict(net.named_parameters())
    for t in range(T - 1):
        old = strat.snaps[t]
        for name in (f"selectors.{t}", f"prompts.{t}"):
            assert torch.equal(final[name], old[name]), name
        assert not torch.equal(final[f"selectors.{T - 1}"], old[f"selectors.{t}"])
        cls = env.stream.task_classes[t]
        assert torch.equal(final["head.weight"][cls], old["head.weight"][cls])
    vit = net.vit.state_dict()
    assert all(torch.equal(vit[k], v) for k, v in strat.vit0.items())  # frozen backbone
    c = end["budget"]
    assert 0 < c["trainable_params"] < c["n_params"] and c["grad_steps"] > 0


def test_multilane_cosine_lr_per_epoch_and_fresh_adam_per_task(canvas: Pool) -> None:
    """As the official multi_lane/engine.py (train_and_evaluate): a new Adam per task and
    CosineAnnealingLR(T_max=epochs) stepped per epoch — batch k of a task, starting at row r,
    trains at lr0 * (1 + cos(pi * e / E)) / 2 with e = r // (the task's samples per epoch)."""
    import math

    require("timm")
    from clenv.strategies.multilane import MultiLaneStrategy

    class Rates(MultiLaneStrategy):
        def setup(self, spec):
            super().setup(spec)
            self.seen: list[tuple[int, int, float, int]] = []  # task, row, lr, Adam steps
            self.rows: dict[int, int] = {}

        def learn(self, batch, info):
            out = super().learn(batch, info)
            t = int(info["task"][info["valid"]][0])
            head = self.optimizer.state[self.net.head.weight]
            self.seen.append((t, self.rows.get(t, 0), self.optimizer.param_groups[0]["lr"],
                              int(head["step"])))
            self.rows[t] = self.rows.get(t, 0) + int(info["valid"].sum())
            return out

    epochs, lr0 = 3, 0.02
    cfg = config(strategy={"name": "multilane", "lr": lr0, "n_selectors": 2, "n_prompts": 2,
                           "prompt_layers": 1},
                 scenario={"generator": "mlcil", "seed": 0, "increment": 2, "epochs": epochs,
                           "batch_size": 16},
                 data={**DATA, "train_size": 120, "test_size": 20}, model=TINY_VIT)
    env = make_env(cfg, canvas)
    strat = Rates(**{k: v for k, v in cfg["strategy"].items() if k != "name"})
    episode(cfg, env, strat, EventLog(None), {})
    per_epoch = {t: len(env.stream.segments[t * epochs].indices)
                 for t in range(env.stream.n_tasks)}
    assert {t for t, *_ in strat.seen} == set(range(env.stream.n_tasks))
    epochs_seen = set()
    for t, row, lr, _ in strat.seen:
        e = row // per_epoch[t]
        epochs_seen.add(e)
        assert lr == pytest.approx(lr0 * (1 + math.cos(math.pi * e / epochs)) / 2, rel=1e-12)
    assert epochs_seen == {0, 1, 2}
    # the shared head's Adam step count restarts at every task: a fresh optimiser
    for t in per_epoch:
        steps = [n for u, _, _, n in strat.seen if u == t]
        assert steps == list(range(1, len(steps) + 1)), t


@pytest.mark.parametrize(("strategy", "boundaries", "needle"), [
    ("multilane", "hidden", "scenario.boundaries: exposed"),
    ("plfms", "exposed", "not multi-label")])
def test_unsupported_combinations_raise_config_error(strategy: str, boundaries: str,
                                                     needle: str) -> None:
    sc = {"generator": "mlcil", "seed": 0, "increment": 2, "batch_size": 16,
          "boundaries": boundaries}
    with pytest.raises(ConfigError, match=needle) as exc:
        config(strategy={"name": strategy}, scenario=sc,
               model=TINY_VIT if strategy == "multilane" else MLP)
    assert str(exc.value).startswith("strategy.name")


# --------------------------------------------------------------------------- CLI

TINY_SETS = ["data.train_size=200", "data.test_size=60", "scenario.epochs=1", "model.depth=2",
             "model.pretrain.epochs=1", "model.pretrain.data.train_size=100"]


@pytest.mark.parametrize("strategy", ["multilane", "er_bce", "finetune_bce"])
def test_cli_runs_mlcil_canvas(strategy: str, tmp_path: Path) -> None:
    if strategy == "multilane":
        require("timm")
    sets = [a for s in [*TINY_SETS, f"output.plots={strategy == 'multilane'}"]
            for a in ("--set", s)]
    out = tmp_path / "res"
    assert main(["run", str(SCENARIOS / "mlcil_canvas.yaml"), "--strategy", strategy, *sets,
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and ML_KEYS <= set(m)
    assert all(m[k] is not None for k in ML_KEYS)
    T = m["n_tasks"]
    assert T >= 2 and np.shape(m["map_matrix"]) == (T, T) and 0 < m["map"] <= 1
    assert yaml.safe_load((out / "config.yaml").read_text())["strategy"]["name"] == \
        {"multilane": "multilane", "er_bce": "er", "finetune_bce": "naive"}[strategy]


# --------------------------------------------------------------------------- COCO / VOC roots


def _image(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def coco_fixture(tmp_path: Path, n_cat: int = 80) -> Path:
    """n_cat categories (COCO-like, non-contiguous ids); train image i has the categories of
    positions i, i + 10, ... so every group of 10 consecutive classes has images."""
    root = tmp_path / "coco"
    cats = [{"id": 3 * k + 1, "name": f"cat{k}"} for k in range(n_cat)]
    files = {}
    for split, n in (("train2014", 10), ("val2014", 4)):
        images, anns = [], []
        for i in range(n):
            images.append({"id": i, "file_name": f"{i}.jpg"})
            _image(root / split / f"{i}.jpg", (20 * i, 255 - 20 * i, 7 * i))
            for k in range(i % 10, n_cat, 10 if split == "train2014" else 7):
                anns.append({"id": len(anns), "image_id": i, "category_id": 3 * k + 1})
        files[split] = {"images": images, "categories": cats, "annotations": anns}
    (root / "annotations").mkdir()
    for split, data in files.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def voc_fixture(tmp_path: Path) -> Path:
    from clenv.data.voc import VOC_CLASSES

    folder = tmp_path / "VOCdevkit" / "VOC2007"
    (folder / "Annotations").mkdir(parents=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(14)]
    for i, stem in enumerate(ids):  # train image i: classes 2i, 2i+1 (mod 20)
        names = [VOC_CLASSES[(2 * i) % 20], VOC_CLASSES[(2 * i + 1) % 20]]
        body = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>"
                       for n in names)
        (folder / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{body}</annotation>")
        _image(folder / "JPEGImages" / f"{stem}.jpg", (15 * i, 100, 255 - 15 * i))
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(ids[:10]) + "\n")
    (folder / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids[10:]) + "\n")
    return tmp_path / "VOCdevkit"


@pytest.mark.parametrize(("name", "n_tasks"), [("mlcil_voc_b0_c4", 5), ("mlcil_voc_b10_c2", 6),
                                               ("mlcil_coco_b0_c10", 8),
                                               ("mlcil_coco_b40_c10", 5)])
def test_real_presets_need_a_root(name: str, n_tasks: int, tmp_path: Path, capsys) -> None:
    path = str(SCENARIOS / f"{name}.yaml")
    root = coco_fixture(tmp_path) if "coco" in name else voc_fixture(tmp_path)
    assert main(["check", path, "--set", f"data.root={tmp_path / 'missing'}"]) == 2
    assert "data.root" in capsys.readouterr().err
    if not os.path.isdir(os.path.expanduser(load_config(path)["data"]["root"])):
        assert main(["check", path]) == 2
        assert "data.root" in capsys.readouterr().err
    assert main(["check", path, "--set", "data.root=null"]) == 2
    assert "data.root" in capsys.readouterr().err
    assert main(["check", path, "--set", f"data.root={root}"]) == 0
    assert "ok:" in capsys.readouterr().out
    # the preset's split on the fixture's classes (80 COCO categories, 20 VOC classes)
    cfg = load_config(path, overrides=[f"data.root={root}", "data.image_size=8"])
    env = Run(cfg).env
    assert env.stream.n_tasks == n_tasks and env.n_classes == (80 if "coco" in name else 20)


@pytest.mark.parametrize(("name", "counts", "lr", "clip"), [
    ("mlcil_coco_b0_c10", 20, 0.015, 0.0), ("mlcil_coco_b40_c10", 20, 0.015, 0.0),
    ("mlcil_voc_b0_c4", 10, 0.05, 0.0), ("mlcil_voc_b10_c2", 10, 0.05, 0.0),
    ("mlcil_canvas", 10, 0.03, 1.0), ("mlcil_digits", 10, 0.03, 1.0)])
def test_multilane_presets_of_the_ready_files(name: str, counts: int, lr: float,
                                              clip: float) -> None:
    """COCO: the official configs/coco.py (20 selectors, 20 prompts, lr 0.03 x 128/256); VOC:
    configs/voc.py (10, 10, lr 0.05 x 256/256); no clipping, cosine schedule. The simulated
    canvas and digit scenarios keep the calibrated preset."""
    st = load_config(str(SCENARIOS / f"{name}.yaml"))["strategy"]
    assert st["name"] == "multilane" and st["schedule"] == "cosine" and st["prompt_layers"] == 5
    assert (st["n_selectors"], st["n_prompts"], st["lr"], st["grad_clip"]) == \
        (counts, counts, lr, clip)


def test_clenv_list_shows_the_multilane_presets(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    presets = out[out.index("strategy presets"):out.index("models:")]
    for stem in ("multilane", "multilane_coco", "multilane_voc", "er_bce"):
        assert f"\n  {stem} " in presets, stem


def test_coco_small_fixture_runs_with_own_split(tmp_path: Path) -> None:
    root = coco_fixture(tmp_path, n_cat=6)
    path = str(SCENARIOS / "mlcil_coco_b0_c10.yaml")
    with pytest.raises(ConfigError, match=r"^scenario\.split"):  # a split of 80, 6 given
        Run(load_config(path, overrides=[f"data.root={root}", "data.image_size=8"]))
    sets = [f"data.root={root}", "data.image_size=8", "scenario.split=null",
            "scenario.base_classes=2", "scenario.increment=2", "scenario.epochs=1",
            "scenario.batch_size=4", "model=" + json.dumps(MLP), "output.plots=false"]
    out = tmp_path / "res"
    args = [a for s in sets for a in ("--set", s)]
    assert main(["run", path, "--strategy", "finetune_bce", *args, "--out", str(out),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["n_tasks"] == 3 and ML_KEYS <= set(m)


def test_pretraining_disk_cache_is_reused_across_processes(tmp_path, monkeypatch) -> None:
    require("timm")
    import clenv.data.registry as data_registry
    from clenv.models import vit_classifier
    from clenv.models.vit import make_vit

    pretrain = {"data": {"source": "canvas", "seed": 1, "glyphs": "shapes", "canvas": 16,
                         "glyph_scale": 1, "train_size": 32, "test_size": 4},
                "epochs": 1, "batch_size": 16}
    monkeypatch.setenv("CLENV_CACHE", str(tmp_path))
    monkeypatch.setattr(vit_classifier, "_CACHE", {})
    vit = make_vit(16, 4, 1, 32, 1, 4)
    first = vit_classifier.pretrained_state(vit, pretrain, (1, 16, 16), seed=3)
    files = list((tmp_path / "pretrain").glob("*.pt"))
    assert len(files) == 1
    # a fresh process (empty in-memory cache) loads the file and never touches the data
    monkeypatch.setattr(vit_classifier, "_CACHE", {})
    monkeypatch.setattr(data_registry, "load_pool", lambda *a, **k: pytest.fail("retrained"))
    again = vit_classifier.pretrained_state(make_vit(16, 4, 1, 32, 1, 4), pretrain,
                                            (1, 16, 16), seed=3)
    assert again.keys() == first.keys()
    assert all(torch.equal(again[k], first[k]) for k in first)
    # another seed is another file
    monkeypatch.undo()
    monkeypatch.setenv("CLENV_CACHE", str(tmp_path))
    vit_classifier.pretrained_state(make_vit(16, 4, 1, 32, 1, 4), pretrain, (1, 16, 16), seed=4)
    assert len(list((tmp_path / "pretrain").glob("*.pt"))) == 2


def test_cli_runs_mlcil_digits_ready_file(tmp_path: Path) -> None:
    """The real-data ready file (scikit-learn digits on canvases) end to end, small."""
    require("timm")
    sets = [a for s in [*TINY_SETS, "output.plots=false"] for a in ("--set", s)]
    out = tmp_path / "res"
    assert main(["run", str(SCENARIOS / "mlcil_digits.yaml"), *sets, "--out", str(out),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["n_tasks"] == 5 and 0 < m["map"] <= 1
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["glyphs"] == "digits"
