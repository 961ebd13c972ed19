"""Distribution style losses (nst_jax.losses.distribution) against NumPy transcriptions of each
paper's definition, independent identities (Gram loss, 1-D optimal transport), finite-difference
gradients in float64, sampling determinism and bad options."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from nst_jax.errors import ConfigError
from nst_jax.losses import distribution as D
from nst_jax.losses import gram as gram_lib
from nst_jax.losses import sorting as S

KEY = jax.random.PRNGKey(3)


def _feats(seed, shape=(6, 7, 5), low=0., high=3.):
  return np.random.default_rng(seed).uniform(low, high, size=shape)


def _mask(seed, shape=(6, 7)):
  return np.random.default_rng(seed).uniform(0., 1., size=shape)


def _rows(f):
  return np.asarray(f, np.float64).reshape(-1, f.shape[-1])


def _w(f, mask):
  """NumPy position weights: mask^2 / sum(mask^2), or uniform."""
  m = f.shape[0] * f.shape[1]
  if mask is None:
    return np.full(m, 1. / m)
  m2 = np.asarray(mask, np.float64).reshape(-1) ** 2
  return m2 / m2.sum()


def _sorted_quantiles(s_sorted, m):
  """NumPy: style sorted values (at (j+0.5)/Ms) read at the quantiles (i+0.5)/m, per column."""
  ms = s_sorted.shape[0]
  qs, qi = (np.arange(ms) + 0.5) / ms, (np.arange(m) + 0.5) / m
  return np.stack([np.interp(qi, qs, s_sorted[:, c]) for c in range(s_sorted.shape[1])], 1)


# --- NumPy transcriptions of the definitions ---------------------------------------------------

def np_mean_std(f, s, mf=None, ms=None):
  x, y, wx, wy = _rows(f), _rows(s), _w(f, mf), _w(s, ms)
  mux, muy = wx @ x, wy @ y
  sx = np.sqrt(wx @ (x - mux) ** 2)
  sy = np.sqrt(wy @ (y - muy) ** 2)
  return np.sum((mux - muy) ** 2 + (sx - sy) ** 2) / x.shape[1]


def np_mmd(f, s, kernel, c=0., mf=None, ms=None, bw=None):
  """MMD^2 / Z by explicit (weighted) double sums over all pairs of positions."""
  x, y, wx, wy = _rows(f), _rows(s), _w(f, mf), _w(s, ms)
  if kernel == 'linear':
    k, z = (lambda a, b: a @ b.T), x.shape[1]
  elif kernel == 'poly':
    k, z = (lambda a, b: (a @ b.T + c) ** 2), x.shape[1] ** 2
  else:
    k, z = (lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / bw)), x.shape[1]
  return (wx @ k(x, x) @ wx + wy @ k(y, y) @ wy - 2 * wx @ k(x, y) @ wy) / z


def np_bandwidth(x, y):
  """The authors' pair weighting: 1/4 (x, x'), 1/4 (y, y'), 1/2 (x, y), by explicit loops."""
  d = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)
  off = lambda m: m[~np.eye(m.shape[0], dtype=bool)].mean()
  return (off(d(x, x)) + off(d(y, y)) + 2 * d(x, y).mean()) / 4


def np_cmd(f, s, order, mf=None, ms=None):
  sig = lambda a: 1. / (1. + np.exp(-a))
  x, y, wx, wy = sig(_rows(f)), sig(_rows(s)), _w(f, mf), _w(s, ms)
  mux, muy = wx @ x, wy @ y
  out = np.linalg.norm(mux - muy)
  for k in range(2, order + 1):
    out += np.linalg.norm(wx @ (x - mux) ** k - wy @ (y - muy) ** k)
  return out


def np_histogram(f, s):
  x, y = np.sort(_rows(f), 0), np.sort(_rows(s), 0)
  return np.mean((x - _sorted_quantiles(y, x.shape[0])) ** 2)


def np_w2_assignment(a, b):
  """1-D W2^2 of two equal-size samples by an optimal assignment (no sorting)."""
  cost = (a[:, None] - b[None]) ** 2
  r, c = linear_sum_assignment(cost)
  return cost[r, c].mean()


