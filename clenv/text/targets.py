"""Semantic targets: e_c = normalize(encoder(template.format(name_c))), frozen, cached on disk.

The cache holds one ``.npy`` vector per class name under a folder keyed by the sha256 of
(encoder id, weights sha256, template), so a second run (or a second strategy) with the same
encoder, template and names never calls the encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from clenv.text.encoder import EncoderSource, load_sentence_model, resolve_encoder

DEFAULT_TEMPLATE = "a photo of a {}"  # the prompt around each class name


def cache_root(configured: str | None) -> str:
    """The cache folder: the YAML value, else $CLENV_CACHE, else ~/.cache/clenv."""
    root = configured or os.environ.get("CLENV_CACHE") or os.path.join("~", ".cache", "clenv")
    return os.path.expanduser(root)


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:32]


class SemanticTargets:
    """Encodes class names through a prompt template into L2-normalised float32 vectors."""

    def __init__(self, encoder: str, template: str, cache_dir: str | None = None,
                 key: str = "strategy.head") -> None:
        self.key = key
        self.template = template
        self.source: EncoderSource = resolve_encoder(encoder, f"{key}.encoder")
        self.dim = self.source.dim
        self.folder = Path(cache_root(cache_dir)) / "targets" / _digest(
            self.source.encoder_id, self.source.weights_sha256, template)
        self.encoder_calls = 0  # sentences sent to the encoder by this object

    def _file(self, name: str) -> Path:
        return self.folder / f"{_digest(name)}.npy"

    def prompts(self, names: list[str]) -> list[str]:
        return [self.template.format(n) for n in names]

    def encode(self, names: list[str]) -> np.ndarray:
        """(len(names), dim) unit vectors; cached names are read, the rest encoded in one batch
        and written to the cache (atomically: temp file, then rename)."""
        out = np.zeros((len(names), self.dim), dtype=np.float32)
        todo = []
        for i, name in enumerate(names):
            f = self._file(name)
            if f.is_file():
                vec = np.load(f)
                if vec.shape == (self.dim,):
                    out[i] = vec
                    continue
            todo.append(i)
        if todo:
            model = load_sentence_model(self.source.folder, f"{self.key}.encoder")
            fresh = np.asarray(model.encode(self.prompts([names[i] for i in todo]),
                                            convert_to_numpy=True, batch_size=64,
                                            show_progress_bar=False), dtype=np.float32)
            self.encoder_calls += len(todo)
            fresh /= np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
            self._store([names[i] for i in todo], fresh)
            out[todo] = fresh
        return out

    def _store(self, names: list[str], vectors: np.ndarray) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            meta = self.folder / "meta.json"
            if not meta.is_file():
                meta.write_text(json.dumps({"encoder": self.source.encoder_id,
                                            "weights_sha256": self.source.weights_sha256,
                                            "template": self.template, "dim": self.dim}))
            for name, vec in zip(names, vectors, strict=True):
                fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".npy.tmp")
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, vec)
                os.replace(tmp, self._file(name))
        except OSError:
            pass  # an unwritable cache only costs a re-encode next time
