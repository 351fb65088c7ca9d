"""Tests of the domain transforms: shapes and dtypes, seeding, and each kind's formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from clenv.errors import ConfigError
from clenv.scenarios.domains import (
    DOMAIN_FIELDS,
    DOMAIN_KINDS,
    DomainTransform,
    validate_domain,
)

KEY = "scenario.segments[2].domain"


def _images(n: int = 7, shape: tuple[int, ...] = (1, 8, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(np.uint8)


def _vectors(n: int = 7, shape: tuple[int, ...] = (20,), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _transform(kind: str, x: np.ndarray, image: bool, scale: float = 1.0,
               **spec) -> DomainTransform:
    return DomainTransform(validate_domain({"kind": kind, **spec}, KEY), x.shape[1:], image,
                           scale)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- every kind ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DOMAIN_KINDS)
@pytest.mark.parametrize("data", ["image", "rgb", "vector", "tensor"])
def test_shape_dtype_and_a_new_array(kind: str, data: str):
    image = data in ("image", "rgb")
    x = {"image": _images(), "rgb": _images(shape=(3, 9, 8)), "vector": _vectors(),
         "tensor": _vectors(shape=(4, 5))}[data]
    before = x.copy()
    out = _transform(kind, x, image, scale=30.0 if image else 1.0)(x, _rng())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before)  # the input is untouched
    if not image:
        assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", DOMAIN_KINDS)
def test_empty_batch(kind: str):
    x = _images(n=0)
    out = _transform(kind, x, True)(x, _rng())
    assert out.shape == x.shape and out.dtype == np.uint8


def test_uint8_results_are_clipped_not_wrapped():
    x = _images()
    up = _transform("shift", x, True, scale=60.0, amount=10.0)(x, _rng())
    down = _transform("shift", x, True, scale=60.0, amount=-10.0)(x, _rng())
    assert (up == 255).all() and (down == 0).all()
    loud = _transform("contrast", x, True, factor=50.0)(x, _rng())
    m = x.reshape(7, -1).mean(axis=1)[:, None, None, None]
    np.testing.assert_array_equal(loud, np.clip(np.rint(m + 50.0 * (x - m)), 0, 255))
    assert (loud == 0).any() and (loud == 255).any()


def test_uses_rng_only_for_noise():
    x = _vectors()
    for kind in DOMAIN_KINDS:
        assert _transform(kind, x, False).uses_rng == (kind == "noise")


def test_wrong_input_shape_and_missing_rng_raise():
    x = _vectors()
    with pytest.raises(ValueError, match="shape"):
        _transform("permute", x, False)(_vectors(shape=(21,)), _rng())
    with pytest.raises(ValueError, match="rng"):
        _transform("noise", x, False)(x, None)
    with pytest.raises(ValueError, match="image"):
        DomainTransform({"kind": "rotate"}, (20,), True)


def test_spec_defaults_are_filled():
    t = DomainTransform({"kind": "rotate"}, (20,), False)
    assert t.spec == validate_domain({"kind": "rotate"}, KEY)
    assert t.spec["degrees"] == 30.0 and t.spec["seed"] == 0


# -- seeding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["permute", "rotate", "shift"])
@pytest.mark.parametrize("image", [True, False])
def test_same_seed_same_output_other_seed_differs(kind: str, image: bool):
    x = _images() if image else _vectors()
    a = _transform(kind, x, image, seed=3)(x, _rng())
    b = _transform(kind, x, image, seed=3)(x, _rng())
    np.testing.assert_array_equal(a, b)
    if kind == "shift" and image:
        return  # a uniform brightness shift has no random part
    if kind == "rotate" and image:
        return  # an image rotation is fixed by the angle
    c = _transform(kind, x, image, seed=4)(x, _rng())
    assert not np.array_equal(a, c)


def test_kinds_with_the_same_seed_draw_unrelated_values():
    x = _vectors()
    p = _transform("permute", x, False, seed=0)
    assert p._perm is not None
    assert not np.array_equal(p._perm, np.random.default_rng(0).permutation(20))


# -- permute -------------------------------------------------------------------------------------

def test_permute_vectors_is_a_bijection():
    x = _vectors()
    out = _transform("permute", x, False, seed=1)(x, _rng())
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(x, axis=1))
    assert not np.array_equal(out, x)
    # one permutation for every sample
    perm = np.argsort(x[0])[np.argsort(np.argsort(out[0]))]
    np.testing.assert_array_equal(out, x[:, perm])


def test_permute_images_moves_pixels_the_same_way_in_every_channel():
    x = _images(shape=(3, 8, 8))
    x[0] = np.arange(64, dtype=np.uint8).reshape(8, 8)  # pixel ids, in every channel
    out = _transform("permute", x, True, seed=2)(x, _rng())
    np.testing.assert_array_equal(np.sort(out.reshape(7, -1), axis=1),
                                  np.sort(x.reshape(7, -1), axis=1))
    perm = out[0, 0].ravel().astype(np.int64)
    np.testing.assert_array_equal(np.sort(perm), np.arange(64))
    assert not np.array_equal(perm, np.arange(64))
    np.testing.assert_array_equal(out, x.reshape(7, 3, 64)[..., perm].reshape(x.shape))


# -- rotate --------------------------------------------------------------------------------------

def test_rotate_zero_degrees_is_the_identity():
    v = _vectors()
    np.testing.assert_allclose(_transform("rotate", v, False, degrees=0.0)(v, _rng()), v)
    x = _images(shape=(3, 8, 8))
    for degrees in (0.0, 360.0, -720.0):
        np.testing.assert_array_equal(_transform("rotate", x, True, degrees=degrees)(x, _rng()),
                                      x)


def test_rotate_vectors_is_orthogonal_and_grows_with_the_angle():
    v = _vectors(n=50)
    dist = []
    for degrees in (10.0, 30.0, 60.0, 90.0):
        t = _transform("rotate", v, False, degrees=degrees, seed=5)
        out = t(v, _rng())
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(v, axis=1),
                                   rtol=1e-5)
        r = t._rot
        np.testing.assert_allclose(r @ r.T, np.eye(20), atol=1e-10)
        # R = expm(theta * A) with max |eig(A)| = 1: R's eigenvalue angles reach exactly theta
        angles = np.abs(np.angle(np.linalg.eigvals(r)))
        np.testing.assert_allclose(angles.max(), np.radians(degrees), rtol=1e-8)
        dist.append(float(np.linalg.norm(out - v)))
    assert dist == sorted(dist) and dist[0] > 0


def test_rotate_vectors_of_any_shape_flattens():
    v = _vectors(shape=(4, 5))
    t = _transform("rotate", v, False, seed=5)
    flat = _transform("rotate", v.reshape(7, 20), False, seed=5)
    np.testing.assert_allclose(t(v, _rng()).reshape(7, 20), flat(v.reshape(7, 20), _rng()))


def test_rotate_90_degrees_is_rot90():
    x = _images(shape=(2, 8, 8))
    out = _transform("rotate", x, True, degrees=90.0)(x, _rng())
    np.testing.assert_array_equal(out[..., 1:-1, 1:-1],
                                  np.rot90(x, 1, axes=(-2, -1))[..., 1:-1, 1:-1])
    dot = np.zeros((1, 1, 9, 9), dtype=np.uint8)
    dot[0, 0, 2, 5] = 200
    turned = _transform("rotate", dot, True, degrees=90.0)(dot, _rng())
    np.testing.assert_array_equal(turned, np.rot90(dot, 1, axes=(-2, -1)))


@pytest.mark.parametrize("degrees", [17.5, -45.0, 30.0, 123.0])
def test_rotate_images_matches_scipy_ndimage_rotate(degrees: float):
    x = _images(shape=(3, 9, 8)).astype(np.float32)
    out = _transform("rotate", x, True, degrees=degrees)(x, _rng())
    ref = ndimage.rotate(x, degrees, axes=(-2, -1), reshape=False, order=1, mode="constant",
                         cval=0.0)
    np.testing.assert_allclose(out, ref, atol=1e-3)
    u8 = x.astype(np.uint8)
    out8 = _transform("rotate", u8, True, degrees=degrees)(u8, _rng())
    assert np.abs(out8.astype(np.int64) - np.rint(ref)).max() <= 1


# -- shift ---------------------------------------------------------------------------------------

def test_shift_vectors_moves_each_feature_by_about_amount_times_scale():
    v = _vectors(n=30, shape=(400,))
    out = _transform("shift", v, False, scale=2.0, amount=0.5, seed=7)(v, _rng())
    delta = out - v
    np.testing.assert_allclose(delta, np.broadcast_to(delta[0], delta.shape), atol=1e-5)
    # |offset| = amount * scale * sqrt(D): a root-mean-square move of amount * scale per feature
    np.testing.assert_allclose(np.sqrt(np.mean(delta[0].astype(np.float64) ** 2)), 1.0,
                               rtol=1e-5)
    np.testing.assert_allclose(out.mean(axis=0) - v.mean(axis=0), delta[0], atol=1e-5)


def test_shift_images_is_a_uniform_brightness_shift():
    x = np.random.default_rng(0).integers(50, 150, (7, 3, 8, 8)).astype(np.uint8)
    out = _transform("shift", x, True, scale=20.0, amount=0.5)(x, _rng())
    np.testing.assert_array_equal(out.astype(np.int64) - x, 10)
    back = _transform("shift", x, True, scale=20.0, amount=-1.0)(x, _rng())
    np.testing.assert_array_equal(back.astype(np.int64) - x, -20)


# -- noise ---------------------------------------------------------------------------------------

def test_noise_follows_the_rng_and_has_the_given_std():
    v = _vectors(n=2000)
    t = _transform("noise", v, False, scale=2.0, std=0.5)
    a, b, c = t(v, _rng(1)), t(v, _rng(1)), t(v, _rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noise = (a - v).astype(np.float64)
    assert abs(noise.mean()) < 0.02
    assert abs(noise.std() - 1.0) < 0.03
    # independent per sample: no two samples get the same noise
    assert not np.allclose(noise[0], noise[1])


def test_noise_on_images_is_in_pixel_units_times_scale():
    x = np.full((500, 1, 8, 8), 128, dtype=np.uint8)
    out = _transform("noise", x, True, scale=40.0, std=0.5)(x, _rng(3))
    noise = out.astype(np.float64) - 128
    assert abs(noise.std() - 20.0) < 0.5
    np.testing.assert_array_equal(out, _transform("noise", x, True, scale=40.0, std=0.5)(
        x, _rng(3)))


def test_noise_with_zero_std_is_the_identity():
    v = _vectors()
    np.testing.assert_array_equal(_transform("noise", v, False, std=0.0)(v, _rng()), v)


# -- contrast ------------------------------------------------------------------------------------

def test_contrast_factor_one_is_the_identity():
    v = _vectors()
    np.testing.assert_allclose(_transform("contrast", v, False, factor=1.0)(v, _rng()), v,
                               atol=1e-6)
    x = _images(shape=(3, 8, 8))
    np.testing.assert_array_equal(_transform("contrast", x, True, factor=1.0)(x, _rng()), x)


def test_contrast_factor_zero_gives_the_sample_mean():
    v = _vectors(shape=(4, 5))
    out = _transform("contrast", v, False, factor=0.0)(v, _rng())
    mean = v.reshape(7, -1).mean(axis=1)
    np.testing.assert_allclose(out, np.broadcast_to(mean[:, None, None], v.shape), atol=1e-6)
    x = _images(shape=(3, 8, 8))
    out8 = _transform("contrast", x, True, factor=0.0)(x, _rng())
    want = np.rint(x.reshape(7, -1).mean(axis=1)).astype(np.uint8)
    np.testing.assert_array_equal(out8, np.broadcast_to(want[:, None, None, None], x.shape))


def test_contrast_halves_the_spread_about_the_mean():
    v = _vectors()
    out = _transform("contrast", v, False, factor=0.5)(v, _rng())
    m = v.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out, m + 0.5 * (v - m), atol=1e-6)
    np.testing.assert_allclose(out.mean(axis=1), v.mean(axis=1), atol=1e-6)


# -- validate_domain -----------------------------------------------------------------------------

def test_validate_domain_none_is_identity_with_defaults():
    spec = validate_domain(None, KEY)
    assert spec["kind"] == "identity"
    assert set(spec) == set(DOMAIN_FIELDS)
    assert spec == {"kind": "identity", "seed": 0, "degrees": 30.0, "amount": 0.5, "std": 0.5,
                    "factor": 0.5}


def test_validate_domain_fills_defaults_and_promotes_ints():
    spec = validate_domain({"kind": "rotate", "degrees": 45, "seed": 2}, KEY)
    assert spec["degrees"] == 45.0 and isinstance(spec["degrees"], float)
    assert spec["seed"] == 2 and spec["std"] == 0.5


@pytest.mark.parametrize(("spec", "path", "words"), [
    ({"kind": "blur"}, f"{KEY}.kind", "expected one of"),
    ({"kind": "noise", "std": -1.0}, f"{KEY}.std", ">= 0"),
    ({"kind": "contrast", "factor": -0.5}, f"{KEY}.factor", ">= 0"),
    ({"kind": "permute", "seed": -1}, f"{KEY}.seed", ">= 0"),
    ({"kind": "rotate", "degree": 10}, f"{KEY}.degree", "unknown key"),
    ({"kind": "rotate", "degrees": "ten"}, f"{KEY}.degrees", "expected a number"),
    ({"seed": 1}, f"{KEY}.kind", "missing required key"),
    ("permute", KEY, "expected a mapping"),
])
def test_validate_domain_errors_name_the_key_path(spec, path: str, words: str):
    with pytest.raises(ConfigError) as exc:
        validate_domain(spec, KEY)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and words in msg
    assert "\n" not in msg