# --- Values ---------------------------------------------------------------------------------

@pytest.mark.parametrize('masked', [False, True])
def test_mean_std_matches_numpy(masked):
  f, s = _feats(0), _feats(1, (5, 8, 5), 0., 2.)
  mf, ms = (_mask(2), _mask(3, (5, 8))) if masked else (None, None)
  t = D.mean_std_target(jnp.asarray(s, jnp.float32), None if ms is None else jnp.asarray(ms))
  got = D.mean_std_loss(jnp.asarray(f, jnp.float32), t, None if mf is None else jnp.asarray(mf))
  np.testing.assert_allclose(float(got), np_mean_std(f, s, mf, ms), rtol=2e-5)


@pytest.mark.parametrize('kernel,c,masked', [('linear', 0., False), ('linear', 0., True),
                                             ('poly', 0., False), ('poly', 0.7, False),
                                             ('poly', 0.7, True)])
def test_mmd_matches_pairwise_numpy(kernel, c, masked):
  f, s = _feats(4), _feats(5, (5, 8, 5), 0., 2.)
  mf, ms = (_mask(6), _mask(7, (5, 8))) if masked else (None, None)
  j = lambda a: None if a is None else jnp.asarray(a, jnp.float32)
  t = D.mmd_target(j(s), j(ms), kernel=kernel)
  got = D.mmd_loss(j(f), t, j(mf), kernel=kernel, c=c)
  np.testing.assert_allclose(float(got), np_mmd(f, s, kernel, c, mf, ms), rtol=2e-5)


def test_mmd_gaussian_matches_numpy_without_sampling():
  """samples >= M and >= Ms: every position, the authors' bandwidth, the V-statistic / C."""
  f, s = _feats(8, (4, 5, 3)), _feats(9, (3, 6, 3), 0., 2.)
  t = D.mmd_target(jnp.asarray(s, jnp.float32), kernel='gaussian', samples=64)
  loss = jax.jit(lambda z: D.mmd_loss(z, t, kernel='gaussian', samples=64))
  got = loss(jnp.asarray(f, jnp.float32))
  bw = np_bandwidth(_rows(f), _rows(s))
  np.testing.assert_allclose(float(D.gaussian_bandwidth(_rows(f), _rows(s))), bw, rtol=1e-5)
  np.testing.assert_allclose(float(got), np_mmd(f, s, 'gaussian', bw=bw), rtol=1e-4)


def test_mmd_gaussian_sampling_is_deterministic_per_key():
  f, s = _feats(10, (8, 8, 4)), _feats(11, (7, 9, 4), 0., 2.)
  t = D.mmd_target(jnp.asarray(s, jnp.float32), kernel='gaussian', samples=16,
                   key=jax.random.PRNGKey(0))
  assert t['samples'].shape == (16, 4)
  loss = jax.jit(lambda k: D.mmd_loss(jnp.asarray(f, jnp.float32), t, kernel='gaussian',
                                      samples=16, key=k))
  a, b, other = loss(KEY), loss(KEY), loss(jax.random.PRNGKey(4))
  assert float(a) == float(b) and float(a) != float(other) and float(a) > 0
  # The value is the estimator on the sampled positions: NumPy on the same rows.
  x = _rows(f)[np.asarray(jax.random.permutation(KEY, 64)[:16])]
  y = np.asarray(t['samples'], np.float64)
  want = np_mmd(x[:, None], y[:, None], 'gaussian', bw=np_bandwidth(x, y))
  np.testing.assert_allclose(float(a), want, rtol=1e-4)


