"""End-to-end runs: metrics recomputed from the event log, determinism, budgets, strategies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clenv.config.loader import load_config
from clenv.metrics.summary import read_events, summarize
from clenv.runner import Run


def run(cfg: dict, out=None, **over) -> dict:
    c = json.loads(json.dumps(cfg))
    for k, v in over.items():
        node = c
        *path, last = k.split("__")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = v
    return Run(load_config(c)).execute(out)


def _acc(counts, key, classes):
    tot = sum(counts["total"][c] for c in classes)
    return sum(counts[key][c] for c in classes) / tot


def test_metrics_json_recomputed_from_events(small_cfg, tmp_path):
    small_cfg["eval"]["reference"] = "joint"
    metrics = run(small_cfg, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    events = read_events(tmp_path / "events.jsonl")
    # the whole metrics.json is a pure function of the log
    assert json.loads(json.dumps(summarize(events))) == on_disk
    assert json.loads(json.dumps(metrics)) == on_disk
    # ... and the main numbers recomputed here by hand from the counts
    start = events[0]
    classes = start["columns"]  # one domain: units are classes
    T = start["n_tasks"]
    rows = sorted([e for e in events if e.get("kind") == "task_end"], key=lambda e: e["row"])
    R = [[_acc(r["counts"], "agnostic", classes[j]) for j in range(T)] for r in rows]
    assert np.allclose(R, on_disk["accuracy_matrix"])
    assert on_disk["final_accuracy"] == pytest.approx(sum(R[-1]) / T)
    forg = [max(R[i][j] for i in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)]
    assert on_disk["average_forgetting"] == pytest.approx(sum(forg) / (T - 1))
    assert on_disk["bwt"] == pytest.approx(sum(R[T - 1][j] - R[j][j] for j in range(T - 1))
                                           / (T - 1))
    aware = [[_acc(r["counts"], "aware", classes[j]) for j in range(T)] for r in rows]
    assert np.allclose(aware, on_disk["accuracy_matrix_task_aware"])
    assert np.all(np.array(aware) >= np.array(R) - 1e-12)  # fewer competitors, never worse
    # events format 3: a task end at an anytime point is one record serving both
    anytime = [e for e in events if e.get("kind") == "anytime"
               or "anytime" in e.get("kinds", ())]
    accs = [_acc(e["counts"], "agnostic", e["seen"]) for e in anytime]
    assert on_disk["a_auc"] == pytest.approx(sum(accs) / len(accs))
    assert on_disk["a_last"] == pytest.approx(accs[-1])
    L, every = start["stream_length"], small_cfg["eval"]["every"]
    assert len(anytime) == -(-L // every)  # every `every` samples, plus one at the stream end
    assert anytime[-1]["samples"] == L
    end = events[-1]
    assert end["type"] == "end"
    assert on_disk["online_accuracy"] == pytest.approx(end["online"]["correct"]
                                                       / end["online"]["count"])
    ref = [e for e in events if e["type"] == "reference"]
    r_star = [_acc(ref[j]["counts"], "agnostic", classes[j]) for j in range(T)]
    assert on_disk["intransigence"] == pytest.approx(sum(r_star[j] - R[j][j]
                                                         for j in range(T)) / T)
    # disjoint class-incremental: no task has usable outputs before it -> fwt null + reason
    assert on_disk["fwt"] is None and "usable" in on_disk["fwt_reason"]
    assert on_disk["init_accuracy"] == [0.0] * T
    for key in ("final_accuracy", "avg_incremental_accuracy", "a_avg", "average_forgetting",
                "forgetting_chaudhry", "bwt", "a_auc", "a_last", "min_acc", "wc_acc",
                "online_accuracy", "old_class_accuracy", "new_class_accuracy", "budget",
                "wall_time", "accuracy_matrix_task_aware", "init_accuracy"):
        assert key in on_disk and on_disk[key] is not None, key
    assert set(on_disk["wall_time"]) >= {"setup", "train", "eval", "reference", "total"}


def _strip_wall(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "wall_time"}


def test_same_seeds_same_metrics(small_cfg, tmp_path):
    a = run(small_cfg, tmp_path / "a")
    b = run(small_cfg, tmp_path / "b")
    assert _strip_wall(a) == _strip_wall(b)
    ev_a = [{k: v for k, v in e.items() if k != "wall"} for e in read_events(tmp_path / "a" /
                                                                               "events.jsonl")]
    ev_b = [{k: v for k, v in e.items() if k != "wall"} for e in read_events(tmp_path / "b" /
                                                                               "events.jsonl")]
    assert ev_a == ev_b
    c = run(small_cfg, seed=1)
    assert _strip_wall(c) != _strip_wall(a)
    d = run(small_cfg, scenario__seed=3)
    assert d["accuracy_matrix"] != a["accuracy_matrix"]


def test_er_beats_naive_and_joint_is_upper(small_cfg):
    small_cfg["scenario"]["epochs"] = 2
    naive = run(small_cfg, strategy={"name": "naive"})
    er = run(small_cfg, strategy={"name": "er", "memory_size": 100})
    joint = run(small_cfg, strategy={"name": "joint", "epochs": 5})
    assert naive["average_forgetting"] > 0.5
    assert er["final_accuracy"] > naive["final_accuracy"] + 0.2
    assert joint["final_accuracy"] >= er["final_accuracy"] - 0.05


def test_budget_counters(small_cfg):
    m = run(small_cfg)
    L, B = m["stream_length"], small_cfg["scenario"]["batch_size"]
    b = m["budget"]
    steps = L // B
    assert b["grad_steps"] == steps
    assert b["buffer_samples"] == 50 and b["buffer_bytes"] == 50 * 8 * 4 + 50 * 8
    # first step has an empty buffer; afterwards B stream + B replayed samples per step
    assert b["samples_processed"] == L + B * (steps - 1)
    assert b["n_params"] == 8 * 32 + 32 + 32 * 6 + 6
    assert m["budget_exceeded"] == []


def test_budget_exceeded_is_reported(small_cfg):
    small_cfg["strategy"]["updates_per_sample"] = 0.2
    m = run(small_cfg, budget={"memory_size": 20, "updates_per_sample": 0.05})
    assert any(s.startswith("memory_size") for s in m["budget_exceeded"])
    assert any(s.startswith("updates_per_sample") for s in m["budget_exceeded"])


def test_updates_per_sample(small_cfg):
    m = run(small_cfg, strategy={"name": "naive", "updates_per_sample": 0.5})
    assert m["budget"]["grad_steps"] == m["stream_length"] // 2
    # the scenario's budget sets the rate when the strategy does not
    m = run(small_cfg, strategy={"name": "naive"}, budget={"updates_per_sample": 0.3})
    assert m["budget"]["grad_steps"] == int(m["stream_length"] * 0.3)
    assert m["budget_exceeded"] == []


def test_hidden_boundaries_and_epochs(small_cfg):
    m = run(small_cfg, scenario__boundaries="hidden", scenario__epochs=2)
    assert m["complete"] and len(m["accuracy_matrix"]) == 3
    assert m["stream_length"] == 2 * 6 * 60 * 1  # 6 classes x 60 train x 2 epochs


def test_blurry_stream_has_fwt(small_cfg):
    m = run(small_cfg, scenario={"generator": "blurry", "blurry": 30, "n_tasks": 3,
                                 "batch_size": 10})
    assert m["fwt"] is not None and m["fwt_reason"] is None


def test_user_strategy(small_cfg):
    m = run(small_cfg, strategy={"name": "tests.user_strategy:MajorityClass", "smoothing": 0.5})
    assert m["complete"] and m["budget"] == {}
    # it always predicts one class: final accuracy is that class's share of the test set
    assert m["final_accuracy"] < 0.5


def test_cnn_on_digits_and_scores(tmp_path):
    cfg = {"name": "cnn", "scenario": {"n_tasks": 2, "batch_size": 16},
           "data": {"source": "digits"}, "strategy": {"name": "er", "memory_size": 64},
           "model": {"name": "cnn", "width": 8, "blocks": [1, 1]},
           "eval": {"every": 0}, "output": {"save_scores": True, "plots": False}}
    m = run(cfg, tmp_path)
    assert m["complete"] and m["a_auc"] is None
    with np.load(tmp_path / "scores.npz") as z:
        assert set(z.files) == {"row_0", "row_1"}
        assert z["row_0"].dtype == np.float16 and z["row_0"].shape[1] == 10


def test_evaluator_never_credits_fully_masked_rows(small_cfg):
    from clenv.evaluation.single_label import Evaluator

    r = Run(load_config(small_cfg))

    class AllMasked:
        def predict(self, obs):
            return np.full((len(obs["x"]), r.env.n_classes), -np.inf, dtype=np.float32)

    ev = Evaluator(r.pool, r.env.stream)
    seen = np.ones(r.env.n_classes, dtype=bool)
    counts, _ = ev.evaluate(AllMasked(), seen, task_aware=True,
                            fwt_masks=np.ones((3, r.env.n_classes), dtype=bool))
    # argmax over all -inf would say class 0 for every row; that must not count as correct
    assert counts["agnostic"] == counts["aware"] == counts["fwt_base"] == [0] * 6
    assert sum(counts["total"]) == 6 * 20


@pytest.mark.parametrize("every", [40, 50])
def test_one_evaluation_record_per_position(small_cfg, every):
    """Events format 3: a task end that is also an anytime point (or the stream end) is one
    record serving both; the same model is never evaluated twice at one position. With 360
    stream samples and task ends at 120, 240, 360: every=40 puts all three task ends on
    anytime points; every=50 puts only the stream end there (360 is not a multiple of 50)."""
    from clenv.events import EventLog
    from clenv.metrics.summary import is_anytime

    c = json.loads(json.dumps(small_cfg))
    c["eval"]["every"] = every
    r = Run(load_config(c))
    log = EventLog(None)
    from clenv.runner import episode, make_strategy

    episode(r.cfg, r.env, make_strategy(r.cfg["strategy"]), log, {})
    evals = [e for e in log.records if e["type"] == "eval" and e["kind"] != "init"]
    positions = [e["samples"] for e in evals]
    assert len(positions) == len(set(positions))  # one record per position
    assert log.records[0]["format"] == 3
    L = log.records[0]["stream_length"]
    assert L == 360 and log.records[0]["task_ends"] == [120, 240, 360]
    anytime = [e["samples"] for e in evals if is_anytime(e)]
    assert anytime == sorted({*range(every, L, every), L})
    both = [e["samples"] for e in evals if e["kind"] == "task_end" and is_anytime(e)]
    assert both == ([120, 240, 360] if every == 40 else [360])
