"""Lifelong streams: segment invariants, drift proportions, seeds, random access, hidden
boundaries, domains, few-shot and related-pair probes, and the ready lifelong scenarios."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.runner import Run
from clenv.scenarios.registry import build_stream, validate_scenario
from clenv.strategies.base import Strategy
from tests.conftest import SCENARIOS, mnist_root

POOL_CFG = {"source": "synthetic", "seed": 0, "depth": 2, "branching": [5, 4],
            "separation": [2.0, 0.6], "noise": 1.0, "dim": 6, "train_per_class": 40,
            "test_per_class": 10}
SEGMENTS = [
    {"name": "A", "type": "classes", "classes": [0, 4], "length": 300},
    {"name": "B", "type": "classes", "classes": [8, 12], "length": 250},
    {"type": "drift", "from": "A", "to": "B", "length": 400},
    {"type": "revisit", "of": 0, "length": 120},
    {"name": "Ap", "type": "domain", "of": "A", "domain": {"kind": "permute", "seed": 3},
     "length": 200},
    {"type": "few_shot", "classes": [18, 19], "shots": 5, "repeat": 3},
    {"type": "related", "to": "B", "relation": "siblings", "length": 150, "k": 20},
    {"type": "related", "to": "A", "relation": "domain",
     "domain": {"kind": "shift", "amount": 1.0}, "length": 100},
]


@pytest.fixture(scope="module")
def pool():
    return load_pool(POOL_CFG)


def make(pool, segments=SEGMENTS, **kw):
    cfg = validate_scenario({"generator": "lifelong", "segments": segments, **kw})
    return build_stream(pool, cfg)


def test_segment_lengths_and_rows(pool):
    s = make(pool)
    lengths = [300, 250, 400, 120, 200, 5 * 2 * 3, 150, 100]
    assert s.task_ends.tolist() == np.cumsum(lengths).tolist()
    assert s.task_starts.tolist() == [0, *np.cumsum(lengths)[:-1].tolist()]
    assert s.length == sum(lengths) and s.n_tasks == len(lengths)
    # concepts: A, B, A-permuted, few-shot, B-siblings (auto), A-shifted
    assert s.column_names[:2] == ["A", "B"] and s.column_names[2] == "Ap"
    assert s.first_row == [0, 1, 4, 5, 6, 7]
    assert s.n_domains == 3 and not s.square


def test_class_sets_domains_and_revisit(pool):
    s = make(pool)
    m = s.materialize()
    y = pool.y[m["index"]]
    C = pool.n_classes
    expect = {0: {0, 4}, 1: {8, 12}, 2: {0, 4, 8, 12}, 3: {0, 4}, 4: {0, 4}, 5: {18, 19},
              6: {9, 13}, 7: {0, 4}}
    for seg, classes in expect.items():
        sel = m["task"] == seg
        assert set(np.unique(y[sel]).tolist()) == classes, seg
    assert (m["major_task"][m["task"] == 3] == 0).all()  # revisit: the same column as A
    assert (m["domain"][m["task"] == 4] == 1).all() and (m["domain"][m["task"] == 7] == 2).all()
    assert (m["domain"][m["task"] < 4] == 0).all()
    # every position's unit belongs to its column
    units = m["domain"] * C + y
    for j, col in enumerate(s.columns):
        assert np.isin(units[m["major_task"] == j], col).all()
    # auto siblings of B's classes [8, 12] share their parents
    assert pool.ancestors[[9, 13], -1].tolist() == pool.ancestors[[8, 12], -1].tolist()


def test_first_exposure_and_concept_passes(pool):
    s = make(pool)
    m = s.materialize()
    # concept A has 80 training samples: positions 0..79 of A's sequence are its first pass
    a = np.flatnonzero(m["major_task"] == 0)
    assert m["first_exposure"][a[:80]].all() and not m["first_exposure"][a[80:]].any()
    assert len(set(m["index"][a[:80]].tolist())) == 80
    # each pass of a concept is a permutation of its training samples
    assert sorted(m["index"][a[80:160]].tolist()) == sorted(m["index"][a[:80]].tolist())
    # few-shot: exactly 5 distinct examples per class, passed 3 times
    fs = m["task"] == 5
    assert len(set(m["index"][fs].tolist())) == 10
    assert m["first_exposure"][fs].sum() == 10
    # is_new_class marks the first position of every class
    first = {}
    for p, c in enumerate(pool.y[m["index"]].tolist()):
        first.setdefault(c, p)
    assert np.flatnonzero(m["is_new_class"]).tolist() == sorted(first.values())


@pytest.mark.parametrize("schedule", ["linear", "gaussian"])
def test_drift_proportions(pool, schedule):
    W = 20000
    segs = [{"name": "A", "type": "classes", "classes": [0, 4], "length": 100},
            {"name": "B", "type": "classes", "classes": [8, 12], "length": 100},
            {"type": "drift", "from": "A", "to": "B", "length": W, "schedule": schedule,
             "centre": 0.4, "width": 0.1}]
    s = make(pool, segs)
    m = s.slice(200, 200 + W)
    to_b = (m["major_task"] == 1).astype(float)
    t = np.arange(W) / W
    from scipy.special import ndtr

    p = t if schedule == "linear" else ndtr((t - 0.4) / 0.1)
    for lo in range(0, W, 2000):  # ten windows, each within 4 binomial standard deviations
        n = 2000
        expected = p[lo:lo + n].sum()
        sd = np.sqrt((p[lo:lo + n] * (1 - p[lo:lo + n])).sum()) + 1e-9
        assert abs(to_b[lo:lo + n].sum() - expected) < 4 * sd + 1, (lo, expected)


def test_seeds_reproduce(pool):
    a = make(pool, seed=5).materialize()
    b = make(pool, seed=5).materialize()
    c = make(pool, seed=6).materialize()
    for f in a:
        np.testing.assert_array_equal(a[f], b[f])
    assert not np.array_equal(a["index"], c["index"])


def test_lazy_equals_materialised_on_100k_mixed_stream(pool):
    segs = [{"name": "A", "type": "classes", "classes": [0, 4], "length": 20000},
            {"name": "B", "type": "classes", "classes": [8, 12], "length": 15000},
            {"type": "drift", "from": "A", "to": "B", "length": 25000, "schedule": "gaussian"},
            {"type": "domain", "of": "B", "domain": {"kind": "noise"}, "length": 15000},
            {"type": "revisit", "of": "A", "length": 10000},
            {"type": "few_shot", "classes": [18], "shots": 3, "repeat": 100},
            {"type": "related", "to": "A", "relation": "siblings", "length": 14700}]
    s = make(pool, segs, chunk_size=3001)
    assert s.length == 100_000
    full = s.materialize()
    rng = np.random.default_rng(0)
    ks = rng.permutation(s.n_chunks)
    fresh = make(pool, segs, chunk_size=3001)
    for k in ks[:12]:  # chunk k alone, in any order, from a fresh stream
        rec = fresh.chunk(int(k))
        for f, v in rec.items():
            np.testing.assert_array_equal(v, full[f][k * 3001:(k + 1) * 3001])
    for _ in range(20):
        a = int(rng.integers(0, s.length))
        b = int(min(s.length, a + rng.integers(1, 9000)))
        part = s.slice(a, b)
        for f, v in part.items():
            np.testing.assert_array_equal(v, full[f][a:b])
    assert s.sha256() == fresh.sha256()


def test_domain_inputs_in_the_env(pool):
    cfg = load_config({"scenario": {"generator": "lifelong", "segments": SEGMENTS,
                                    "batch_size": 10}, "data": POOL_CFG})
    run = Run(cfg, pool=pool)
    env, stream = run.env, run.env.stream
    obs, _ = env.reset(seed=0)
    done, seen_perm = False, 0
    while not done:
        nxt, _, done, _, info = env.step(np.zeros(10, dtype=np.int64))
        v = info["valid"]
        raw = pool.x[info["sample_id"][v]]
        seg = info["task"][v]
        same = seg != 4
        np.testing.assert_allclose(obs["x"][v][same & (seg != 7)], raw[same & (seg != 7)])
        perm = seg == 4
        if perm.any():  # a permutation moves the features; sorted values stay
            seen_perm += 1
            np.testing.assert_allclose(np.sort(obs["x"][v][perm], axis=1),
                                       np.sort(raw[perm], axis=1), rtol=1e-6)
            assert not np.allclose(obs["x"][v][perm], raw[perm])
        assert env.observation_space.contains(nxt)
        obs = nxt
    assert seen_perm == 20 and stream.n_domains == 3


class Recorder(Strategy):
    """Records what reaches the learner."""

    def setup(self, spec):
        super().setup(spec)
        self.hooks, self.keys, self.valid = [], set(), []

    def predict(self, obs):
        return np.zeros((len(obs["x"]), self.spec.n_classes), dtype=np.float32)

    def learn(self, batch, info):
        self.keys |= set(info)
        self.valid.append(int(info["valid"].sum()))
        return {}

    def on_task_start(self, t):
        self.hooks.append(("start", t))

    def on_task_end(self, t):
        self.hooks.append(("end", t))


@pytest.mark.parametrize("boundaries", ["hidden", "exposed"])
def test_hidden_boundaries_reach_no_learner(pool, boundaries):
    from clenv.events import EventLog
    from clenv.runner import episode

    cfg = load_config({"scenario": {"generator": "lifelong", "segments": SEGMENTS,
                                    "batch_size": 16, "boundaries": boundaries},
                       "data": POOL_CFG, "eval": {"every": 0}})
    run = Run(cfg, pool=pool)
    rec = Recorder()
    log = EventLog(None)
    episode(cfg, run.env, rec, log, {})
    rows = [e for e in log.records if e.get("kind") == "task_end"]
    assert len(rows) == run.env.stream.n_tasks  # rows still taken at every segment end
    if boundaries == "hidden":
        assert rec.hooks == []
        assert not rec.keys & {"task", "major_task", "boundary"}
        assert all(v == 16 for v in rec.valid[:-1])  # no padding gives a boundary away
    else:
        assert ("start", 0) in rec.hooks and ("end", 7) in rec.hooks
        assert {"task", "boundary"} <= rec.keys
        assert any(v < 16 for v in rec.valid[:-1])


@pytest.mark.parametrize("segments, where", [
    ([{"type": "nope", "length": 5}], "scenario.segments[0].type"),
    ([{"type": "classes", "classes": [0], "length": 5, "colour": 1}],
     "scenario.segments[0].colour"),
    ([{"type": "classes", "classes": [0]}], "scenario.segments[0].length"),
    ([{"type": "revisit", "of": 0, "length": 5}], "scenario.segments[0].of"),
    ([{"type": "classes", "classes": [0], "length": 5},
      {"type": "revisit", "of": "X", "length": 5}], "scenario.segments[1].of"),
    ([{"type": "classes", "classes": [0], "length": 5},
      {"type": "classes", "classes": [1], "length": 5},
      {"type": "drift", "from": 0, "to": 1, "length": 5},
      {"type": "revisit", "of": 2, "length": 5}], "scenario.segments[3].of"),
    ([{"type": "classes", "classes": [0], "length": 5},
      {"type": "related", "to": 0, "relation": "domain", "length": 5}],
     "scenario.segments[1].domain"),
    ([{"type": "classes", "classes": [0], "length": 5},
      {"type": "domain", "of": 0, "domain": {"kind": "blur"}, "length": 5}],
     "scenario.segments[1].domain.kind"),
    ([], "scenario.segments"),
])
def test_structure_errors_name_the_segment(segments, where):
    """Structure errors of the dict loader and the segment rules of the typed model
    (clenv.scenarios.lifelong.check_lifelong), both through load_config."""
    with pytest.raises(ConfigError) as exc:
        load_config({"scenario": {"generator": "lifelong", "segments": segments}})
    assert str(exc.value).startswith(where)


@pytest.mark.parametrize("segments, where, text", [
    ([{"type": "classes", "classes": [0, 99], "length": 5}], "scenario.segments[0].classes",
     "no training samples"),
    ([{"type": "classes", "classes": [0, 1], "length": 5},
      {"type": "classes", "classes": [1, 2], "length": 5}], "scenario.segments[1].classes",
     "disjoint"),
])
def test_pool_errors_name_the_segment(pool, segments, where, text):
    with pytest.raises(ConfigError) as exc:
        make(pool, segments)
    assert str(exc.value).startswith(where) and text in str(exc.value)


def test_auto_siblings_need_a_tree():
    flat = load_pool({"source": "synthetic", "dim": 4, "train_per_class": 5,
                      "test_per_class": 2})
    segs = [{"type": "classes", "classes": [0], "length": 5},
            {"type": "related", "to": 0, "relation": "siblings", "length": 5}]
    with pytest.raises(ConfigError, match="label tree"):
        make(flat, segs)


def test_probes_and_transfer_metrics(pool, tmp_path):
    cfg = load_config({"scenario": {"generator": "lifelong", "segments": SEGMENTS,
                                    "batch_size": 10},
                       "data": POOL_CFG, "strategy": {"name": "er", "memory_size": 50},
                       "model": {"name": "mlp", "hidden": [16]}, "eval": {"every": 100}})
    s = Run(cfg, pool=pool).env.stream
    fs_start, rel_start, rel2 = (int(s.task_starts[i]) for i in (5, 6, 7))
    # few-shot passes of 10 samples; pair 0 after k=20; pair 1: transfer_k capped by length
    assert [p for p, _ in s.probes] == [fs_start + 10, fs_start + 20, fs_start + 30,
                                        rel_start + 20, rel2 + 100]
    m = Run(cfg, pool=pool).execute(tmp_path)
    assert len(m["transfer"]) == 2 and len(m["few_shot"]) == 1
    t0 = m["transfer"][0]
    assert t0["k"] == 20 and t0["relation"] == "siblings"
    assert t0["forward"] == pytest.approx(t0["learner_after_k"] - t0["scratch_after_k"])
    R = m["accuracy_matrix"]
    assert t0["backward"] == pytest.approx(R[6][1] - R[5][1])
    fs = m["few_shot"][0]
    assert len(fs["curve"]) == 3 and fs["after_k"] == fs["curve"][0]
    assert m["few_shot_accuracy"] == fs["after_k"]
    assert m["f_last"] is not None and m["bwt"] is None and m["fwt"] is None
    events = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    scratch = [e for e in events if e["type"] == "scratch"]
    assert [e["samples"] for e in scratch] == [20, 100]


def _lifelong_yamls():
    return sorted(SCENARIOS.glob("lifelong_*.yaml"))


@pytest.mark.parametrize("path", _lifelong_yamls(), ids=lambda p: p.stem)
def test_ready_lifelong_scenarios(path, tmp_path):
    cfg = yaml.safe_load(path.read_text())
    args = ["run", str(path), "--out", str(tmp_path / "r"), "--quiet"]
    if cfg["data"]["source"] == "mnist":
        args += ["--set", f"data.root={mnist_root()}", "--set", "data.max_train_per_class=100"]
    assert main(args) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["complete"] and m["final_accuracy"] is not None and m["f_last"] is not None
    assert (tmp_path / "r" / "forgetting.png").stat().st_size > 10_000
    segs = cfg["scenario"]["segments"]
    if any(s["type"] == "related" for s in segs):
        assert m["forward_transfer"] is not None and m["backward_transfer"] is not None
    if any(s["type"] == "few_shot" for s in segs):
        assert m["few_shot_accuracy"] is not None
        assert all(len(f["curve"]) == 4 for f in m["few_shot"])


def test_a_resolved_few_shot_config_loads_again():
    """config.yaml holds a few_shot segment's derived length; loading it again (a re-run,
    --resume) accepts that length and refuses another one."""
    cfg = load_config(SCENARIOS / "lifelong_ling_bohn.yaml")
    again = load_config(yaml.safe_load(yaml.safe_dump(cfg)))
    assert again["scenario"] == cfg["scenario"]
    seg = next(i for i, s in enumerate(cfg["scenario"]["segments"]) if s["type"] == "few_shot")
    cfg["scenario"]["segments"][seg]["length"] += 1
    with pytest.raises(ConfigError, match=rf"^scenario\.segments\[{seg}\]\.length: expected "
                                          "shots x classes x repeat"):
        load_config(cfg)
