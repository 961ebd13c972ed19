"""Loss terms against hand computations and each source's own formula; gradients against
finite differences through the real network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.losses import gram as gram_lib
from nst_jax.losses import terms as terms_lib
from nst_jax.losses import objective
from nst_jax.models import vgg
from nst_jax.errors import ConfigError


def test_gram_hand_computed():
  # 2x2 positions, 2 channels: F (M=4, C=2) = [[1,2],[3,4],[5,6],[7,8]].
  f = np.arange(1., 9.).reshape(1, 2, 2, 2)
  want = np.array([[1 + 9 + 25 + 49, 2 + 12 + 30 + 56],
                   [2 + 12 + 30 + 56, 4 + 16 + 36 + 64]]) / 4.
  np.testing.assert_allclose(gram_lib.gram(jnp.asarray(f, jnp.float32))[0], want, rtol=1e-6)


def test_gram_batched_matches_numpy():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(3, 5, 7, 4)).astype(np.float32)
  m = f.reshape(3, 35, 4)
  want = np.einsum('bmc,bmd->bcd', m, m) / 35.
  np.testing.assert_allclose(gram_lib.gram(f), want, rtol=1e-5, atol=1e-6)


def test_gram_gradient_matches_autodiff_of_the_plain_product():
  """gram's own VJP (one (M, C) product, memory-lean) against autodiff of (F+s)^T (F+s) / M, in
  float32 with batch dims, shift 0 and a traced shift of -1."""
  rng = np.random.default_rng(1)
  f = jnp.asarray(rng.uniform(0, 3, size=(2, 5, 6, 4)), jnp.float32)
  t = jnp.asarray(rng.normal(size=(2, 4, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(2, 4, 4)), jnp.float32)

  def plain(f, s):
    x = (f + s).reshape(2, 30, 4)
    return jnp.sum(w * (jnp.einsum('bmc,bmd->bcd', x, x) / 30. - t) ** 2)

  for shift in (0., jnp.float32(-1.)):
    ours = jax.grad(lambda f, s=shift: jnp.sum(w * (gram_lib.gram(f, shift=s) - t) ** 2))(f)
    np.testing.assert_allclose(ours, jax.grad(plain)(f, shift), rtol=2e-5, atol=1e-5)


def _features(seed, shape=(1, 6, 8, 5)):
  return np.random.default_rng(seed).uniform(0, 3, size=shape).astype(np.float32)


def test_style_loss_reproduces_each_sources_formula():
  f, s = _features(1), _features(2)
  h, w, c = f.shape[1:]
  m = h * w
  fm, sm = f.reshape(m, c).astype(np.float64), s.reshape(m, c).astype(np.float64)
  graw, araw = fm.T @ fm, sm.T @ sm
  target = gram_lib.gram(s)[0]
  # Gatys et al. 2015, eq. 4: E_l = 1/(4 N^2 M^2) sum (G - A)^2.
  gatys = np.sum((graw - araw) ** 2) / (4 * c ** 2 * m ** 2)
  np.testing.assert_allclose(gram_lib.style_loss(f, target, 'gatys')[0], gatys, rtol=1e-5)
  # Keras example: sum (S - C)^2 / (4 * 3^2 * (img_nrows * img_ncols)^2), raw Grams.
  img_positions = 4 * m
  keras = np.sum((graw - araw) ** 2) / (4. * 9. * img_positions ** 2)
  np.testing.assert_allclose(gram_lib.style_loss(f, target, 'keras', img_positions)[0], keras,
                             rtol=1e-5)
  # TF tutorial: gram = einsum / num_locations; loss = mean((G - A)^2).
  tf = np.mean((graw / m - araw / m) ** 2)
  np.testing.assert_allclose(gram_lib.style_loss(f, target, 'tf_tutorial')[0], tf, rtol=1e-5)


def test_content_loss_each_norm():
  f, p = _features(3), _features(4)
  sq = np.sum((f.astype(np.float64) - p) ** 2)
  np.testing.assert_allclose(terms_lib.content_loss(f, p, 'gatys')[0], 0.5 * sq, rtol=1e-5)
  np.testing.assert_allclose(terms_lib.content_loss(f, p, 'keras')[0], sq, rtol=1e-5)
  np.testing.assert_allclose(terms_lib.content_loss(f, p, 'tf_tutorial')[0], sq / f.size, rtol=1e-5)
  with pytest.raises(ConfigError):
    terms_lib.content_loss(f, p, 'mse')


def test_tv_each_type():
  x = np.random.default_rng(5).uniform(0, 255, size=(1, 4, 5, 3)).astype(np.float64)
  dy = x[:, 1:] - x[:, :-1]
  dx = x[:, :, 1:] - x[:, :, :-1]
  l2 = np.sum(dy ** 2) + np.sum(dx ** 2)
  l1 = np.sum(np.abs(dy)) + np.sum(np.abs(dx))
  # Keras: a = (x[:H-1,:W-1] - x[1:,:W-1])^2, b = (x[:H-1,:W-1] - x[:H-1,1:])^2, sum (a+b)^1.25.
  a = (x[:, :-1, :-1] - x[:, 1:, :-1]) ** 2
  b = (x[:, :-1, :-1] - x[:, :-1, 1:]) ** 2
  keras = np.sum((a + b) ** 1.25)
  xf = jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(terms_lib.tv_loss(xf, 'l2')[0], l2, rtol=1e-5)
  np.testing.assert_allclose(terms_lib.tv_loss(xf, 'l1')[0], l1, rtol=1e-5)
  np.testing.assert_allclose(terms_lib.tv_loss(xf, 'keras')[0], keras, rtol=1e-5)
  assert float(terms_lib.tv_loss(jnp.ones((1, 4, 4, 3)), 'l2')[0]) == 0.
  # Finite gradient at a constant image (where (a+b)^1.25 has a kink).
  g = jax.grad(lambda z: terms_lib.tv_loss(z, 'keras').sum())(jnp.ones((1, 4, 4, 3)))
  assert np.all(np.isfinite(g))


def test_gradient_matches_finite_differences(params):
  """Directional derivatives of the full objective (VGG + all three terms) in float64."""
  rng = np.random.default_rng(0)
  content = rng.uniform(0, 255, (16, 16, 3))
  style = rng.uniform(0, 255, (16, 16, 3))
  spec = objective.Spec(('block2_conv1',), ('block1_conv1', 'block2_conv1'), 'avg', tv_type='l2')
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    targets = objective.compute_targets(p64, spec, jnp.asarray(content), [jnp.asarray(style)])
    weights = objective.make_weights(spec, 1., 1e2, 1e-1)
    # Jitted: two small programs instead of compiling every float64 op one by one.
    f = jax.jit(lambda z: objective.objective(z, p64, targets, weights, spec))
    z = jnp.asarray(rng.uniform(20, 230, (16, 16, 3)))
    g = jax.jit(jax.grad(f))(z)
    for seed in range(3):
      v = jnp.asarray(np.random.default_rng(seed + 10).normal(size=z.shape))
      eps = 1e-3
      fd = (f(z + eps * v) - f(z - eps * v)) / (2 * eps)
      np.testing.assert_allclose(float(jnp.vdot(g, v)), float(fd), rtol=1e-6)


def test_loss_terms_use_layer_weights(params, content_small, style_small):
  spec = objective.Spec(('block4_conv2',), ('block1_conv1', 'block3_conv1'))
  targets = objective.compute_targets(params, spec, content_small, [style_small])
  z = jnp.asarray(content_small, jnp.float32) * 0.5 + 60.
  only_first = objective.loss_terms(z, params, targets, objective.make_weights(
      spec, 1., 1., 0., style_layer_weights=[1., 0.]), spec)
  both = objective.loss_terms(z, params, targets, objective.make_weights(
      spec, 1., 1., 0., style_layer_weights=[1., 1.]), spec)
  feats = vgg.features(params, z[None], ('block1_conv1',))
  direct = gram_lib.style_loss(feats['block1_conv1'], targets.style['block1_conv1'])[0]
  np.testing.assert_allclose(only_first['style'], direct, rtol=1e-5)
  assert float(both['style']) > float(only_first['style'])
  np.testing.assert_allclose(both['total'], both['content'] + both['style'] + both['tv'], rtol=1e-6)


def test_blended_style_targets(params, content_small, style_small):
  spec = objective.Spec((), ('block2_conv1',))
  other = content_small
  t = objective.compute_targets(params, spec, None, [style_small, other], [3., 1.])
  a = objective.compute_targets(params, spec, None, [style_small]).style['block2_conv1']
  b = objective.compute_targets(params, spec, None, [other]).style['block2_conv1']
  np.testing.assert_allclose(t.style['block2_conv1'], 0.75 * a + 0.25 * b, rtol=1e-5)
