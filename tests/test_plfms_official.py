"""PL-FMS's importance memory against the released code (i-Blurry's and HLE's
utils/data_loader.py: MemoryDataset.replace_sample, get_batch, update_loss_history; HLE's
methods/pl_fms.py: samplewise_importance_memory, samplewise_loss_update). Every expected value
below is worked by hand from those definitions, not replayed from clenv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clenv.strategies.importance_memory import ImportanceMemory

REPO = Path(__file__).resolve().parents[1]


def _memory(units: list[int], capacity: int, n_units: int = 4, seed: int = 0
            ) -> ImportanceMemory:
    mem = ImportanceMemory(capacity, (1,), torch.float32, n_units=n_units, n_levels=1,
                           rng=np.random.default_rng(seed))
    for u in units:
        slot = mem.choose_slot(u)
        mem.put(slot, torch.tensor([float(u)]), torch.tensor(u), u, np.zeros(0, np.int64))
    return mem


def test_importance_update_by_hand() -> None:
    """s[P] -= (1 - ema) (delta - mean(s[P]) / |P|), delta = mean(loss_now - loss_prev) over
    the slots not replaced since the last update; no decay of s."""
    mem = _memory([0, 0, 1, 1], capacity=4)
    mem.importance[:4] = [0.2, 0.4, -0.1, 0.3]
    # two memory batches since the last update: slots {0, 2} then {2, 3}
    mem.record_draw(np.array([0, 2]))
    mem.record_draw(np.array([2, 3]))
    loss_prev = np.array([1.0, 2.0, 0.5, 1.5])
    loss_now = np.array([0.8, 1.5, 0.6, 1.0])
    mem.update_importance(loss_prev, loss_now, ema=0.9)
    # delta = mean(-0.2, -0.5, 0.1, -0.5) = -0.275; P = [0, 2, 2, 3]:
    # mean(s[P]) / |P| = ((0.2 - 0.1 - 0.1 + 0.3) / 4) / 4 = 0.01875
    # step = -0.275 - 0.01875 = -0.29375; s[{0, 2, 3}] += 0.1 * 0.29375 (slot 2 once)
    np.testing.assert_allclose(mem.importance[:4], [0.229375, 0.4, -0.070625, 0.329375])
    # a sample of class 0 replaces slot 1: it starts at class 0's other samples' mean (slot 0)
    mem.put(1, torch.tensor([0.0]), torch.tensor(0), 0, np.zeros(0, np.int64))
    assert mem.importance[1] == pytest.approx(0.229375)
    mem.record_draw(np.array([1, 3]))
    # slot 1 was replaced: its loss change (9.0 - 1.5) is left out of delta
    mem.update_importance(loss_now, np.array([0.7, 9.0, 0.4, 1.2]), ema=0.9)
    # delta = mean(-0.1, -0.2, 0.2) = -1/30; mean(s[1], s[3]) / 2 = 0.279375 / 2 = 0.1396875
    # step = -1/30 - 0.1396875; s[{1, 3}] -= 0.1 * step
    step = -1 / 30 - 0.1396875
    np.testing.assert_allclose(mem.importance[:4], [0.229375, 0.229375 - 0.1 * step,
                                                    -0.070625, 0.329375 - 0.1 * step])


def test_first_update_and_undrawn_slots() -> None:
    """No previous losses: delta = 0, so the drawn slots move by (1 - ema) mean(s[P]) / |P|;
    slots not drawn keep their importance (no decay); nothing drawn, nothing changes."""
    mem = _memory([0, 1, 2], capacity=3)
    mem.importance[:3] = [0.5, -0.2, 0.1]
    mem.record_draw(np.array([0]))
    mem.update_importance(None, np.ones(3), ema=0.9)
    # step = 0 - 0.5 / 1; s0 = 0.5 + 0.1 * 0.5
    np.testing.assert_allclose(mem.importance[:3], [0.55, -0.2, 0.1])
    mem.update_importance(np.ones(3), np.zeros(3), ema=0.9)  # no draw since: no change
    np.testing.assert_allclose(mem.importance[:3], [0.55, -0.2, 0.1])


def test_new_sample_starts_at_its_class_mean() -> None:
    """replace_sample: the mean over the other samples of the newcomer's class; the first
    sample of a class gets 0 in a free slot and the memory-wide mean when it replaces one."""
    mem = _memory([0, 0, 1], capacity=5)
    mem.importance[:3] = [0.2, 0.6, -1.0]
    mem.put(3, torch.zeros(1), torch.tensor(0), 0, np.zeros(0, np.int64))
    assert mem.importance[3] == pytest.approx(0.4)  # class 0's mean, not the memory's -0.067
    mem.put(4, torch.zeros(1), torch.tensor(2), 2, np.zeros(0, np.int64))
    assert mem.importance[4] == 0.0  # first of class 2, free slot
    # full: importance [0.2, 0.6, -1.0, 0.4, 0.0]; a first sample of class 3 replaces slot 2
    mem.put(2, torch.zeros(1), torch.tensor(3), 3, np.zeros(0, np.int64))
    assert mem.importance[2] == pytest.approx((0.2 + 0.6 - 1.0 + 0.4 + 0.0) / 5)
    # a class-0 sample replacing slot 0: the mean of class 0's other samples, slots 1 and 3
    mem.put(0, torch.zeros(1), torch.tensor(0), 0, np.zeros(0, np.int64))
    assert mem.importance[0] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(20))
def test_memory_batches_have_no_repeated_slot(seed: int) -> None:
    """get_batch draws np.random.choice(len(memory), size, replace=False); at most the whole
    memory."""
    mem = _memory([0, 1, 2, 3, 0], capacity=5, seed=seed)
    full = mem.sample(5)
    assert sorted(full.tolist()) == [0, 1, 2, 3, 4]
    part = mem.sample(3)
    assert len(set(part.tolist())) == 3
    assert len(mem.sample(8)) == 5  # capped at the memory's size
    assert mem.drawn.tolist() == full.tolist() + part.tolist() + mem.drawn[8:].tolist()
    assert len(mem.drawn) == 13


def test_eviction_ties_follow_arrival_order() -> None:
    """np.argmax over classes in order of appearance, np.argmin over a class's index list in
    order of joining: among equally important samples the class's oldest goes first."""
    # classes 1 and 0 tie at 2 samples each; class 1 appeared first
    mem = _memory([1, 0, 1, 0], capacity=4)
    assert mem.choose_slot(2) == 0  # class 1, its older sample
    # one class, every importance 0: newcomers cycle through the slots (FIFO), not slot 0 again
    mem = _memory([0, 0, 0], capacity=3, n_units=1)
    order = []
    for _ in range(4):
        slot = mem.choose_slot(0)
        order.append(slot)
        mem.put(slot, torch.zeros(1), torch.tensor(0), 0, np.zeros(0, np.int64))
    assert order == [0, 1, 2, 0]


