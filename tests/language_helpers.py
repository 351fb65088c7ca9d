"""A tiny fake sentence encoder for the language tests: a model folder with the files clenv
checks, and an in-process stand-in for SentenceTransformer (hash-seeded vectors, no import of
sentence-transformers)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FAKE_DIM = 16


class FakeSentenceModel:
    """encode(sentences) -> (n, FAKE_DIM) vectors seeded by each sentence's sha256; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, sentences, **_) -> np.ndarray:
        self.calls += 1
        out = []
        for s in sentences:
            seed = int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little")
            out.append(np.random.default_rng(seed).normal(size=FAKE_DIM))
        return np.asarray(out, dtype=np.float32)


def make_fake_folder(folder: Path, dim: int = FAKE_DIM) -> Path:
    """A folder that passes clenv's encoder checks (modules.json, pooling config, weights)."""
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": dim}))
    (folder / "model.safetensors").write_bytes(b"fake weights " + str(dim).encode())
    return folder


def install_fake(monkeypatch, folder: Path) -> FakeSentenceModel:
    """Route clenv's model loading for any folder to a FakeSentenceModel; returns it."""
    import clenv.text.targets as targets

    model = FakeSentenceModel()
    monkeypatch.setattr(targets, "load_sentence_model", lambda f, key: model)
    make_fake_folder(folder)
    return model
