"""Tests for the Winograd 3x3 convolution."""

import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest

from jax import lax

from nst_jax.models.winograd import conv3x3, conv3x3_valid, direct_conv3x3, transform_kernel

SHAPES = [(2, 7, 9, 4, 6), (1, 1, 1, 2, 3), (3, 5, 2, 8, 4), (1, 13, 11, 16, 8)]


def _data(n, h, w, ci, co, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(n, h, w, ci)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, ci, co)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(n, h, w, co)), jnp.float32)
  return x, k, g


def _rel(a, b):
  return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


TOL = {2: 2e-6, 4: 1e-5}
# Jitted: one compiled program per shape, not dozens of small ops compiled one by one (CI time).
conv = jax.jit(conv3x3, static_argnums=2)
direct = jax.jit(direct_conv3x3)


@jax.jit
def _direct_vjp(x, k, g):
  return jax.vjp(direct_conv3x3, x, k)[1](g)


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape', SHAPES)
def test_forward_matches_direct(tile, shape):
  x, k, _ = _data(*shape)
  y = conv(x, k, tile)
  assert y.shape == shape[:3] + (shape[4],)
  assert _rel(y, direct(x, k)) < TOL[tile]


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape', SHAPES[:2])
def test_vjp_matches_direct(tile, shape):
  x, k, g = _data(*shape)
  got_vjp = jax.jit(lambda a, b, c: jax.vjp(lambda a, b: conv3x3(a, b, tile), a, b)[1](c))
  for got, want in zip(got_vjp(x, k, g), _direct_vjp(x, k, g)):
    assert _rel(got, want) < TOL[tile]


@pytest.mark.parametrize('tile', [2, 4])
def test_jit_and_vmap(tile):
  x, k, _ = _data(2, 6, 5, 3, 4)
  xs = jnp.stack([x, 2 * x + 1, -x])  # extra leading vmap axis over (N, H, W, C) batches
  f = jax.jit(jax.vmap(lambda a: conv3x3(a, k, tile)))
  want = jnp.stack([direct(a, k) for a in xs])
  assert _rel(f(xs), want) < TOL[tile]
  # Gradient through vmap + jit.
  loss = lambda a: jnp.sum(jax.vmap(lambda b: conv3x3(b, k, tile))(a) ** 2)
  loss_ref = lambda a: jnp.sum(jax.vmap(lambda b: direct_conv3x3(b, k))(a) ** 2)
  assert _rel(jax.jit(jax.grad(loss))(xs), jax.jit(jax.grad(loss_ref))(xs)) < 10 * TOL[tile]


def test_transform_kernel_shape_and_bad_tile():
  k = jnp.ones((3, 3, 2, 5))
  assert transform_kernel(k, 2).shape == (16, 2, 5)
  assert transform_kernel(k, 4).shape == (36, 2, 5)
  with pytest.raises(ValueError):
    conv3x3(jnp.ones((1, 4, 4, 2)), k, 3)


@pytest.mark.parametrize('tile', [2, 4])
def test_grad_finite_differences_float64(tile):
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 5, 3, 2)))
    k = jnp.asarray(rng.normal(size=(3, 3, 2, 2)))
    f = jax.jit(lambda a, b: jnp.sum(jnp.sin(conv3x3(a, b, tile))))
    assert conv3x3(x, k, tile).dtype == jnp.float64
    jax.test_util.check_grads(f, (x, k), order=1, modes=['rev'], eps=1e-6, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize('tile', [2, 4])
@pytest.mark.parametrize('shape', [(2, 7, 9, 4, 6), (1, 3, 3, 2, 3), (1, 14, 11, 16, 8)])
def test_valid_forward_matches_lax(tile, shape):
  """The VALID form (for inputs the caller padded) against lax's VALID conv, odd sizes too."""
  x, k, _ = _data(*shape)
  y = jax.jit(conv3x3_valid, static_argnums=2)(x, k, tile)
  want = lax.conv_general_dilated(x, k, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  assert y.shape == want.shape == (shape[0], shape[1] - 2, shape[2] - 2, shape[4])
  assert _rel(y, want) < TOL[tile]


def test_valid_rejects_what_it_cannot_hold():
  x, k, _ = _data(1, 2, 5, 3, 4)
  with pytest.raises(ValueError, match='H, W >= 3'):
    conv3x3_valid(x, k)