def _plfms(**params):
    from clenv.strategies.plfms import PLFMS
    from clenv.strategies.spec import StrategySpec

    s = PLFMS(lr=0.05, memory_size=6, flexible_sampling=False, replay_batch_size=2,
              updates_per_sample=1.0, **params)
    s.setup(StrategySpec(input_shape=(3,), image=False, n_classes=3, batch_size=4,
                         stream_length=100, n_tasks=1, model={"name": "mlp", "hidden": [8]}))
    return s


def _batch(k: int):
    x = np.random.default_rng(k).normal(size=(4, 3)).astype(np.float32)
    info = {"y": np.array([0, 1, 2, 0]), "valid": np.ones(4, dtype=bool),
            "new_classes": {0: {0: "a", 1: "b", 2: "c"}} if k == 0 else {}}
    return {"x": x, "valid": np.ones(4, dtype=np.int8)}, info


def _count_updates(s, monkeypatch) -> list[int]:
    calls = []
    inner = s.memory.update_importance

    def spy(loss_prev, loss_now, ema):
        calls.append(s.grad_steps)
        return inner(loss_prev, loss_now, ema)

    monkeypatch.setattr(s.memory, "update_importance", spy)
    return calls


def test_importance_updates_every_period_steps(monkeypatch) -> None:
    """samplewise_loss_update runs after every step and updates when the step count is a
    multiple of imp_update_period: 5 in HLE's code (the default and the hle_plfms preset)."""
    s = _plfms()
    assert s.params.get("importance_period", 5) == 5
    calls = _count_updates(s, monkeypatch)
    for k in range(3):  # 4 steps per call (updates_per_sample 1, 4 rows)
        s.learn(*_batch(k))
    assert s.grad_steps == 12 and calls == [5, 10]
    preset = yaml.safe_load((REPO / "strategies/hle_plfms.yaml").read_text())
    assert preset["importance_period"] == 5
    s1 = _plfms(importance_period=1)  # i-Blurry's CLIB
    calls1 = _count_updates(s1, monkeypatch)
    s1.learn(*_batch(0))
    assert calls1 == [1, 2, 3, 4]


