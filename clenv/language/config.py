"""The ``head`` section every supervised strategy accepts (validated without importing torch).

``head: {type: linear}`` keeps the model's own linear head; ``cosine`` puts a cosine classifier
with learnable class vectors on the features; ``language`` puts a cosine classifier whose class
vectors are frozen sentence-encoder embeddings of the class names (LingoCL, Ni et al. 2024).
"""

from __future__ import annotations

from clenv.config.schema import PATH, Field, validate
from clenv.errors import ConfigError
from clenv.text.encoder import DEFAULT_ENCODER, check_encoder
from clenv.text.targets import DEFAULT_TEMPLATE

HEAD_FIELDS: dict[str, Field] = {
    "type": Field(str, "linear", "classifier head", choices=("linear", "cosine", "language")),
    "template": Field(str, DEFAULT_TEMPLATE, "prompt around each class name (one '{}')"),
    "encoder": Field(str, DEFAULT_ENCODER, f"sentence encoder: {DEFAULT_ENCODER} (offline, "
                                           "from the language extra) or a local "
                                           "sentence-transformers model folder"),
    "scale": Field(float, 30.0, "s in logits = s * cos(g(f(x)), e_c) (initial value when "
                                "learnt)", min=1e-6),
    "learn_scale": Field(bool, True, "learn s (multi-label heads also learn a bias)"),
    "dim": Field(int, None, "class-vector size of a cosine head (default: the language "
                            "encoder's size, so both heads share the projection)", min=1),
    "projection": Field(bool, None, "trainable linear projection g of the features (default: "
                                    "only when the feature and target sizes differ)",
                        nullable=True),
    "cache_dir": Field(PATH, None, "where encoded targets are cached (default: $CLENV_CACHE, "
                                  "else ~/.cache/clenv)", nullable=True),
}


def validate_head(section: object, key: str) -> dict:
    """Validate a ``head`` mapping; the encoder is checked here so a bad one fails before a
    run starts (one line naming ``key.encoder``)."""
    out = validate(section, HEAD_FIELDS, key)
    if out["template"].count("{}") != 1:
        raise ConfigError(f"{key}.template", f"expected exactly one '{{}}' where the class name "
                                             f"goes, got {out['template']!r:.60}",
                          "e.g. 'a photo of a {}'")
    if out["type"] == "language" or (out["type"] == "cosine" and out["dim"] is None):
        check_encoder(out["encoder"], f"{key}.encoder")
    return out

