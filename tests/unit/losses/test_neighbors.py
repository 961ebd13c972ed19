"""NNST's loss (nst_jax.losses.neighbors) against a NumPy transcription of the authors' final-pass
loss (utils/stylize.py: centred cosine distances, min over the style, mean over the image), its
sampling grid, finite differences, and its place among the style losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.errors import ConfigError
from nst_jax.losses import neighbors, style as style_lib


def np_nnst(f, s):
  f = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
  s = np.asarray(s, np.float64).reshape(-1, s.shape[-1])
  f, s = f - f.mean(0), s - s.mean(0)
  f /= np.linalg.norm(f, axis=1, keepdims=True)
  s /= np.linalg.norm(s, axis=1, keepdims=True)
  d = 1. - f @ s.T                          # (N, M) centred cosine distances
  return d.min(axis=1).mean()


def _feats(seed, shape, shift=0.):
  return np.maximum(np.random.default_rng(seed).normal(size=shape) + shift, 0.).astype(np.float32)


KEY = jax.random.PRNGKey(0)


def test_value_against_numpy_without_sampling():
  f, s = _feats(0, (12, 10, 6)), _feats(1, (9, 14, 6), 0.5)
  got = neighbors.nnst_loss(jnp.asarray(f), neighbors.nnst_target(jnp.asarray(s)), KEY)
  np.testing.assert_allclose(float(got), np_nnst(f, s), rtol=1e-5)
  assert float(got) > 0.


def test_zero_for_identical_features_and_chunks_agree():
  s = _feats(2, (20, 16, 5))
  t = neighbors.nnst_target(jnp.asarray(s))
  assert abs(float(neighbors.nnst_loss(jnp.asarray(s), t, KEY))) < 1e-6
  f = jnp.asarray(_feats(3, (20, 16, 5)))
  np.testing.assert_allclose(float(neighbors.nnst_loss(f, t, KEY, chunk=7)),
                             float(neighbors.nnst_loss(f, t, KEY)), rtol=1e-6)


def test_sampled_grid_is_the_codes_strided_slice():
  assert [neighbors.grid_stride(*hw) for hw in ((64, 64), (70, 40), (130, 100))] == [1, 1, 2]
  f, s = _feats(4, (130, 100, 4)), _feats(5, (140, 90, 4), 0.3)
  key = jax.random.PRNGKey(7)
  a, b = (int(v) for v in jax.random.randint(key, (2,), 0, 2))
  # The code's x[a::2, b::2], cut to H // 2 x W // 2 positions (static shapes).
  want = np_nnst(f[a::2, b::2][:65, :50], s[a::2, b::2][:70, :45])
  got = neighbors.nnst_loss(jnp.asarray(f), neighbors.nnst_target(jnp.asarray(s)), key)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # Fixed key: the same value; the loop draws a new key (offset) every step.
  again = neighbors.nnst_loss(jnp.asarray(f), neighbors.nnst_target(jnp.asarray(s)), key)
  assert float(again) == float(got)


def test_gradient_matches_finite_differences():
  f = _feats(6, (6, 5, 4), 0.5).astype(np.float64)
  with jax.enable_x64(True):
    s = jnp.asarray(_feats(7, (7, 6, 4), 0.5), jnp.float64)
    t = neighbors.nnst_target(s)
    fn = lambda x: neighbors.nnst_loss(x, t, KEY)
    g = np.asarray(jax.grad(fn)(jnp.asarray(f)))
    eps, rng = 1e-6, np.random.default_rng(0)
    for _ in range(12):
      i = tuple(rng.integers(0, n) for n in f.shape)
      up, dn = f.copy(), f.copy()
      up[i] += eps
      dn[i] -= eps
      fd = (np_nnst(up, np.asarray(s)) - np_nnst(dn, np.asarray(s))) / (2 * eps)
      np.testing.assert_allclose(g[i], fd, rtol=1e-4, atol=1e-9)


def test_registry_errors_and_memory_formula():
  assert 'nnst' in style_lib.STYLE_LOSSES
  entry = style_lib.get('nnst')
  assert entry.sampled(style_lib.Options()) and not entry.regions(style_lib.Options())
  with pytest.raises(ConfigError, match='nnst'):
    style_lib.get('nsst')
  with pytest.raises(ConfigError, match='per-region'):
    style_lib.check_masks('nnst', style_lib.Options(), True)
  with pytest.raises(ConfigError, match='larger style'):
    neighbors.nnst_loss(jnp.ones((200, 200, 3)), neighbors.nnst_target(jnp.ones((2, 2, 3))), KEY)
  small = style_lib.loss_temp_bytes('nnst', style_lib.Options(), [(48, 64, 256)])
  big = style_lib.loss_temp_bytes('nnst', style_lib.Options(), [(480, 640, 256)])
  # Sampled: beyond the full map's cotangent, bounded at any size.
  assert 0 < small and big - 4 * 480 * 640 * 256 < 2 * small


@pytest.mark.parametrize('shape', [(24, 32, 64), (96, 128, 16)])
def test_memory_formula_bounds_xla(shape):
  f = jnp.ones(shape)
  t = neighbors.nnst_target(jnp.ones(shape))
  fn = jax.jit(jax.value_and_grad(lambda f, k: neighbors.nnst_loss(f, t, k)))
  ma = fn.lower(f, KEY).compile().memory_analysis()
  if ma is None:
    pytest.skip('no memory analysis on this backend')
  formula = style_lib.loss_temp_bytes('nnst', style_lib.Options(), [shape])
  assert ma.temp_size_in_bytes <= formula <= 3 * ma.temp_size_in_bytes
