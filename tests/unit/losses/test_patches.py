"""Li & Wand's MRF loss (nst_jax.losses.patches) against NumPy transcriptions: brute-force
nearest neighbours over every style patch, the energy of eq. (2), and CNNMRF's own gradient
(mylib/mrf.lua's updateGradInput)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.errors import ConfigError
from nst_jax.losses import patches


def _grid(n, k, s):
  """CNNMRF's computegrid (1-based torch.range, then the tail origin), 0-based."""
  origins = list(range(1, n - k + 2, s))
  if origins[-1] < n - k + 1:
    origins.append(n - k + 1)
  return [o - 1 for o in origins]


def _patches(f, k, s):
  return [(r, c, f[r:r + k, c:c + k]) for r in _grid(f.shape[0], k, s)
          for c in _grid(f.shape[1], k, s)]


def _nearest(p, style_patches):
  scores = [np.sum(p * q) / (np.linalg.norm(p) * np.linalg.norm(q)) for _, _, q in style_patches]
  return style_patches[int(np.argmax(scores))][2]


def np_mrf(f, sty, k, s, normalization, style_stride=None):
  f, sty = np.asarray(f, np.float64), np.asarray(sty, np.float64)
  style = _patches(sty, k, s if style_stride is None else style_stride)
  count = np.zeros(f.shape[:2])
  for r, c, _ in _patches(f, k, s):
    count[r:r + k, c:c + k] += 1
  total = 0.
  for r, c, p in _patches(f, k, s):
    sq = np.sum((p - _nearest(p, style)) ** 2, axis=-1)   # (k, k)
    total += sq.sum() if normalization == 'sum' else 0.5 * np.sum(sq / count[r:r + k, c:c + k])
  return total


def np_cnnmrf_grad(f, sty, k, s):
  """MRFMM:updateGradInput with strength 1: -(sum over patches of (target - source)) / count."""
  f, sty = np.asarray(f, np.float64), np.asarray(sty, np.float64)
  style = _patches(sty, k, s)
  grad_to = np.zeros_like(f)
  confident = np.zeros(f.shape[:2]) + 1e-10
  for r, c, p in _patches(f, k, s):
    grad_to[r:r + k, c:c + k] += _nearest(p, style) - p
    confident[r:r + k, c:c + k] += 1
  return -grad_to / confident[..., None]


_loss = jax.jit(patches.mrf_loss, static_argnums=(2, 3, 4, 5))
_grad = jax.jit(jax.grad(patches.mrf_loss), static_argnums=(2, 3))


def _feats(seed, shape):
  return np.random.default_rng(seed).uniform(0., 1., shape).astype(np.float32)


@pytest.mark.parametrize('k,s,style_stride', [(3, 1, 1), (3, 2, 2), (2, 3, 1), (1, 1, 2)])
def test_mrf_matches_numpy_brute_force(k, s, style_stride):
  f, sty = _feats(0, (7, 9, 3)), _feats(1, (8, 6, 3))
  target = patches.mrf_target(sty, k, style_stride)
  for normalization in patches.NORMALIZATIONS:
    want = np_mrf(f, sty, k, s, normalization, style_stride)
    for chunk in ((1, 1000) if k == 3 and s == 1 else (1000,)):
      got = _loss(f, target, k, s, chunk, normalization)
      assert got.dtype == jnp.float32
      np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_patch_grid_covers_every_position_with_the_tail():
  np.testing.assert_array_equal(patches.patch_origins(8, 3, 2), [0, 2, 4, 5])
  np.testing.assert_array_equal(patches.patch_origins(7, 3, 2), [0, 2, 4])
  np.testing.assert_array_equal(patches.coverage(8, 3, 2), [1, 1, 2, 1, 2, 2, 2, 1])
  f = _feats(2, (8, 7, 2))
  p = np.asarray(patches.extract_patches(f, 3, 2))
  want = np.stack([q.reshape(-1) for _, _, q in _patches(f, 3, 2)])
  np.testing.assert_array_equal(p, want)


