"""The ``semantic`` source: seeded Gaussian clusters with CIFAR-100's real class names, placed by
CIFAR-100's label tree (20 superclasses of 5 classes each), or, with ``alignment`` set, by a dial
between the language geometry of the names and an independent one.

Tree geometry (``alignment: null``, the default): each superclass centre is drawn around the
origin with spread ``coarse_separation``, each class centre around its superclass centre with
spread ``fine_separation``, and samples around their class centre with ``noise``. Siblings (same
superclass) are therefore closer in input space than cousins. The geometry comes from the label
tree only, never from a language model, so a language-guided head gains nothing by
construction: it can only exploit that names of the same superclass mean related things, as real
images of related things look alike.

Alignment dial (``alignment: rho`` in [0, 1]): class means are
``m_c = sqrt(rho) * u_c + sqrt(1 - rho) * z_c`` with ``u_c = A e_c`` (``e_c`` the frozen
sentence encoder's unit embedding of ``"a photo of a {name}"``, centred over the kept classes;
``A`` a seeded random map to ``dim``: the embeddings' top-``dim`` principal directions, then a
random rotation, see ``language_map``) and ``z_c`` seeded i.i.d.
Gaussian (centred, and with its Frobenius inner product with ``u`` removed so the cross term
of the pairwise distances averages to 0). ``u`` and ``z`` are each scaled so that their mean
pairwise class-mean distance is ``separation``. The tree geometry is gone (the superclasses
remain only as labels); at rho = 0 no encoder is loaded.
"""

from __future__ import annotations

import numpy as np

from clenv.config.schema import Field
from clenv.data.cifar100_names import COARSE_NAMES, FINE_NAMES, coarse_of_fine, readable
from clenv.data.pool import Pool
from clenv.errors import ConfigError
from clenv.text.encoder import DEFAULT_ENCODER, check_encoder, models_allowed

NAME = "semantic"
NEEDS_ROOT = False
DOC = ("Seeded Gaussian clusters with CIFAR-100's class names, placed by its superclass tree "
       "(siblings closer than cousins) or by a language-alignment dial, no files needed.")
TREE_KEYS = ("coarse_separation", "fine_separation")  # the tree geometry's keys

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
    "alignment": Field(float, None, "rho in [0, 1]: class means sqrt(rho) * (the class names' "
                                    "sentence embeddings, randomly mapped) + sqrt(1 - rho) * "
                                    "(independent Gaussian); null: the tree geometry "
                                    "(coarse/fine_separation)", min=0.0, max=1.0, nullable=True),
    "separation": Field(float, 5.0, "mean pairwise distance between class means of each part "
                                    "of the alignment mix (only with alignment)", min=0.0),
    "train_per_class": Field(int, 100, "train samples per class", min=1),
    "test_per_class": Field(int, 50, "test samples per class", min=1),
}


def check(params: dict, key: str) -> None:
    """The tree keys and the alignment keys exclude each other (a non-default value of the other
    geometry's keys is refused, not ignored); a positive alignment needs the language extra."""
    rho = params["alignment"]
    if rho is None:
        if params["separation"] != FIELDS["separation"].default:
            raise ConfigError(f"{key}.separation", "only used with the alignment dial, but "
                                                   f"{key}.alignment is null",
                              f"set {key}.alignment (0..1) or remove {key}.separation")
        return
    for name in TREE_KEYS:
        if params[name] != FIELDS[name].default:
            raise ConfigError(f"{key}.{name}", f"the tree geometry is off when {key}.alignment "
                                               f"is set (got {name}={params[name]!r})",
                              f"remove {key}.{name} (use {key}.separation) or set "
                              f"{key}.alignment: null")
    if rho > 0:
        check_encoder(DEFAULT_ENCODER, f"{key}.alignment")