def test_mmd_poly_c0_is_the_gram_loss():
  """Li et al.: the Gram loss is MMD^2 with k = (x.y)^2, up to its constant (Z = C^2 here)."""
  f, s = _feats(12), _feats(13, (5, 8, 5), 0., 2.)
  f32, s32 = jnp.asarray(f, jnp.float32), jnp.asarray(s, jnp.float32)
  got = D.mmd_loss(f32, D.mmd_target(s32, kernel='poly'), kernel='poly')
  a = gram_lib.gram(s32)
  np.testing.assert_allclose(float(got), float(gram_lib.style_loss(f32, a, 'tf_tutorial')),
                             rtol=1e-5)
  np.testing.assert_allclose(float(got), 4 * float(gram_lib.style_loss(f32, a, 'gatys')),
                             rtol=1e-5)
  m = _mask(14)
  got_m = D.mmd_loss(f32, D.mmd_target(s32, kernel='poly'), jnp.asarray(m, jnp.float32))
  want_m = gram_lib.style_loss(f32, a, 'tf_tutorial', mask=jnp.asarray(m, jnp.float32))
  np.testing.assert_allclose(float(got_m), float(want_m), rtol=1e-5)


def test_mmd_linear_is_squared_mean_distance():
  f, s = _feats(15), _feats(16, (5, 8, 5), 0., 2.)
  got = D.mmd_loss(jnp.asarray(f, jnp.float32), D.mmd_target(jnp.asarray(s, jnp.float32),
                                                               kernel='linear'), kernel='linear')
  want = np.sum((_rows(f).mean(0) - _rows(s).mean(0)) ** 2) / 5
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


@pytest.mark.parametrize('order,masked', [(2, False), (3, True), (5, False), (5, True)])
def test_cmd_matches_numpy(order, masked):
  f, s = _feats(17, low=-3.), _feats(18, (5, 8, 5), -2., 2.)
  mf, ms = (_mask(19), _mask(20, (5, 8))) if masked else (None, None)
  j = lambda a: None if a is None else jnp.asarray(a, jnp.float32)
  t = D.cmd_target(j(s), j(ms), order=order)
  assert t['moments'].shape == (order - 1, 5)
  got = D.cmd_loss(j(f), t, j(mf), order=order)
  np.testing.assert_allclose(float(got), np_cmd(f, s, order, mf, ms), rtol=2e-5)


def test_histogram_equals_per_channel_optimal_transport():
  """Equal sizes: the mean over channels of W2^2, computed by an optimal assignment."""
  f, s = _feats(21), _feats(22, low=-1.)
  got = D.histogram_loss(jnp.asarray(f, jnp.float32), D.histogram_target(jnp.asarray(s,
                                                                                   jnp.float32)))
  x, y = _rows(f), _rows(s)
  want = np.mean([np_w2_assignment(x[:, c], y[:, c]) for c in range(5)])
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_histogram_unequal_sizes():
  f, s = _feats(23), _feats(24, (5, 9, 5), -1., 2.)
  f32, s32 = jnp.asarray(f, jnp.float32), jnp.asarray(s, jnp.float32)
  got = D.histogram_loss(f32, D.histogram_target(s32))
  np.testing.assert_allclose(float(got), np_histogram(f, s), rtol=1e-5)
  # A style of the image's size with every position twice (Ms = 2M): each image quantile falls
  # between the two copies of a value, so the loss is the equal-size one.
  same = jnp.asarray(_feats(24, (6, 7, 5), -1., 2.), jnp.float32)
  twice = jnp.concatenate([same, same], axis=0)
  np.testing.assert_allclose(float(D.histogram_loss(f32, D.histogram_target(twice))),
                             float(D.histogram_loss(f32, D.histogram_target(same))), rtol=1e-6)


def test_quantiles_endpoints_and_identity():
  v = jnp.asarray([[0.], [1.], [2.], [3.]])
  np.testing.assert_array_equal(D.quantiles(v, 4), v)
  np.testing.assert_allclose(D.quantiles(v, 2)[:, 0], [0.5, 2.5])  # (i+0.5)/2 -> pos 0.5, 2.5
  np.testing.assert_allclose(D.quantiles(v, 8)[[0, -1], 0], [0., 3.])  # held beyond the ends


