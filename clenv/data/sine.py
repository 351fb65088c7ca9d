"""The ``sine`` source: the continual sine-regression benchmark, no files needed.

Function t is y = A_t sin(x + phi_t) with x ~ U[-5, 5]; amplitudes and phases are drawn per
function from ``data.seed`` (the ranges default to the sinusoid tasks of Finn et al., "Model-
Agnostic Meta-Learning", ICML 2017: A in [0.1, 5], phi in [0, pi]; learned one after another
as in Javed & White, "Meta-Learning Representations for Continual Learning", NeurIPS 2019).
With ``one_hot`` (the default, as in Javed & White) the input also names its function.
The pool's classes are the functions (a row's label is the id of the function it samples), so
any stream generator orders them into tasks; the real targets come from :func:`sine_targets`.
"""

from __future__ import annotations

import math

import numpy as np

from clenv.config.schema import Field
from clenv.data.pool import Pool
from clenv.errors import ConfigError

NAME = "sine"
NEEDS_ROOT = False
DOC = ("Continual regression: sine waves y = A_t sin(x + phi_t), one function per class "
       "(seeded amplitudes and phases), no files needed.")

FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "random seed of the amplitudes, phases and inputs"),
    "n_functions": Field(int, 5, "sine waves (one class, hence one task, each)", min=1,
                         max=1000),
    "train_per_function": Field(int, 200, "train samples per function", min=1, max=100_000),
    "test_per_function": Field(int, 100, "test samples per function", min=1, max=100_000),
    "amplitude": Field(list, [0.1, 5.0], "[low, high] of the uniform amplitude draw",
                       item=float),
    "phase": Field(list, [0.0, math.pi], "[low, high] of the uniform phase draw", item=float),
    "one_hot": Field(bool, True, "append the function id as a one-hot code to x (the input "
                                 "of Javed & White's incremental sine waves); false: x alone, "
                                 "so the functions contradict each other"),
}

X_RANGE = (-5.0, 5.0)


def check(params: dict, key: str) -> None:
    """Each range is two finite numbers, low <= high."""
    for name in ("amplitude", "phase"):
        r = params[name]
        if len(r) != 2 or not all(map(math.isfinite, r)) or r[0] > r[1]:
            raise ConfigError(f"{key}.{name}", f"expected [low, high] with low <= high, got "
                                               f"{r!r:.60}", f"e.g. {FIELDS[name].default}")


def load(params: dict, key: str) -> Pool:
    """The pool of ``n_functions`` sine waves: x (N, 1) float32 (x, then the one-hot function
    id when ``one_hot``: (N, 1 + n_functions)), y the function id."""
    check(params, key)
    T, n_tr, n_te = (params["n_functions"], params["train_per_function"],
                     params["test_per_function"])
    rng = np.random.default_rng(np.random.SeedSequence([params["seed"], 0x5133]))
    amplitude = rng.uniform(*params["amplitude"], size=T)
    phase = rng.uniform(*params["phase"], size=T)
    per = n_tr + n_te
    y = np.repeat(np.arange(T, dtype=np.int64), per)
    x = rng.uniform(*X_RANGE, size=(T * per, 1)).astype(np.float32)
    if params["one_hot"]:
        x = np.concatenate([x, np.eye(T, dtype=np.float32)[y]], axis=1)
    train = np.tile(np.arange(per) < n_tr, T)
    names = [f"sine_{t}" for t in range(T)]
    return Pool(x, y, train, names, name=NAME,
                meta={"amplitude": amplitude.tolist(), "phase": phase.tolist()})


def sine_targets(pool: Pool, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The real targets A_y sin(x + phi_y) of inputs ``x`` (n, d), x in column 0, sampling
    functions ``y``."""
    amplitude = np.asarray(pool.meta["amplitude"])
    phase = np.asarray(pool.meta["phase"])
    return (amplitude[y] * np.sin(x[:, 0].astype(np.float64) + phase[y])).astype(np.float32)
