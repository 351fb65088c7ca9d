"""The ``kmnist`` source: Kuzushiji-MNIST (Clanuwat et al. 2018; ten cursive Japanese hiragana,
28x28 greyscale, 60k train + 10k test) from its IDX files, read like MNIST."""

from __future__ import annotations

from clenv.config.schema import Field
from clenv.data.mnist import idx_fields, load_idx_source
from clenv.data.pool import Pool

NAME = "kmnist"
NEEDS_ROOT = True
DOC = "Kuzushiji-MNIST IDX files in data.root or data.root/KMNIST/raw; download: true fetches " \
      "them."

# The romanised hiragana of each label, in the order of the official files (and of
# torchvision's KMNIST.classes).
CLASS_NAMES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

FIELDS: dict[str, Field] = idx_fields("Kuzushiji-MNIST", "KMNIST")


def load(params: dict, key: str) -> Pool:
    """Load Kuzushiji-MNIST (see ``clenv.data.mnist.load_idx_source``)."""
    return load_idx_source(params, key, name=NAME, what="Kuzushiji-MNIST", folder_name="KMNIST",
                           class_names=CLASS_NAMES)