def test_sliced_wasserstein_matches_numpy():
  f, s = _feats(25), _feats(26, (5, 9, 5), -1., 2.)
  f32, s32 = jnp.asarray(f, jnp.float32), jnp.asarray(s, jnp.float32)
  t = D.sliced_wasserstein_target(s32)
  v = np.asarray(D.random_directions(KEY, 7, 5), np.float64)
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1., rtol=1e-6)
  got = D.sliced_wasserstein_loss(f32, t, KEY, projections=7)
  px, ps = np.sort(_rows(f) @ v.T, 0), np.sort(_rows(s) @ v.T, 0)
  want = np.mean((px - _sorted_quantiles(ps, px.shape[0])) ** 2)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # projections=0: one direction per channel, the same draw as projections=C.
  np.testing.assert_allclose(float(D.sliced_wasserstein_loss(f32, t, KEY)),
                             float(D.sliced_wasserstein_loss(f32, t, KEY, projections=5)))


def test_sliced_wasserstein_one_projection_is_1d_wasserstein():
  f, s = _feats(27), _feats(28, low=-1.)
  f32, s32 = jnp.asarray(f, jnp.float32), jnp.asarray(s, jnp.float32)
  got = D.sliced_wasserstein_loss(f32, D.sliced_wasserstein_target(s32), KEY, projections=1)
  v = np.asarray(D.random_directions(KEY, 1, 5), np.float64)[0]
  np.testing.assert_allclose(float(got), np_w2_assignment(_rows(f) @ v, _rows(s) @ v), rtol=1e-5)


def test_sliced_wasserstein_key_determinism():
  f, s = _feats(29), _feats(30, (5, 8, 5))
  t = D.sliced_wasserstein_target(jnp.asarray(s, jnp.float32))
  loss = jax.jit(lambda k: D.sliced_wasserstein_loss(jnp.asarray(f, jnp.float32), t, k))
  a, b, other = loss(KEY), loss(KEY), loss(jax.random.PRNGKey(11))
  assert float(a) == float(b) and float(a) != float(other)


def _jnp_sort_histogram(f, s):
  """The histogram loss with jnp.sort (the definition before the integer-key sort)."""
  x, y = f.reshape(-1, f.shape[-1]), s.reshape(-1, s.shape[-1])
  return jnp.mean(jnp.square(jnp.sort(x, axis=0) - D.quantiles(jnp.sort(y, axis=0), x.shape[0])))


def _jnp_sort_sliced_wasserstein(f, s, key, p):
  x, y = f.reshape(-1, f.shape[-1]), s.reshape(-1, s.shape[-1])
  v = D.random_directions(key, p, x.shape[1], x.dtype)
  px = jnp.sort(jnp.matmul(x, v.T, precision=D._HI), axis=0)
  ps = jnp.sort(jnp.matmul(y, v.T, precision=D._HI), axis=0)
  return jnp.mean(jnp.square(px - D.quantiles(ps, x.shape[0])))


def test_sorted_losses_unchanged_from_jnp_sort():
  """Values on ReLU-like (tied) features, gradients on distinct ones; a style of another size."""
  rng = np.random.default_rng(66)
  relu = lambda a: jnp.asarray(np.maximum(a, 0.), jnp.float32)
  f, s = relu(rng.normal(size=(12, 10, 8))), relu(rng.normal(0.3, 1., size=(9, 11, 8)))
  hist = lambda z: D.histogram_loss(z, D.histogram_target(s))
  sw = lambda z: D.sliced_wasserstein_loss(z, D.sliced_wasserstein_target(s), KEY, projections=6)
  old_sw = lambda z: _jnp_sort_sliced_wasserstein(z, s, KEY, 6)
  old_hist = lambda z: _jnp_sort_histogram(z, s)
  z = jnp.asarray(rng.normal(size=(12, 10, 8)), jnp.float32)
  for new, old, rtol in ((hist, old_hist, 1e-6), (sw, old_sw, 1e-5)):
    new, old = jax.jit(jax.value_and_grad(new)), jax.jit(jax.value_and_grad(old))
    np.testing.assert_allclose(float(new(f)[0]), float(old(f)[0]), rtol=1e-6)
    np.testing.assert_allclose(new(z)[1], old(z)[1], rtol=rtol, atol=1e-9)