def test_chunked_matching_equals_unchunked():
  f, sty = _feats(3, (20, 18, 8)), _feats(4, (16, 21, 8))
  target = patches.mrf_target(sty, 3, 1)
  p = patches.extract_patches(f, 3, 1)
  n = p.shape[0]
  whole = np.asarray(patches.nearest_patches(p, target, chunk=n))
  brute = np.argmax(np.asarray(p) @ np.asarray(target['patches']).T
                    / np.linalg.norm(np.asarray(target['patches']), axis=1), axis=1)
  np.testing.assert_array_equal(whole, brute)
  for chunk in (1, n - 1):
    np.testing.assert_array_equal(np.asarray(patches.nearest_patches(p, target, chunk)), whole)
  assert float(_loss(f, target, 3, 1, 7, 'cnnmrf')) == float(_loss(f, target, 3, 1, n, 'cnnmrf'))


@pytest.mark.parametrize('s', [1, 2])
def test_gradient_is_cnnmrfs_update(s):
  f, sty = _feats(5, (7, 8, 4)), _feats(6, (9, 7, 4))
  target = patches.mrf_target(sty, 3, s)
  got = _grad(jnp.asarray(f), target, 3, s)
  np.testing.assert_allclose(np.asarray(got), np_cnnmrf_grad(f, sty, 3, s), rtol=1e-5,
                             atol=1e-6)


def test_gradient_matches_finite_differences():
  rng = np.random.default_rng(7)
  with jax.enable_x64(True):
    f = jnp.asarray(rng.uniform(0., 1., (6, 7, 3)))
    target = patches.mrf_target(jnp.asarray(rng.uniform(0., 1., (7, 6, 3))), 3, 1)
    for normalization in patches.NORMALIZATIONS:
      value_and_grad = jax.jit(jax.value_and_grad(
          lambda x, t, n=normalization: patches.mrf_loss(x, t, 3, 2, normalization=n)))
      value, g = value_and_grad(f, target)
      assert value.dtype == jnp.float64
      eps = 1e-6
      for idx in [(0, 0, 0), (2, 3, 1), (5, 6, 2), (3, 0, 0), (4, 5, 1)]:
        e = np.zeros(f.shape)
        e[idx] = eps
        fd = float(value_and_grad(f + e, target)[0] - value_and_grad(f - e, target)[0])
        np.testing.assert_allclose(float(g[idx]), fd / (2 * eps), rtol=1e-5, atol=1e-8)


def test_zero_when_every_patch_is_in_the_style_positive_otherwise():
  sty = _feats(8, (9, 10, 5))
  assert float(_loss(sty, patches.mrf_target(sty, 3, 2), 3, 2, 256, 'sum')) == 0.
  target = patches.mrf_target(sty, 3, 1)
  assert float(_loss(sty, target, 3, 1, 256, 'cnnmrf')) == 0.
  # A crop: every one of its patches is one of the style's (stride-1) patches.
  assert float(_loss(sty[2:7, 1:9], target, 3, 1, 256, 'cnnmrf')) == 0.
  assert float(_loss(_feats(9, (9, 10, 5)), target, 3, 1, 256, 'cnnmrf')) > 0.
  assert float(_loss(sty * 1.1, target, 3, 1, 256, 'cnnmrf')) > 0.


def test_jit_matches_eager():
  f, sty = _feats(10, (8, 8, 3)), _feats(11, (12, 10, 3))
  target = patches.mrf_target(sty, 3, 2)
  np.testing.assert_allclose(float(_loss(f, target, 3, 2, chunk=5)),
                             float(patches.mrf_loss(f, target, 3, 2)), rtol=1e-6)


def test_bad_options_raise_config_error():
  f = _feats(12, (5, 6, 2))
  target = patches.mrf_target(f, 3, 1)
  with pytest.raises(ConfigError, match='patch_size=7'):
    patches.mrf_target(f, 7, 1)
  with pytest.raises(ConfigError, match='patch_size=6'):
    patches.mrf_loss(f, patches.mrf_target(_feats(13, (9, 9, 2)), 6, 1), 6, 1)
  for kw in ({'patch_size': 0}, {'stride': 0}, {'chunk': 0}, {'normalization': 'mean'}):
    with pytest.raises(ConfigError):
      patches.mrf_loss(f, target, **kw)
  with pytest.raises(ConfigError, match='same patch size'):
    patches.mrf_loss(f, target, 2, 1)
  with pytest.raises(ConfigError):
    patches.mrf_target(f[None], 3, 1)