def test_only_memory_batches_are_credited(monkeypatch) -> None:
    """update_loss_history credits the memory indices get_batch drew (previous_idx), not the
    stream rows' memory slots; every memory batch is free of repeats."""
    from clenv.strategies.registry import STRATEGIES

    assert STRATEGIES["plfms"].fields["importance_period"].default == 5
    s = _plfms(importance_period=100)
    batches = []
    inner = s.memory.sample

    def spy(k):
        out = inner(k)
        batches.append(out.copy())
        return out

    sizes = []
    monkeypatch.setattr(s.memory, "sample", lambda k: (sizes.append(s.memory.size), spy(k))[1])
    s.learn(*_batch(0))
    assert len(batches) == 4 and all(len(b) == 2 == len(set(b.tolist())) for b in batches)
    assert s.memory.drawn.tolist() == np.concatenate(batches).tolist()
    # the memory is updated before training (online_step: update_memory, then online_train):
    # the first memory batch already draws from the batch's own 4 samples
    assert sizes[0] == 4


def test_fms_refill_keeps_the_batch_size(monkeypatch) -> None:
    """online_train: memory_batch_size = min(len(memory), batch_size - kept stream rows), so
    with a full memory every step trains on stream rows + memory rows = a constant size."""
    s = _plfms(importance_period=100)
    s.params["flexible_sampling"] = True
    s.learn(*_batch(0))
    s.learn(*_batch(1))  # memory full (6)
    rows = []
    inner = s.step
    monkeypatch.setattr(s, "step", lambda bx, by: (rows.append(len(by)), inner(bx, by))[1])
    for k in range(2, 6):
        s.learn(*_batch(k))
    assert rows == [4 + 2] * 16  # 4 stream rows (kept or refilled) + replay_batch_size 2


def test_hierarchical_loss_is_summed_ce_over_batch_size() -> None:
    """pl_fms.py: loss = (loss_sup + loss_sub) / x.size(0), criterion CrossEntropyLoss with
    reduction='sum' (main.py); each row at its own level's head. By hand: coarse logits
    [2, 0] for a coarse row of class 0 (CE = ln(1 + e^-2)); fine logits [0, 1, 0, 0] for a
    fine row of class 1 (CE = ln(3 + e) - 1) and [0, 0, 0, 0] for a fine row of class 3
    (CE = ln 4): the loss is their sum / 3."""
    from clenv.strategies.plfms import PLFMS
    from clenv.strategies.spec import StrategySpec

    s = PLFMS(lr=0.05, memory_size=6)
    s.setup(StrategySpec(input_shape=(3,), image=False, n_classes=4, batch_size=3,
                         stream_length=100, n_tasks=2, levels=2, level_sizes=[2, 4],
                         parents=[np.array([0, 0, 1, 1])], model={"name": "mlp"}))
    for m in s.level_seen:
        m[:] = True
    coarse = torch.tensor([[2.0, 0.0], [5.0, -5.0], [5.0, -5.0]])  # rows 1, 2 unused here
    fine = torch.tensor([[9.0, 9.0, 9.0, 9.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([[0, 0], [1, 1], [3, 1]])
    expected = (np.log(1 + np.exp(-2.0)) + np.log(3 + np.e) - 1 + np.log(4.0)) / 3
    assert s.loss([coarse, fine], y).item() == pytest.approx(expected, rel=1e-6)