def test_sorted_loss_gradients_sort_one_operand():
  """The compiled gradient sorts once per sort, with its permutation: the native kernel's
  (values, permutation) call where it is built, else one operand (the int64 key-and-index
  packing); never a value co-sorted with an iota as autodiff of jnp.sort does."""
  f = jnp.asarray(_feats(67), jnp.float32)
  t = D.histogram_target(f)
  native = S.native.sort_targets() is not None
  for fn in (lambda z: D.histogram_loss(z, t),
             lambda z: D.sliced_wasserstein_loss(z, D.sliced_wasserstein_target(f), KEY)):
    hlo = jax.jit(jax.grad(fn)).lower(f).as_text()
    sorts = re.findall(r'"stablehlo\.sort"\(([^)]*)\)', hlo)
    if native:
      assert not sorts and '@nst_sort_perm_f32' in hlo
      continue
    assert sorts and all(',' not in operands for operands in sorts), sorts
    assert 'xi64' in hlo
  hlo = jax.jit(jax.grad(lambda z: _jnp_sort_histogram(z, f))).lower(f).as_text()
  assert any(',' in ops for ops in re.findall(r'"stablehlo\.sort"\(([^)]*)\)', hlo))


def _all_losses():
  """name -> (target(style), loss(features, target)) with default options."""
  k = jax.random.PRNGKey(0)
  return {
      'mean_std': (D.mean_std_target, D.mean_std_loss),
      'mmd_linear': (lambda s: D.mmd_target(s, kernel='linear'),
                     lambda f, t: D.mmd_loss(f, t, kernel='linear')),
      'mmd_poly': (lambda s: D.mmd_target(s, kernel='poly'),
                   lambda f, t: D.mmd_loss(f, t, kernel='poly', c=0.5)),
      'mmd_gaussian': (lambda s: D.mmd_target(s, kernel='gaussian'),
                       lambda f, t: D.mmd_loss(f, t, kernel='gaussian', key=k)),
      'cmd': (D.cmd_target, D.cmd_loss),
      'histogram': (D.histogram_target, D.histogram_loss),
      'sliced_wasserstein': (D.sliced_wasserstein_target,
                             lambda f, t: D.sliced_wasserstein_loss(f, t, k)),
  }


def test_zero_for_the_same_distribution_positive_otherwise():
  s = jnp.asarray(_feats(31), jnp.float32)
  # The same positions in another order: the same distribution.
  perm = np.random.default_rng(0).permutation(42)
  shuffled = s.reshape(42, 5)[perm].reshape(6, 7, 5)
  other = jnp.asarray(_feats(32, low=0.5), jnp.float32)
  for name, (target, loss) in _all_losses().items():
    t = target(s)
    assert abs(float(loss(s, t))) < 1e-6, name
    if name != 'mmd_gaussian':  # its sample is every position here, in order: exactly 0 above
      assert abs(float(loss(shuffled, t))) < 1e-5, name
    assert float(loss(other, t)) > 1e-4, name


def test_masks_select_a_region():
  """A 0/1 mask gives the statistics of the selected positions; a mask of ones, the plain loss."""
  f, s = jnp.asarray(_feats(33), jnp.float32), jnp.asarray(_feats(34, low=-1.), jnp.float32)
  ones = jnp.ones((6, 7), jnp.float32)
  binary = np.zeros((6, 7), np.float32)
  binary[1:4, 2:6] = 1.
  region = f[1:4, 2:6]
  cases = [(D.mean_std_target, D.mean_std_loss, {}),
           (D.mmd_target, D.mmd_loss, {'kernel': 'linear'}),
           (D.mmd_target, D.mmd_loss, {'kernel': 'poly'}),
           (D.cmd_target, D.cmd_loss, {'order': 4})]
  for target_fn, loss_fn, kw in cases:
    t = target_fn(s, **kw)
    plain = float(loss_fn(f, t, **kw))
    np.testing.assert_allclose(float(loss_fn(f, t, ones, **kw)), plain, rtol=1e-5)
    np.testing.assert_allclose(float(loss_fn(f, t, jnp.asarray(binary), **kw)),
                               float(loss_fn(region, t, **kw)), rtol=1e-5)
    # The mask of the style side too: its region's statistics.
    t_region = target_fn(s, jnp.asarray(binary), **kw)
    np.testing.assert_allclose(float(loss_fn(f, t_region, **kw)),
                               float(loss_fn(f, target_fn(s[1:4, 2:6], **kw), **kw)), rtol=1e-5)


