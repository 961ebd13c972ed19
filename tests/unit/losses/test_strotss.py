"""STROTSS (nst_jax.losses.strotss) against NumPy transcriptions of the authors' code
(nkolkin13/STROTSS: spatial_feature_extract, forward_samples_hypercolumn, remd_loss,
moment_loss, dp_loss, gen_remd_dp_objective) on tiny hypercolumns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.errors import ConfigError
from nst_jax.losses import strotss

# Layers sort by name in depth order; sizes halve as after VGG's poolings (odd sizes floor).
IMAGE_SHAPES = {'l1': (13, 10, 4), 'l2': (6, 5, 5), 'l3': (3, 2, 6)}
STYLE_SHAPES = {'l1': (11, 12, 4), 'l2': (5, 6, 5), 'l3': (2, 3, 6)}
N = 40


def _feats(seed, shapes, scale=2.):
  rng = np.random.default_rng(seed)
  return {l: rng.uniform(0., scale, s).astype(np.float32) for l, s in shapes.items()}


def _pixels(seed, h, w):
  return np.random.default_rng(seed).uniform(0., 255., (h, w, 3)).astype(np.float32)


def np_hypercolumns(feats, pixels, rows, cols, bilinear):
  """The code's per-layer reading, with the coordinates halved whenever a layer is smaller
  than the one before (the image itself is level 0)."""
  xx, yy = rows.astype(np.float64), cols.astype(np.float64)
  parts = [pixels[rows, cols].astype(np.float64) / 255.]
  prev = pixels.shape[0]
  for l in sorted(feats):
    f = np.asarray(feats[l], np.float64)
    h, w = f.shape[:2]
    if h < prev:
      xx, yy = xx / 2., yy / 2.
    prev = h
    if not bilinear:   # forward_samples_hypercolumn: clip, truncate, at every layer
      xx = np.clip(xx, 0, h - 1).astype(np.int32)
      yy = np.clip(yy, 0, w - 1).astype(np.int32)
      parts.append(f[xx, yy])
      continue
    xm, ym = np.floor(xx), np.floor(yy)
    xr, yr = (xx - xm)[:, None], (yy - ym)[:, None]
    x0, y0 = np.clip(xm.astype(int), 0, h - 1), np.clip(ym.astype(int), 0, w - 1)
    x1, y1 = np.clip(x0 + 1, 0, h - 1), np.clip(y0 + 1, 0, w - 1)
    parts.append(f[x0, y0] * (1 - xr) * (1 - yr) + f[x0, y1] * (1 - xr) * yr
                 + f[x1, y0] * xr * (1 - yr) + f[x1, y1] * xr * yr)
  return np.concatenate(parts, axis=1)


def np_cos_dist(x, y):
  return 1. - (x @ y.T) / np.linalg.norm(x, axis=1)[:, None] / np.linalg.norm(y, axis=1)[None]


def np_remd(x, y, palette=False):
  if palette:
    x, y = x @ strotss.YUV.T.astype(np.float64), y @ strotss.YUV.T.astype(np.float64)
  m = np_cos_dist(x, y)
  if palette:
    sq = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None] - 2. * x @ y.T
    m = m + np.sqrt(np.clip(sq, 1e-5, 1e5) / x.shape[1])
  return max(m.min(1).mean(), m.min(0).mean())


def np_moment(x, y):
  mx, my = x.mean(0), y.mean(0)
  sx = (x - mx).T @ (x - mx) / x.shape[0]
  sy = (y - my).T @ (y - my) / y.shape[0]
  return np.abs(mx - my).mean() + np.abs(sx - sy).mean()


def np_dp(x, y):
  mx, my = np_cos_dist(x, x), np_cos_dist(y, y)
  mx, my = mx / mx.sum(0, keepdims=True), my / my.sum(0, keepdims=True)
  return np.abs(mx - my).mean() * x.shape[0]


def np_weights(feats, scale, layer_weights=None, pixels=True):
  v = [np.ones(3)] if pixels else []
  for l in sorted(feats):
    wl = 1. if layer_weights is None else layer_weights[l]
    v.append(np.full(feats[l].shape[-1], scale * wl))
  return np.concatenate(v)


@pytest.fixture(scope='module')
def data():
  img, sty = _feats(0, IMAGE_SHAPES), _feats(1, STYLE_SHAPES)
  px, spx = _pixels(2, 13, 10), _pixels(3, 11, 12)
  target = _target(sty, spx, samples=30, key=jax.random.PRNGKey(5), draws=2)
  return img, px, sty, spx, target


_jit_loss = jax.jit(strotss.strotss_loss, static_argnames=('samples',))


def _loss(feats, pixels, target, key, samples=N, layer_weights=None,
          palette_weight=strotss.PALETTE_WEIGHT, feature_scale=strotss.FEATURE_SCALE):
  """One compilation for the whole file: every option passed, and traced."""
  lw = {l: jnp.float32(1. if layer_weights is None else layer_weights[l]) for l in feats}
  return _jit_loss(feats, pixels, target, key, samples=samples, layer_weights=lw,
                   moment_weight=jnp.float32(1.), palette_weight=jnp.float32(palette_weight),
                   feature_scale=jnp.float32(feature_scale))
_target = jax.jit(strotss.strotss_target, static_argnames=('samples', 'draws'))
_self_sim = jax.jit(strotss.self_similarity_loss, static_argnames=('samples',))


def test_hypercolumns_match_the_codes_reading():
  img, px = _feats(4, IMAGE_SHAPES), _pixels(5, 13, 10)
  rows, cols = strotss.sample_positions(jax.random.PRNGKey(0), 13, 10, 64)
  rows = np.concatenate([np.asarray(rows), [12, 12, 0]])   # the far border, clipped
  cols = np.concatenate([np.asarray(cols), [9, 0, 9]])
  for bilinear in (True, False):
    got = jax.jit(strotss.hypercolumns, static_argnums=4)(img, px, rows, cols, bilinear)
    np.testing.assert_allclose(np.asarray(got), np_hypercolumns(img, px, rows, cols, bilinear),
                               rtol=1e-6, atol=1e-6)


def test_sample_positions_follow_the_codes_grid():
  # 200 x 300: sqrt(60000 // 128^2) = 1.73 -> row stride floor = 1, column stride ceil = 2.
  offsets = set()
  for seed in range(6):
    rows, cols = map(np.asarray, strotss.sample_positions(jax.random.PRNGKey(seed), 200, 300,
                                                          256))
    assert rows.min() >= 0 and rows.max() < 200 and cols.min() >= 0 and cols.max() < 300
    assert len(set(cols % 2)) == 1
    offsets.add(int(cols[0] % 2))
    assert len(set(zip(rows, cols))) > 200
  assert offsets == {0, 1}
  a = strotss.sample_positions(jax.random.PRNGKey(1), 13, 10, 32)
  b = strotss.sample_positions(jax.random.PRNGKey(1), 13, 10, 32)
  c = strotss.sample_positions(jax.random.PRNGKey(2), 13, 10, 32)
  np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
  assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))


def test_target_holds_distinct_style_positions_per_draw(data):
  _, _, sty, spx, target = data
  y = np.asarray(target['features'])
  assert y.shape == (60, 18)
  hh, ww = np.mgrid[0:11, 0:12]
  every = np_hypercolumns(sty, spx, hh.ravel(), ww.ravel(), bilinear=False)
  dist = np.abs(y[:, None, :] - every[None]).max(-1)
  where = dist.argmin(1)
  np.testing.assert_allclose(dist.min(1), 0., atol=1e-5)
  assert len(set(where[:30])) == 30 and len(set(where[30:])) == 30
  assert not np.array_equal(where[:30], where[30:])
  np.testing.assert_allclose(np.asarray(target['mean']), y.mean(0), rtol=1e-5)
  c = y - y.mean(0)
  np.testing.assert_allclose(np.asarray(target['cov']), c.T @ c / 60, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('scale,palette_weight', [(1., 1. / 16), (0.3, 0.5)])
def test_strotss_loss_matches_numpy(data, scale, palette_weight):
  img, px, _, _, target = data
  key = jax.random.PRNGKey(3)
  got = float(_loss(img, px, target, key, samples=N, palette_weight=palette_weight,
                    feature_scale=scale))
  rows, cols = map(np.asarray, strotss.sample_positions(key, 13, 10, N))
  v = np_weights(img, scale)
  x = np_hypercolumns(img, px, rows, cols, bilinear=True) * v
  y = np.asarray(target['features'], np.float64) * v
  want = (np_remd(x, y) + np_moment(x, y) + palette_weight * np_remd(x[:, :3], y[:, :3], True))
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize('with_pixels', [False, True])
def test_self_similarity_matches_numpy(with_pixels):
  img, content = _feats(6, IMAGE_SHAPES), _feats(7, IMAGE_SHAPES)
  px, cpx = (_pixels(8, 13, 10), _pixels(9, 13, 10)) if with_pixels else (None, None)
  key = jax.random.PRNGKey(4)
  got = float(_self_sim(img, content, key, samples=N, pixels=px, content_pixels=cpx))
  rows, cols = map(np.asarray, strotss.sample_positions(key, 13, 10, N))
  v = np_weights(img, strotss.FEATURE_SCALE, pixels=with_pixels)
  cut = 0 if with_pixels else 3
  dummy = np.zeros((13, 10, 3))
  x = np_hypercolumns(img, px if with_pixels else dummy, rows, cols, True)[:, cut:] * v
  c = np_hypercolumns(content, cpx if with_pixels else dummy, rows, cols, True)[:, cut:] * v
  np.testing.assert_allclose(got, np_dp(x, c), rtol=1e-5)


def test_relaxed_emd_pairs_give_the_dense_mins_value_and_gradient():
  rng = np.random.default_rng(10)
  x = jnp.asarray(rng.uniform(0, 1, (25, 7)), jnp.float32)
  y = jnp.asarray(rng.uniform(0, 1, (31, 7)), jnp.float32)

  def dense(x):
    c = 1. - strotss._unit(x) @ strotss._unit(y).T
    return jnp.maximum(jnp.mean(jnp.min(c, 1)), jnp.mean(jnp.min(c, 0)))

  remd = float(jax.jit(strotss.relaxed_emd)(x, y))
  np.testing.assert_allclose(remd, float(jax.jit(dense)(x)), rtol=1e-6)
  np.testing.assert_allclose(remd, np_remd(np.asarray(x, float),
                                                                       np.asarray(y, float)),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(strotss.relaxed_emd))(x, y)),
                             np.asarray(jax.jit(jax.grad(dense))(x)), rtol=1e-5, atol=1e-7)


def test_gradients_match_finite_differences(data):
  _, _, sty, spx, _ = data
  rng = np.random.default_rng(11)
  with jax.enable_x64(True):
    shapes = {l: IMAGE_SHAPES[l] for l in ('l1', 'l3')}   # two layers: a faster compilation
    img = {l: jnp.asarray(rng.uniform(0., 2., s)) for l, s in shapes.items()}
    content = {l: jnp.asarray(rng.uniform(0., 2., s)) for l, s in shapes.items()}
    px = jnp.asarray(rng.uniform(0., 255., (13, 10, 3)))
    target = _target({l: jnp.asarray(sty[l], jnp.float64) for l in shapes},
                     jnp.asarray(spx, jnp.float64), samples=30, draws=2)
    key = jax.random.PRNGKey(6)
    # Both terms in one function, one compilation of its value and gradient (used for the
    # differences too); the target and the content are arguments, not constants XLA folds.
    both = (lambda f, p, t, c, cp: strotss.strotss_loss(
        f, p, t, key, samples=N, palette_weight=0.5, feature_scale=0.5)
        + 3. * strotss.self_similarity_loss(f, c, key, samples=N, pixels=p, content_pixels=cp))
    value_and_grad = jax.jit(jax.value_and_grad(both, argnums=(0, 1)))
    fn = lambda f, p: value_and_grad(f, p, target, content, px * 0.9)[0]
    value, (gf, gp) = value_and_grad(img, px, target, content, px * 0.9)
    assert value.dtype == jnp.float64
    eps = 1e-5
    for l, idx in [('l1', (4, 3, 1)), ('l3', (1, 1, 5))]:
      e = jnp.zeros(shapes[l]).at[idx].set(eps)
      fd = (float(fn({**img, l: img[l] + e}, px)) - float(fn({**img, l: img[l] - e}, px)))
      np.testing.assert_allclose(float(gf[l][idx]), fd / (2 * eps), rtol=1e-4, atol=1e-9)
    rows, cols = map(np.asarray, strotss.sample_positions(key, 13, 10, N))
    idx = (int(rows[0]), int(cols[0]), 2)   # a sampled pixel: RGB is in the hypercolumn
    e = jnp.zeros(px.shape).at[idx].set(eps * 10)   # 4e-7 of the RGB channel's range
    fd = (float(fn(img, px + e)) - float(fn(img, px - e))) / (2 * eps * 10)
    assert abs(float(gp[idx])) > 0.
    np.testing.assert_allclose(float(gp[idx]), fd, rtol=1e-4, atol=1e-9)


def test_zero_on_identical_inputs_positive_otherwise(data):
  img, px, _, _, target = data
  rng = np.random.default_rng(12)
  x = jnp.asarray(rng.uniform(0, 1, (30, 9)), jnp.float32)
  assert float(strotss.relaxed_emd(x, x)) < 1e-6
  # The palette cost keeps the code's clamp of squared distances at 1e-5.
  np.testing.assert_allclose(float(strotss.relaxed_emd(x, x, euclidean=True)),
                             np.sqrt(1e-5 / 9), rtol=1e-3)
  assert float(strotss.moment_loss(x, jnp.mean(x, 0), strotss._covariance(x, jnp.mean(x, 0)))) \
      < 1e-6
  key = jax.random.PRNGKey(7)
  assert float(_self_sim(img, img, key, samples=N, pixels=px, content_pixels=px)) < 1e-6
  assert float(_self_sim(img, _feats(13, IMAGE_SHAPES), key, samples=N)) > 1e-3
  # Constant image and style of the same colour and features: only the palette's floor is left.
  flat = {l: np.full(s, 0.7, np.float32) for l, s in IMAGE_SHAPES.items()}
  flat_px = np.full((13, 10, 3), 90., np.float32)
  flat_target = _target({l: np.full(s, 0.7, np.float32) for l, s in STYLE_SHAPES.items()},
                        np.full((11, 12, 3), 90., np.float32), samples=30, draws=2)
  floor = np.sqrt(1e-5 / 3) / 16
  got = float(_loss(flat, flat_px, flat_target, key, samples=N))
  np.testing.assert_allclose(got, floor, rtol=1e-3, atol=1e-6)
  assert float(_loss(img, px, flat_target, key, samples=N)) > 10 * floor
  assert float(_loss(img, px, target, key, samples=N)) > 10 * floor


def test_determinism_per_key(data):
  img, px, _, _, target = data
  a = float(_loss(img, px, target, jax.random.PRNGKey(8), samples=N))
  b = float(_loss(img, px, target, jax.random.PRNGKey(8), samples=N))
  c = float(_loss(img, px, target, jax.random.PRNGKey(9), samples=N))
  assert a == b and a != c
  content = _feats(14, IMAGE_SHAPES)
  s = [float(_self_sim(img, content, jax.random.PRNGKey(k), samples=N)) for k in (8, 8, 9)]
  assert s[0] == s[1] != s[2]
  t1 = _target(_feats(1, STYLE_SHAPES), _pixels(3, 11, 12), samples=30, draws=2)
  t2 = _target(_feats(1, STYLE_SHAPES), _pixels(3, 11, 12), samples=30, draws=2)
  np.testing.assert_array_equal(np.asarray(t1['features']), np.asarray(t2['features']))


def test_layer_weights_scale_each_layers_channels(data):
  img, px, _, _, target = data
  key = jax.random.PRNGKey(10)
  twos = {l: 2. for l in img}
  np.testing.assert_allclose(
      float(_loss(img, px, target, key, layer_weights=twos, feature_scale=0.25)),
      float(_loss(img, px, target, key, feature_scale=0.5)), rtol=1e-5)
  traced = _loss(img, px, target, key, layer_weights={'l1': 1., 'l2': 0.5, 'l3': 3.})
  rows, cols = map(np.asarray, strotss.sample_positions(key, 13, 10, N))
  v = np_weights(img, strotss.FEATURE_SCALE, {'l1': 1., 'l2': 0.5, 'l3': 3.})
  x = np_hypercolumns(img, px, rows, cols, True) * v
  y = np.asarray(target['features'], np.float64) * v
  want = np_remd(x, y) + np_moment(x, y) + np_remd(x[:, :3], y[:, :3], True) / 16
  np.testing.assert_allclose(float(traced), want, rtol=1e-5)


def test_bad_options_raise_config_error(data):
  img, px, sty, spx, target = data
  key = jax.random.PRNGKey(0)
  with pytest.raises(ConfigError, match='samples'):
    strotss.strotss_loss(img, px, target, key, samples=0)
  with pytest.raises(ConfigError, match='draws'):
    strotss.strotss_target(sty, spx, 10, draws=0)
  with pytest.raises(ConfigError, match='same layers'):
    strotss.strotss_loss({'l1': img['l1']}, px, target, key, samples=8)
  with pytest.raises(ConfigError, match='at least one layer'):
    strotss.strotss_target({}, spx, 10)
  with pytest.raises(ConfigError, match='larger than its image'):
    strotss.strotss_loss(img, px[:6, :5], target, key, samples=8)
  with pytest.raises(ConfigError, match='RGB'):
    strotss.strotss_loss(img, px[..., :1], target, key, samples=8)
  with pytest.raises(ConfigError, match='same sizes'):
    strotss.self_similarity_loss(img, {'l1': img['l1']}, key, samples=8)
  with pytest.raises(ConfigError, match='or neither'):
    strotss.self_similarity_loss(img, img, key, samples=8, pixels=px)
  with pytest.raises(ConfigError, match='samples'):
    strotss.self_similarity_loss(img, img, key, samples=0)
