"""Keyed random-access permutations of range(n): a Feistel network with cycle walking.

``keyed_permutation(positions, n, key)`` maps positions to a permutation of range(n) without
materialising it, so a stream can compute any chunk in O(chunk) time and memory.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_ROUNDS = 4


def _round_fn(v: np.ndarray, k: np.uint64, mask: np.uint64) -> np.ndarray:
    v = (v ^ k) * _M1
    v ^= v >> np.uint64(31)
    v *= _M2
    v ^= v >> np.uint64(29)
    return v & mask


def _feistel(x: np.ndarray, half_bits: int, keys: np.ndarray) -> np.ndarray:
    mask = np.uint64((1 << half_bits) - 1)
    shift = np.uint64(half_bits)
    left = x >> shift
    right = x & mask
    for k in keys:
        left, right = right, left ^ _round_fn(right, k, mask)
    return (left << shift) | right


def round_keys(seed_words: list[int]) -> np.ndarray:
    """Round keys from integer words through numpy's SeedSequence."""
    return np.random.SeedSequence(seed_words).generate_state(_ROUNDS, dtype=np.uint64)


def keyed_permutation(positions: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Return perm[positions] for a keyed permutation ``perm`` of range(n) (int64)."""
    positions = np.asarray(positions, dtype=np.uint64)
    if n <= 1:
        return np.zeros(len(positions), dtype=np.int64)
    half_bits = max(1, (int(n - 1).bit_length() + 1) // 2)
    out = _feistel(positions, half_bits, keys)
    bad = out >= np.uint64(n)
    while bad.any():  # cycle walking: at most a few rounds, since the domain is < 4n
        out[bad] = _feistel(out[bad], half_bits, keys)
        bad = out >= np.uint64(n)
    return out.astype(np.int64)
