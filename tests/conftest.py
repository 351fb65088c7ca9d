"""Shared fixtures. Under CI=true a missing optional extra fails instead of skipping."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


def mnist_root() -> Path:
    """The MNIST test set shipped with the repository (data/mnist-test/README.md)."""
    return REPO / "data" / "mnist-test"


def one_line(exc: pytest.ExceptionInfo, *parts: str) -> str:
    """The message of a raised user error: one line holding every part."""
    text = str(exc.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    return text


def require(module: str):
    """Import an optional dependency; skip without it locally, fail under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is missing under CI=true; install .[all,dev]")
        pytest.skip(f"{module} not installed")


@pytest.fixture
def small_cfg() -> dict:
    """A small, fast run config (synthetic data, 3 tasks); CLENV_TEST_DEVICE=cuda runs the
    tests built on it on a GPU."""
    return {
        "name": "small", "seed": 0, "device": os.environ.get("CLENV_TEST_DEVICE", "cpu"),
        "scenario": {"generator": "disjoint", "seed": 0, "n_tasks": 3, "batch_size": 10},
        "data": {"source": "synthetic", "seed": 0, "branching": [6], "dim": 8,
                 "separation": [1.5], "noise": 1.0, "train_per_class": 60,
                 "test_per_class": 20},
        "strategy": {"name": "er", "memory_size": 50},
        "model": {"name": "mlp", "hidden": [32]},
        "eval": {"every": 50},
        "output": {"plots": False},
    }


@pytest.fixture(autouse=True, scope="session")
def _language_cache(tmp_path_factory):
    """Language-head targets are cached in a session folder, never under ~/.cache."""
    old = os.environ.get("CLENV_CACHE")
    os.environ["CLENV_CACHE"] = str(tmp_path_factory.mktemp("clenv_cache"))
    yield
    if old is None:
        os.environ.pop("CLENV_CACHE", None)
    else:
        os.environ["CLENV_CACHE"] = old
