"""The ``fashion_mnist`` source: Fashion-MNIST (Xiao et al. 2017; ten kinds of clothing, 28x28
greyscale, 60k train + 10k test) from its IDX files, read like MNIST."""

from __future__ import annotations

from clenv.config.schema import Field
from clenv.data.mnist import idx_fields, load_idx_source
from clenv.data.pool import Pool

NAME = "fashion_mnist"
NEEDS_ROOT = True
DOC = "Fashion-MNIST IDX files in data.root or data.root/FashionMNIST/raw; download: true " \
      "fetches them."

# The label order of the official files (and of torchvision's FashionMNIST.classes).
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]

FIELDS: dict[str, Field] = idx_fields("Fashion-MNIST", "FashionMNIST")


def load(params: dict, key: str) -> Pool:
    """Load Fashion-MNIST (see ``clenv.data.mnist.load_idx_source``)."""
    return load_idx_source(params, key, name=NAME, what="Fashion-MNIST",
                           folder_name="FashionMNIST", class_names=CLASS_NAMES)
