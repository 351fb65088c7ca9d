"""Seeded, vectorised input transforms that turn one data set into several domains.

A domain is the same classes seen through a fixed input transform. Inputs are batches ``x`` of
shape (n, *input_shape): uint8 images (n, C, H, W) with values 0..255, or float vectors (n, D)
(any float (n, ...) shape is flattened to (n, D) internally). Every transform works on the whole
batch at once and returns a new array of the input's shape and dtype; uint8 results are rounded
and clipped to 0..255.

``scale`` is the data's typical standard deviation in the data's own units (the caller passes
the std of the pool's inputs; for uint8 images that is in 0..255 pixel units). ``amount`` (shift)
and ``std`` (noise) are multiples of it, for vectors and images alike. With D features:

- identity: x' = x (a copy).
- permute: x' = x[..., p] with p a seeded permutation of the D features; for images p permutes
  the H*W pixel positions, the same p for every channel.
- rotate: images are rotated by ``degrees`` about their centre, bilinear with zeros outside:
  the result of ``scipy.ndimage.rotate(x, degrees, axes=(-2, -1), reshape=False, order=1,
  mode="constant", cval=0)``, computed as one precomputed sparse (H*W, H*W) matrix product
  over the whole batch; +90 degrees on a square image is ``np.rot90(x, 1, axes=(-2, -1))``
  (counter-clockwise as displayed). Vectors get a fixed rotation of feature space:
  x' = x @ R.T with R = expm(theta * A), A a seeded skew-symmetric matrix scaled so that its
  largest |eigenvalue| is 1 and theta = radians(degrees); R is orthogonal, 0 degrees is the
  identity and the rotation grows with the angle.
- shift: a fixed offset. Vectors: x' = x + amount * scale * u, u a seeded direction with
  |u| = sqrt(D), so each feature moves by about amount * scale. Images: x' = x + amount * scale,
  a uniform brightness shift (clipped).
- noise: x' = x + e, e ~ N(0, (std * scale)^2) drawn per element from the ``rng`` passed to the
  call, so the stream's chunk generator fixes it.
- contrast: x' = m + factor * (x - m), m the mean of each sample over all its features (all
  channels and pixels for images).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.linalg import eigh, expm
from scipy.special import cosdg, sindg

from clenv.config.schema import Field, validate

DOMAIN_KINDS = ("identity", "permute", "rotate", "shift", "noise", "contrast")

DOMAIN_FIELDS: dict[str, Field] = {
    "kind": Field(str, doc=f"the domain transform, one of: {', '.join(DOMAIN_KINDS)}",
                  choices=DOMAIN_KINDS),
    "seed": Field(int, 0, "seed of the transform (permutation, rotation, shift direction)",
                  min=0),
    "degrees": Field(float, 30.0, "rotate: angle in degrees"),
    "amount": Field(float, 0.5, "shift: offset in multiples of the data's std"),
    "std": Field(float, 0.5, "noise: noise std in multiples of the data's std", min=0),
    "factor": Field(float, 0.5, "contrast: x' = m + factor * (x - m)", min=0),
}

# Stable per-kind words mixed into the seed, so kinds with the same seed draw unrelated values.
_KIND_TAGS = {kind: 0xD0 + i for i, kind in enumerate(DOMAIN_KINDS)}


def validate_domain(spec: dict | None, key: str) -> dict:
    """Validate a domain spec and fill its defaults; ``None`` means the identity domain."""
    return validate({"kind": "identity"} if spec is None else spec, DOMAIN_FIELDS, key)


def _rotation_matrix(dim: int, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """An orthogonal (dim, dim) matrix expm(radians(degrees) * A), A seeded skew-symmetric."""
    g = rng.standard_normal((dim, dim))
    a = g - g.T
    # a is normal, so its largest |eigenvalue| is its spectral norm: sqrt of a.T @ a's largest.
    top = 0.0
    if dim > 1:
        top2 = eigh(a.T @ a, eigvals_only=True, subset_by_index=[dim - 1, dim - 1])[0]
        top = math.sqrt(max(float(top2), 0.0))
    if top == 0.0:
        return np.eye(dim)
    return expm(math.radians(degrees) * (a / top))


def _image_rotation(height: int, width: int, degrees: float) -> sparse.csr_array:
    """The (H*W, H*W) bilinear rotation matrix S of one plane: rotated = S @ plane.ravel().

    Output pixel (i, j) samples the input at (r, q) = M (i, j) + c - M c, M = [[cos, sin],
    [-sin, cos]], c the plane's centre, as ``scipy.ndimage.rotate`` does; samples outside
    [0, H-1] x [0, W-1] are 0 (its ``mode="constant"``), others mix the 4 nearest pixels.
    """
    cos, sin = float(cosdg(degrees)), float(sindg(degrees))
    ci, cj = (height - 1) / 2, (width - 1) / 2
    i, j = np.divmod(np.arange(height * width, dtype=np.float64), width)
    r = (ci - (cos * ci + sin * cj)) + i * cos + j * sin
    q = (cj - (-sin * ci + cos * cj)) + i * -sin + j * cos
    inside = (r >= 0) & (r <= height - 1) & (q >= 0) & (q <= width - 1)
    r0 = np.clip(np.floor(r), 0, height - 1)
    q0 = np.clip(np.floor(q), 0, width - 1)
    fr, fq = r - r0, q - q0
    rows, cols, vals = [], [], []
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dq, wq in ((0, 1 - fq), (1, fq)):
            rr = np.minimum(r0 + dr, height - 1).astype(np.int64)
            qq = np.minimum(q0 + dq, width - 1).astype(np.int64)
            rows.append(np.arange(height * width))
            cols.append(rr * width + qq)
            vals.append(np.where(inside, wr * wq, 0.0))
    n = height * width
    mat = sparse.coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n, n))
    return mat.tocsr()


class DomainTransform:
    """A fixed, seeded input transform (see the module docstring for each kind's formula).

    ``spec`` is a domain spec (validated by ``validate_domain``; missing defaults are filled),
    ``input_shape`` the shape of one sample, ``image`` whether samples are (C, H, W) images
    (any shape ending in (H, W)), ``scale`` the data's typical std used by shift and noise.
    """

    def __init__(self, spec: dict, input_shape: tuple[int, ...], image: bool,
                 scale: float = 1.0) -> None:
        self.spec = validate_domain(spec, "domain")
        self.kind: str = self.spec["kind"]
        self.input_shape = tuple(int(s) for s in input_shape)
        self.image = bool(image)
        self.scale = float(scale)
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
        if self.image and len(self.input_shape) < 2:
            raise ValueError(f"an image shape needs (..., H, W), got {self.input_shape}")
        self.dim = math.prod(self.input_shape)
        rng = np.random.default_rng(
            np.random.SeedSequence([self.spec["seed"], _KIND_TAGS[self.kind]]))
        self._perm: np.ndarray | None = None
        self._rot: np.ndarray | None = None
        self._plane_rot: sparse.csr_array | None = None
        self._offset: np.ndarray | float = 0.0
        if self.kind == "permute":
            n = self.input_shape[-2] * self.input_shape[-1] if self.image else self.dim
            self._perm = rng.permutation(n)
        elif self.kind == "rotate":
            degrees = self.spec["degrees"]
            if self.image:
                if degrees % 360 != 0:
                    self._plane_rot = _image_rotation(*self.input_shape[-2:], degrees)
            else:
                self._rot = _rotation_matrix(self.dim, degrees, rng)
        elif self.kind == "shift":
            step = self.spec["amount"] * self.scale
            if self.image:
                self._offset = step
            else:
                u = rng.standard_normal(self.dim)
                norm = float(np.linalg.norm(u))
                u = u / norm if norm > 0 else np.ones(self.dim) / math.sqrt(self.dim)
                self._offset = step * math.sqrt(self.dim) * u

    @property
    def uses_rng(self) -> bool:
        """Whether the output depends on the ``rng`` given to the call (noise only)."""
        return self.kind == "noise"

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Transform a batch (n, *input_shape); return a new array of its shape and dtype."""
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"expected a batch of shape (n, *{self.input_shape}), got {x.shape}")
        if self.uses_rng and rng is None:
            raise ValueError("the noise domain needs an rng")
        if self.kind == "identity" or len(x) == 0:
            return x.copy()
        if self.kind == "permute":
            assert self._perm is not None
            rows = x.reshape(-1, len(self._perm))  # (n * C, H * W) for images, else (n, D)
            return np.ascontiguousarray(np.take(rows, self._perm, axis=1).reshape(x.shape))
        work = np.result_type(x.dtype, np.float32)
        flat = x.reshape(len(x), self.dim).astype(work)  # a new (n, D) array, changed in place
        if self.kind == "rotate":
            flat = self._rotate(flat)
        elif self.kind == "shift":
            flat += np.asarray(self._offset, dtype=work)
        elif self.kind == "noise":
            assert rng is not None
            draw = np.float64 if work == np.float64 else np.float32
            noise = rng.standard_normal(flat.shape, dtype=draw)
            noise *= self.spec["std"] * self.scale
            flat += noise.astype(work, copy=False)
        else:  # contrast
            m = flat.mean(axis=1, keepdims=True)
            flat -= m
            flat *= work.type(self.spec["factor"])
            flat += m
        return np.ascontiguousarray(_finish(flat, x.dtype).reshape(x.shape))

    def _rotate(self, flat: np.ndarray) -> np.ndarray:
        """Rotate (n, D) rows. The result may be (n * C, H * W) and Fortran-ordered: the caller
        reshapes it (after casting uint8 results, so any copy is of the smaller array)."""
        if self.image:
            if self._plane_rot is None:  # a multiple of 360 degrees
                return flat
            height, width = self.input_shape[-2:]
            planes = flat.reshape(-1, height * width)
            return planes @ self._plane_rot.T.astype(flat.dtype)  # (n * C, H * W)
        assert self._rot is not None
        return flat @ self._rot.T.astype(flat.dtype)

    def __repr__(self) -> str:
        return f"DomainTransform({self.spec!r}, input_shape={self.input_shape}, " \
               f"image={self.image}, scale={self.scale:g})"


def _finish(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast a float result (owned, changed in place) back to ``dtype``: integers are rounded
    and clipped to the dtype's range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(out, out=out)
        np.clip(out, info.min, info.max, out=out)
        return out.astype(dtype)
    return out.astype(dtype, copy=False)
