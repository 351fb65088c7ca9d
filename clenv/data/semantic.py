"""The ``semantic`` source: seeded Gaussian clusters with CIFAR-100's real class names, placed by
CIFAR-100's label tree (20 superclasses of 5 classes each).

Each superclass centre is drawn around the origin with spread ``coarse_separation``, each class
centre around its superclass centre with spread ``fine_separation``, and samples around their
class centre with ``noise``. Siblings (same superclass) are therefore closer in input space than
cousins. The geometry comes from the label tree only, never from a language model, so a
language-guided head gains nothing by construction: it can only exploit that names of the same
superclass mean related things, as real images of related things look alike.
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.cifar100_names import COARSE_NAMES, FINE_NAMES, coarse_of_fine, readable
from clenv.data.pool import Pool
from clenv.errors import ConfigError

NAME = "semantic"
NEEDS_ROOT = False
DOC = ("Seeded Gaussian clusters with CIFAR-100's class names, placed by its superclass tree "
       "(siblings closer than cousins), no files needed.")

FIELDS: dict[str, Field] = {
    "seed": Field(int, 0, "random seed of the centres, the superclass choice and the samples"),
    "superclasses": Field(int, 20, "how many of CIFAR-100's 20 superclasses to keep (a seeded "
                                   "choice)", min=1, max=20),
    "classes_per_superclass": Field(int, 5, "classes kept per superclass (their first ones)",
                                    min=1, max=5),
    "dim": Field(int, 32, "vector dimension", min=1),
    "coarse_separation": Field(float, 3.0, "spread of the superclass centres", min=0.0),
    "fine_separation": Field(float, 1.0, "spread of the class centres around their "
                                         "superclass centre", min=0.0),
    "noise": Field(float, 1.0, "standard deviation (> 0) of the samples around their class "
                               "centre", min=0.0),
    "train_per_class": Field(int, 100, "train samples per class", min=1),
    "test_per_class": Field(int, 50, "test samples per class", min=1),
}


def load(params: dict, key: str) -> Pool:
    """Generate the pool described by validated ``params`` (vectors, two-level label tree)."""
    if params["noise"] <= 0:
        raise ConfigError(f"{key}.noise", f"expected a number > 0, got {params['noise']!r}")
    rng_choice, rng_centres, rng_samples = (
        np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(3))
    coarse = np.asarray(coarse_of_fine())
    supers = np.sort(rng_choice.permutation(len(COARSE_NAMES))[:params["superclasses"]])
    per = params["classes_per_superclass"]
    fine_ids = np.concatenate([np.flatnonzero(coarse == s)[:per] for s in supers])
    parent = np.searchsorted(supers, coarse[fine_ids])  # new coarse id of each kept class

    dim = params["dim"]
    super_centres = rng_centres.normal(0.0, params["coarse_separation"], (len(supers), dim))
    centres = super_centres[parent] + rng_centres.normal(0.0, params["fine_separation"],
                                                         (len(fine_ids), dim))
    n_classes = len(fine_ids)
    n_tr, n_te = params["train_per_class"], params["test_per_class"]
    y = np.concatenate([np.repeat(np.arange(n_classes), n_tr),
                        np.repeat(np.arange(n_classes), n_te)])
    train = np.arange(len(y)) < n_classes * n_tr
    x = (centres[y] + rng_samples.normal(0.0, params["noise"], (len(y), dim))).astype(np.float32)
    return Pool(x=x, y=y, train=train, class_names=[readable(FINE_NAMES[i]) for i in fine_ids],
                name=NAME, ancestors=parent[:, None].astype(np.int64),
                tree_names=[[readable(COARSE_NAMES[s]) for s in supers]],
                meta={"source": NAME, "params": dict(params)})