# --- Gradients ------------------------------------------------------------------------------

def _check_directional_derivatives(fn, z, seeds=(0, 1, 2), eps=1e-6, rtol=1e-6):
  value_and_grad = jax.jit(jax.value_and_grad(fn))  # one compilation for both
  g = value_and_grad(z)[1]
  f = lambda z: value_and_grad(z)[0]
  assert np.all(np.isfinite(np.asarray(g)))
  for seed in seeds:
    v = jnp.asarray(np.random.default_rng(seed + 100).normal(size=z.shape))
    fd = (f(z + eps * v) - f(z - eps * v)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.vdot(g, v)), float(fd), rtol=rtol, atol=1e-12)


def test_gradients_match_finite_differences():
  """jax.grad of every loss against central differences along random directions, float64."""
  with jax.enable_x64(True):
    f = jnp.asarray(_feats(40, low=-1.))
    s = jnp.asarray(_feats(41, (5, 8, 5), -1., 2.))
    m = jnp.asarray(_mask(42))
    ms = jnp.asarray(_mask(43, (5, 8)))
    k = jax.random.PRNGKey(5)
    cases = {
        'mean_std': lambda z: D.mean_std_loss(z, D.mean_std_target(s, ms), m),
        'mmd_linear': lambda z: D.mmd_loss(z, D.mmd_target(s, kernel='linear'), m,
                                           kernel='linear'),
        'mmd_poly': lambda z: D.mmd_loss(z, D.mmd_target(s, ms, kernel='poly'), m, c=0.3),
        'cmd': lambda z: D.cmd_loss(z, D.cmd_target(s, ms, order=5), m, order=5),
        'cmd_nomask': lambda z: D.cmd_loss(z, D.cmd_target(s, order=3), order=3),
        'histogram': lambda z: D.histogram_loss(z, D.histogram_target(s)),
        'sliced_wasserstein': lambda z: D.sliced_wasserstein_loss(
            z, D.sliced_wasserstein_target(s), k, projections=4),
    }
    for name, fn in cases.items():
      try:
        _check_directional_derivatives(fn, f)
      except AssertionError as e:
        raise AssertionError(f'{name}: {e}') from e


def test_gaussian_gradient_holds_the_bandwidth_constant():
  """As the authors' backward pass: the gradient is that of the kernel at a fixed bandwidth."""
  with jax.enable_x64(True):
    f = jnp.asarray(_feats(44, (3, 4, 3)))
    s = jnp.asarray(_feats(45, (4, 3, 3), 0., 2.))
    t = D.mmd_target(s, kernel='gaussian', samples=64)
    g = np.asarray(jax.jit(jax.grad(lambda z: D.mmd_loss(z, t, kernel='gaussian', samples=64)))(f))
    bw = np_bandwidth(_rows(f), _rows(s))
    base = np.asarray(f)
    for idx in [(0, 0, 0), (1, 2, 1), (2, 3, 2)]:
      e = np.zeros_like(base)
      e[idx] = 1e-6
      fd = (np_mmd(base + e, s, 'gaussian', bw=bw) - np_mmd(base - e, s, 'gaussian', bw=bw)) / 2e-6
      np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-12)


def test_gradients_at_a_match_and_dead_channels_are_finite():
  """std and the CMD norms at 0: zero gradients, not NaN (a dead ReLU channel is constant)."""
  s = np.asarray(_feats(46), np.float32)
  s[..., 2] = 0.
  s = jnp.asarray(s)
  for name, (target, loss) in _all_losses().items():
    g = jax.jit(jax.grad(lambda z, t=target(s), loss=loss: loss(z, t)))(s)
    assert np.all(np.isfinite(np.asarray(g))), name
    assert float(jnp.max(jnp.abs(g))) < 1e-4, name


# --- Options and memory ----------------------------------------------------------------------

