"""The integer-key sort with a permutation-free gradient (nst_jax.losses.sorting) against
jnp.sort's values and autodiff's gradient, and a NumPy transcription of its tie rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.losses import sorting as S


def _tied(seed, shape, dtype=np.float32):
  """Values on a coarse grid (many ties), with a -0.0 and both infinities."""
  x = (np.random.default_rng(seed).integers(-4, 5, size=shape) * 0.25).astype(dtype)
  x.reshape(-1)[:3] = [-0., np.inf, -np.inf]
  return x


def _np_tie_mean_grad(x, w):
  """NumPy: d/dx of sum(w * sort(x, 0)), each element taking the mean of w over the ranks
  [lo, hi) of the values equal to it."""
  out = np.empty(x.shape, np.float64)
  for c in range(x.shape[1]):
    col = np.sort(x[:, c])
    lo = np.searchsorted(col, x[:, c], 'left')
    hi = np.searchsorted(col, x[:, c], 'right')
    out[:, c] = [w[a:b, c].mean() for a, b in zip(lo, hi)]
  return out


@pytest.mark.parametrize('dtype', [np.float32, jnp.bfloat16])
def test_sort_equals_jnp_sort_exactly(dtype):
  """Every axis of tied data with signed zeros and infinities; NaNs (either sign) go last."""
  x = jnp.asarray(_tied(60, (9, 8, 7)), dtype)
  for axis in (0, 1, 2, -1):
    np.testing.assert_array_equal(np.asarray(S.sort(x, axis), np.float32),
                                  np.asarray(jnp.sort(x, axis=axis), np.float32))
  y = np.random.default_rng(61).normal(size=(30, 4)).astype(np.float32)
  y[[3, 17], 1] = [np.nan, -np.nan]
  y[5, 2] = -np.nan
  got, want = S.sort(jnp.asarray(y, dtype), 0), jnp.sort(jnp.asarray(y, dtype), axis=0)
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
  assert np.isnan(np.asarray(got, np.float32)[-2:, 1]).all()
  if dtype != np.float32:
    return
  # Batched (as a sweep's vmap) and float64.
  np.testing.assert_array_equal(jax.vmap(lambda a: S.sort(a, 0))(x), jnp.sort(x, axis=1))
  with jax.enable_x64(True):
    z = jnp.asarray(_tied(62, (40, 3), np.float64))
    assert S.sort(z, 0).dtype == jnp.float64
    np.testing.assert_array_equal(S.sort(z, 0), jnp.sort(z, axis=0))


def test_sort_gradient_equals_autodiff_on_distinct_values():
  """Distinct values: exactly jax.grad through jnp.sort, for a non-linear loss, on every axis."""
  rng = np.random.default_rng(63)
  x = jnp.asarray(rng.normal(size=(40, 6, 5)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(40, 6, 5)), jnp.float32)
  assert len(np.unique(np.asarray(x))) == x.size

  def grads(srt):
    loss = lambda z, w, ax: jnp.sum(w * jnp.sin(srt(z, ax)) * srt(z, ax))
    return jax.jit(lambda z, w: [jax.grad(loss)(z, w, ax) for ax in (0, 1, -1)])(x, w)

  for got, want in zip(grads(S.sort), grads(lambda a, ax: jnp.sort(a, axis=ax))):
    np.testing.assert_array_equal(got, want)


def test_sort_gradient_on_ties_is_the_tie_groups_mean():
  """Tied values (and a dead channel of zeros): each receives the mean cotangent of its tie
  group; the group's total is autodiff's (one tie-break) total."""
  x = _tied(64, (60, 4))
  x[:, 3] = 0.
  w = np.random.default_rng(65).normal(size=(60, 4)).astype(np.float32)
  grad = jax.jit(jax.grad(lambda z, w: jnp.sum(w * S.sort(z, 0))))
  got = np.asarray(grad(jnp.asarray(x), jnp.asarray(w)), np.float64)
  want = _np_tie_mean_grad(x, w.astype(np.float64))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  auto = np.asarray(jax.grad(lambda z: jnp.sum(w * jnp.sort(z, axis=0)))(jnp.asarray(x)))
  assert not np.allclose(got, auto)  # autodiff picks a tie-break
  for c in range(4):
    for value in np.unique(x[:, c]):
      group = x[:, c] == value
      np.testing.assert_allclose(got[group, c].sum(), auto[group, c].sum(), rtol=1e-5, atol=1e-5)


