"""The SimGCD learner's pieces that follow ActiveGCD's released code (train_al_ema.py,
utils_al/al_net.py, utils_al/train_recipes_ema.py), checked by hand: the query scores the
student's cosines / 0.1, the EMA model (decay 0.9) makes the label mapping, and the loss
weights lambda = 0.35 and mean-entropy 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clenv.agcd.config import AGCD_STRATEGY_FIELDS
from clenv.agcd.simgcd import SimGCD, combine
from clenv.config.schema import validate

PARAMS = validate({"base_epochs": 1, "epochs_per_round": 1, "batch_size": 16},
                  AGCD_STRATEGY_FIELDS, "strategy")


@pytest.fixture()
def learner() -> SimGCD:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.repeat([0, 1], 5)
    lr = SimGCD(PARAMS, {"name": "mlp", "hidden": [8]}, (5,), seed=0)
    lr.setup(x[:10], y, x[10:], np.array([0, 1]), 4)
    return lr


def test_defaults_are_the_official_ones() -> None:
    """train_al_ema.py's arguments and its README command: sup_weight 0.35, memax_weight 2,
    logits_temp 0.1, ema_decay 0.9, adaptive_round 2."""
    d = {k: f.default for k, f in AGCD_STRATEGY_FIELDS.items()}
    assert (d["sup_weight"], d["memax_weight"], d["student_temp"], d["ema_decay"],
            d["adaptive_round"]) == (0.35, 2.0, 0.1, 0.9, 2)
    # (1 - lambda) (distill + 2 (ln K - H)) + lambda CE equals clenv's combination up to the
    # constant 2 (1 - lambda) ln K; by hand with ce 1, distill 2, H 0.5: 0.35 + 0.65 (2 - 1)
    terms = {"ce": torch.tensor(1.0), "distill": torch.tensor(2.0), "entropy": torch.tensor(0.5)}
    assert combine(terms, 0.35, 1.0, 2.0).item() == pytest.approx(1.0)


def test_query_scores_are_the_students_cosines_over_0_1(learner: SimGCD) -> None:
    """al_net.py predict_prob: softmax(student output / logits_temp 0.1); the student's output
    is the cosine of L2-normalised features and prototypes."""
    x = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    with torch.no_grad():
        learner.net.eval()
        f = learner.net.backbone(torch.from_numpy(x))
        cos = F.normalize(f, dim=1) @ F.normalize(learner.net.head.weight, dim=1).T
    np.testing.assert_allclose(learner.logits(x), cos.numpy() / 0.1, rtol=1e-5, atol=1e-5)


def test_ema_update_is_decay_0_9(learner: SimGCD) -> None:
    """update_ema_variables: ema <- 0.9 ema + 0.1 student after every step."""
    with torch.no_grad():
        for e in learner.ema.parameters():
            e.fill_(1.0)
        for q in learner.net.parameters():
            q.fill_(3.0)
    learner._ema_update()
    for e in learner.ema.parameters():
        torch.testing.assert_close(e, torch.full_like(e, 0.9 * 1.0 + 0.1 * 3.0))


def test_the_label_mapping_reads_the_ema_model(learner: SimGCD, monkeypatch) -> None:
    """get_labeled_mapping(student_ema, ...): the Hungarian map is made from the EMA model's
    predictions on the labelled and queried samples, not the student's."""
    used = []
    inner = learner._predict

    def spy(net, raw, embed=False):
        used.append(net)
        return inner(net, raw, embed)

    monkeypatch.setattr(learner, "_predict", spy)
    learner.add_queries(np.array([0, 1]), np.array([2, 3]))
    m = learner.update_mapping()
    assert used == [learner.ema] and set(m) == {0, 1, 2, 3}
    # queried samples are trained only through the map (the AL pass): the main pass keeps
    # the original labels (mask_lab of the original loader), so their rows stay unlabelled
    assert (learner.target[learner.n_lab:] == -1).all()