def test_bad_options_raise_config_error():
  f = jnp.asarray(_feats(47), jnp.float32)
  m = jnp.ones((6, 7), jnp.float32)
  with pytest.raises(ConfigError, match='cmd_order'):
    D.cmd_target(f, order=1)
  with pytest.raises(ConfigError, match='cmd_order'):
    D.cmd_loss(f, D.cmd_target(f), order=0)
  with pytest.raises(ConfigError, match='cmd_order'):
    D.cmd_loss(f, D.cmd_target(f), order=2.5)
  with pytest.raises(ConfigError, match='same cmd_order'):
    D.cmd_loss(f, D.cmd_target(f, order=3), order=5)
  with pytest.raises(ConfigError, match='sw_projections'):
    D.sliced_wasserstein_loss(f, D.sliced_wasserstein_target(f), KEY, projections=-1)
  with pytest.raises(ConfigError, match='mmd_kernel'):
    D.mmd_target(f, kernel='rbf')
  with pytest.raises(ConfigError, match='mmd_kernel'):
    D.mmd_loss(f, D.mmd_target(f), kernel='cubic')
  with pytest.raises(ConfigError, match='per-region'):
    D.mmd_target(f, m, kernel='gaussian')
  with pytest.raises(ConfigError, match='per-region'):
    D.mmd_loss(f, D.mmd_target(f, kernel='gaussian'), m, kernel='gaussian', key=KEY)
  with pytest.raises(ConfigError, match='mmd_c'):
    D.mmd_loss(f, D.mmd_target(f), kernel='poly', c=-1.)
  with pytest.raises(ConfigError, match='style_samples'):
    D.mmd_target(f, kernel='gaussian', samples=1)
  with pytest.raises(ConfigError, match='PRNG key'):
    D.mmd_loss(f, D.mmd_target(f, kernel='gaussian'), kernel='gaussian', samples=8)
  with pytest.raises(ConfigError, match='mask of shape'):
    D.mean_std_loss(f, D.mean_std_target(f), jnp.ones((7, 6)))
  with pytest.raises(ConfigError, match=r'\(H, W, C\)'):
    D.histogram_target(f[None])


def test_jitted_equals_eager_with_static_options():
  f, s = jnp.asarray(_feats(48), jnp.float32), jnp.asarray(_feats(49, (5, 8, 5)), jnp.float32)
  m = jnp.asarray(_mask(50), jnp.float32)
  t = D.cmd_target(s, order=4)
  eager = D.cmd_loss(f, t, m, order=4)
  jitted = jax.jit(lambda f, t, m: D.cmd_loss(f, t, m, order=4))(f, t, m)
  np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)
  tg = D.mmd_target(s, kernel='gaussian', samples=8)
  fn = jax.jit(lambda f, t, k: D.mmd_loss(f, t, kernel='gaussian', samples=8, key=k))
  np.testing.assert_allclose(float(fn(f, tg, KEY)),
                             float(D.mmd_loss(f, tg, kernel='gaussian', samples=8, key=KEY)),
                             rtol=1e-5)


def _largest_intermediate(fn, *args):
  jaxpr = jax.make_jaxpr(jax.grad(fn))(*args)
  sizes = [int(np.prod(v.aval.shape)) for e in jaxpr.eqns for v in e.outvars
           if hasattr(v.aval, 'shape')]
  return max(sizes)


def test_no_pairwise_matrix_over_all_positions():
  """M = 4096 positions: the gaussian MMD on 32 samples and the poly MMD (a Gram) stay O(M C)."""
  f = jnp.asarray(_feats(51, (64, 64, 4)), jnp.float32)
  s = jnp.asarray(_feats(52, (64, 64, 4)), jnp.float32)
  tg = D.mmd_target(s, kernel='gaussian', samples=32)
  gauss = _largest_intermediate(
      lambda z: D.mmd_loss(z, tg, kernel='gaussian', samples=32, key=KEY), f)
  tp = D.mmd_target(s, kernel='poly')
  poly = _largest_intermediate(lambda z: D.mmd_loss(z, tp, kernel='poly', c=1.), f)
  tc = D.cmd_target(s)
  cmd = _largest_intermediate(lambda z: D.cmd_loss(z, tc), f)
  assert max(gauss, poly, cmd) <= 4096 * 4, (gauss, poly, cmd)