def mean_pairwise_distance(points: np.ndarray) -> float:
    """Mean Euclidean distance over the unordered pairs of rows of ``points`` (0 for < 2)."""
    sq = np.sum(points * points, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * points @ points.T
    i, j = np.triu_indices(len(points), k=1)
    return float(np.sqrt(np.maximum(d2[i, j], 0.0)).mean()) if len(i) else 0.0


def _scaled(points: np.ndarray, separation: float) -> np.ndarray:
    """``points`` times the factor that makes their mean pairwise distance ``separation``."""
    mean = mean_pairwise_distance(points)
    return points * (separation / mean) if mean > 0 else points


def class_name_embeddings(names: list[str], key: str) -> np.ndarray:
    """(len(names), encoder size) unit embeddings of the names through the language head's
    default encoder and template, read from (or written to) its disk cache."""
    from clenv.text.targets import DEFAULT_TEMPLATE, SemanticTargets

    return SemanticTargets(DEFAULT_ENCODER, DEFAULT_TEMPLATE, None, key).encode(names)


def language_map(e: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """A = V Q, (encoder size, dim): V the top-``dim`` principal directions of the centred
    embeddings ``e`` (signs fixed: each direction's largest loading positive), Q a seeded
    Haar-random rotation of R^dim. The centred embeddings keep their best rank-``dim``
    geometry, in a random orientation (a Gaussian map would distort their distances by about
    1/sqrt(dim))."""
    _, _, vt = np.linalg.svd(e - e.mean(axis=0), full_matrices=False)
    vt = vt[:dim]
    vt *= np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    v = np.zeros((e.shape[1], dim))
    v[:, :len(vt)] = vt.T
    q, r = np.linalg.qr(rng.normal(0.0, 1.0, (dim, dim)))
    return v @ (q * np.where(np.diag(r) < 0, -1.0, 1.0))


def aligned_means(names: list[str], params: dict, rng_z: np.random.Generator,
                  rng_map: np.random.Generator, key: str) -> np.ndarray:
    """Class means sqrt(rho) u + sqrt(1 - rho) z (module docstring), float64 (n, dim).

    No encoder is loaded at rho = 0, nor inside ``clenv check`` (``without_models``: only the
    labels matter there, so u is left out)."""
    rho, dim, sep = params["alignment"], params["dim"], params["separation"]
    z = rng_z.normal(0.0, 1.0, (len(names), dim))
    z -= z.mean(axis=0)
    if rho == 0 or not models_allowed():
        return np.sqrt(1.0 - rho) * _scaled(z, sep)
    e = class_name_embeddings(names, f"{key}.alignment").astype(np.float64)
    u = (e - e.mean(axis=0)) @ language_map(e, dim, rng_map)
    uu = float(np.sum(u * u))
    if uu > 0:  # z loses its component along u: sum over pairs of <u_i - u_j, z_i - z_j> = 0
        z -= (float(np.sum(z * u)) / uu) * u
    return np.sqrt(rho) * _scaled(u, sep) + np.sqrt(1.0 - rho) * _scaled(z, sep)


def load(params: dict, key: str) -> Pool:
    """Generate the pool described by validated ``params`` (vectors, two-level label tree)."""
    if params["noise"] <= 0:
        raise ConfigError(f"{key}.noise", f"expected a number > 0, got {params['noise']!r}")
    check(params, key)
    rng_choice, rng_centres, rng_samples, rng_map = (
        np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(4))
    coarse = np.asarray(coarse_of_fine())
    supers = np.sort(rng_choice.permutation(len(COARSE_NAMES))[:params["superclasses"]])
    per = params["classes_per_superclass"]
    fine_ids = np.concatenate([np.flatnonzero(coarse == s)[:per] for s in supers])
    parent = np.searchsorted(supers, coarse[fine_ids])  # new coarse id of each kept class

    dim = params["dim"]
    names = [readable(FINE_NAMES[i]) for i in fine_ids]
    if params["alignment"] is None:
        super_centres = rng_centres.normal(0.0, params["coarse_separation"], (len(supers), dim))
        centres = super_centres[parent] + rng_centres.normal(0.0, params["fine_separation"],
                                                             (len(fine_ids), dim))
    else:
        centres = aligned_means(names, params, rng_centres, rng_map, key)
    n_classes = len(fine_ids)
    n_tr, n_te = params["train_per_class"], params["test_per_class"]
    y = np.concatenate([np.repeat(np.arange(n_classes), n_tr),
                        np.repeat(np.arange(n_classes), n_te)])
    train = np.arange(len(y)) < n_classes * n_tr
    x = (centres[y] + rng_samples.normal(0.0, params["noise"], (len(y), dim))).astype(np.float32)
    return Pool(x=x, y=y, train=train, class_names=names,
                name=NAME, ancestors=parent[:, None].astype(np.int64),
                tree_names=[[readable(COARSE_NAMES[s]) for s in supers]],
                meta={"source": NAME, "params": dict(params)})
