"""The integer-key sort (nst_jax.losses.sorting) against jnp.sort's values and autodiff's
gradient, and its packed key-and-index sort against NumPy's stable argsort."""

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


@pytest.mark.parametrize('dtype', [np.float32, jnp.bfloat16])
def test_sort_gradient_equals_autodiff_on_ties(dtype):
  """Tied values, signed zeros, infinities and a dead channel of zeros (ReLU's ties): exactly
  autodiff's gradient through jnp.sort, whose stable sort hands tied elements their ranks'
  cotangents in index order; batched as a sweep's vmap too."""
  x = _tied(64, (60, 4))
  x[:, 3] = 0.
  x = jnp.asarray(x, dtype)
  w = jnp.asarray(np.random.default_rng(65).normal(size=(60, 4)), dtype)
  ours = jax.jit(jax.grad(lambda z, w: jnp.sum(w * S.sort(z, 0)).astype(jnp.float32)))
  auto = jax.jit(jax.grad(lambda z, w: jnp.sum(w * jnp.sort(z, axis=0)).astype(jnp.float32)))
  np.testing.assert_array_equal(np.asarray(ours(x, w), np.float32),
                                np.asarray(auto(x, w), np.float32))
  xb, wb = jnp.stack([x, x[::-1]]), jnp.stack([w, -w])
  np.testing.assert_array_equal(np.asarray(jax.vmap(ours)(xb, wb), np.float32),
                                np.asarray(jax.vmap(auto)(xb, wb), np.float32))


def test_sort_packs_keys_and_permutation_in_one_sort():
  """The packed sort returns the sorted keys and the stable argsort, negative keys included."""
  k = jnp.asarray(np.random.default_rng(66).integers(-2**31, 2**31 - 1, size=(3, 500)),
                  jnp.int32)
  k = k.at[:, :50].set(-7)  # a tie run
  keys, perm = S._packed_sort(k)
  np.testing.assert_array_equal(keys, np.sort(np.asarray(k), axis=1))
  np.testing.assert_array_equal(perm, np.argsort(np.asarray(k), axis=1, kind='stable'))
  assert perm.dtype == jnp.int32 and keys.dtype == jnp.int32


def test_sort_falls_back_to_jnp_sort_where_keys_cannot_pack():
  """Float64 (64-bit keys): jnp.sort's values and gradient."""
  with jax.enable_x64(True):
    z = jnp.asarray(_tied(67, (40, 3), np.float64))
    w = jnp.asarray(np.random.default_rng(68).normal(size=(40, 3)))
    got = jax.grad(lambda a: jnp.sum(w * S.sort(a, 0)))(z)
    want = jax.grad(lambda a: jnp.sum(w * jnp.sort(a, axis=0)))(z)
    assert got.dtype == jnp.float64
    np.testing.assert_array_equal(got, want)


# --- The native CPU kernel against the XLA path (both are sort(impl=...)).

native_only = pytest.mark.skipif(
    S.native.sort_targets() is None, reason='the native sort is off here (no compiler, or '
    '$NST_JAX_NATIVE=off); the XLA path is what runs')


@native_only
@pytest.mark.parametrize('shape', [(7, 5), (3, 1023), (2, 1024), (5, 3000), (3, 70000)])
def test_native_sort_equals_xla_path_bit_for_bit(shape):
  """Both row paths (comparison sort below 1024, radix at and above; several threads at the
  last shape): values and gradients bit for bit, on ties, signed zeros, infinities and NaNs."""
  x = _tied(70, shape)
  x[0, 1:3] = [np.nan, -np.nan]
  x[-1, :40] = 0.  # a run of ReLU's zeros
  x[-1, 40:60] = -0.
  x = jnp.asarray(x)
  for axis in (0, 1):
    a = np.asarray(S.sort(x, axis, impl='native'))
    b = np.asarray(S.sort(x, axis, impl='xla'))
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
  w = jnp.asarray(np.random.default_rng(71).normal(size=shape), jnp.float32)
  finite = jnp.where(jnp.isnan(x), 0., x)
  grad = lambda impl: jax.jit(jax.grad(lambda z: jnp.sum(w * S.sort(z, 1, impl=impl))))(finite)
  np.testing.assert_array_equal(grad('native'), grad('xla'))
  assert S.resolve_impl(x) == 'native'


@native_only
def test_native_sort_vmaps_and_handles_leading_dims():
  x = jnp.asarray(np.random.default_rng(72).normal(size=(3, 4, 2048)), jnp.float32)
  want = jnp.sort(x, axis=-1)
  np.testing.assert_array_equal(S.sort(x, -1, impl='native'), want)
  np.testing.assert_array_equal(jax.vmap(lambda a: S.sort(a, -1, impl='native'))(x), want)
  g = jax.vmap(jax.grad(lambda a: jnp.sum(jnp.square(S.sort(a, 0, impl='native')[::-1]))))(x)
  gw = jax.vmap(jax.grad(lambda a: jnp.sum(jnp.square(jnp.sort(a, axis=0)[::-1]))))(x)
  np.testing.assert_array_equal(g, gw)


def test_native_impl_refused_where_it_cannot_run():
  with pytest.raises(ValueError, match='native sort takes float32'):
    S.sort(jnp.zeros((4, 3), jnp.bfloat16), 0, impl='native')
  with pytest.raises(ValueError, match='one of'):
    S.sort(jnp.zeros((4, 3)), 0, impl='radix')
  assert S.resolve_impl(jnp.zeros((4, 3), jnp.bfloat16)) == 'xla'
  assert S.resolve_impl(jnp.zeros((4, 3), jnp.int32)) == 'jnp'
