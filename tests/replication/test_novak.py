"""Novak & Nikulin (2016) terms against hand computations: shifted Grams, the correlation chain,
geometric layer weights, and the objective wiring of all three."""

import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.losses import objective as objective_lib
from nst_jax.optimize import problem
from nst_jax.losses import gram as gram_lib
from nst_jax.losses import terms as terms_lib
from nst_jax.losses import objective
from nst_jax.models import vgg
from nst_jax.errors import ConfigError


from nst_jax.config.schema import load_preset


def _f(seed, shape):
  return np.random.default_rng(seed).uniform(0, 3, size=shape).astype(np.float32)


def test_shifted_gram_hand_computed_and_from_unshifted_stats():
  f = _f(0, (1, 3, 4, 5))
  m = f.reshape(12, 5).astype(np.float64) - 1.
  np.testing.assert_allclose(gram_lib.gram(f, shift=-1.)[0], m.T @ m / 12, rtol=1e-5)
  # Targets are stored unshifted; shift_gram recovers the shifted Gram exactly (also guided).
  mask = _f(1, (1, 3, 4)) / 3.
  for msk in (None, mask):
    want = gram_lib.gram(f, msk, -1.)
    got = gram_lib.shift_gram(gram_lib.gram(f, msk), gram_lib.feature_mean(f, msk), -1.)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cross_gram_pools_finer_layer_hand_computed():
  f1, f2 = _f(2, (1, 4, 6, 2)), _f(3, (1, 2, 3, 3))
  pooled = f1[0].reshape(2, 2, 3, 2, 2).mean(axis=(1, 3)).reshape(6, 2).astype(np.float64)
  b = f2[0].reshape(6, 3).astype(np.float64)
  np.testing.assert_allclose(gram_lib.cross_gram(f1, f2)[0], pooled.T @ b / 6, rtol=1e-5,
                             atol=1e-6)
  shifted = (pooled - 1).T @ (b - 1) / 6
  np.testing.assert_allclose(gram_lib.cross_gram(f1, f2, shift=-1.)[0], shifted, rtol=1e-5,
                             atol=1e-6)
  mu1 = gram_lib.feature_mean(terms_lib.pool_to(jnp.asarray(f1), (2, 3)))
  got = gram_lib.shift_gram(gram_lib.cross_gram(f1, f2), mu1, -1., gram_lib.feature_mean(f2))
  np.testing.assert_allclose(got[0], shifted, rtol=1e-5, atol=1e-6)
  # Gatys normalisation with N^2 -> C1 C2: |G - A|^2 / (4 C1 C2).
  target = np.zeros((2, 3), np.float32)
  want = np.sum((pooled.T @ b / 6) ** 2) / (4 * 2 * 3)
  np.testing.assert_allclose(gram_lib.chain_style_loss(f1, f2, target)[0], want, rtol=1e-5)


def test_geometric_layer_weights():
  layers = ('conv1_1', 'conv1_2', 'conv2_1')
  np.testing.assert_allclose(objective.geometric_layer_weights(layers), np.array([4, 2, 1]) / 7)
  np.testing.assert_allclose(objective.geometric_layer_weights(layers, rising=True),
                             np.array([1, 2, 4]) / 7)
  np.testing.assert_allclose(objective.geometric_layer_weights(('conv5_4', 'conv1_1'), 3.),
                             np.array([3. ** -15, 1.]) / (1 + 3. ** -15))


def test_objective_chain_and_shift_match_hand_computation(params, content_small, style_small):
  layers = ('block1_conv1', 'block1_conv2', 'block2_conv1')
  spec = objective.Spec(('block2_conv1',), layers, 'avg', chain=True)
  targets = objective.compute_targets(params, spec, content_small, [style_small])
  assert set(targets.chain) == {'block1_conv1', 'block1_conv2'} and not targets.style
  w = objective.make_weights(spec, 0., 1., 0., style_layer_weights=[0.5, 0.25, 99.],
                             gram_shift=-1.)
  z = jnp.asarray(content_small, jnp.float32)
  got = objective.loss_terms(z, params, targets, w, spec)['style']
  fz = vgg.features(params, z[None], layers, 'avg')
  fs = vgg.features(params, jnp.asarray(style_small, jnp.float32)[None], layers, 'avg')
  want = 0.
  for wi, (a, b) in zip([0.5, 0.25], zip(layers[:-1], layers[1:])):
    g = gram_lib.cross_gram(fz[a], fz[b], shift=-1.)
    t = gram_lib.cross_gram(fs[a], fs[b], shift=-1.)
    c1, c2 = fz[a].shape[-1], fz[b].shape[-1]
    want += wi * float(np.sum((np.asarray(g) - np.asarray(t)) ** 2)) / (4 * c1 * c2)
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_plain_gram_shift_in_objective(params, content_small, style_small):
  spec = objective.Spec((), ('block1_conv2',))
  targets = objective.compute_targets(params, spec, None, [style_small])
  w = objective.make_weights(spec, 0., 1., 0., gram_shift=-1.)
  z = jnp.asarray(content_small, jnp.float32)
  got = objective.loss_terms(z, params, targets, w, spec)['style']
  fz = vgg.features(params, z[None], ('block1_conv2',))['block1_conv2']
  fs = vgg.features(params, jnp.asarray(style_small, jnp.float32)[None],
                    ('block1_conv2',))['block1_conv2']
  want = gram_lib.style_loss(fz, gram_lib.gram(fs, shift=-1.)[0], shift=-1.)[0]
  np.testing.assert_allclose(float(got), float(want), rtol=1e-4)


def test_novak_preset_spec_and_weights(params):
  c = load_preset('novak2016')
  spec = objective_lib.make_spec(c)
  assert spec.chain and spec.content_layers == spec.style_layers == vgg.CONV_LAYERS
  c.size, c.num_steps = 16, 0
  content = np.full((16, 16, 3), 128, np.uint8)
  w = problem.build_problem(c, params, content, [content]).weights
  assert float(w.gram_shift) == -1.
  np.testing.assert_allclose(w.style_layers, 2. ** -np.arange(16) / np.sum(2. ** -np.arange(16)),
                             rtol=1e-6)
  assert np.all(np.diff(np.asarray(w.content_layers)) > 0)
  c.style_layers = 'conv1_1'
  with pytest.raises(ConfigError, match='two style layers'):
    objective_lib.make_spec(c)
