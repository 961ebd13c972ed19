"""VGG19 port: activations against an independent PyTorch VGG19, layer names, pooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.models import vgg
from nst_jax.errors import ConfigError
from conftest import REFERENCE


def test_matches_independent_reference_at_every_layer(params):
  ref = np.load(REFERENCE)
  image = ref['image_rgb_uint8'].astype(np.float32)
  out = vgg.extract(params, image[None], vgg.LAYERS, pooling='max')
  for layer in vgg.LAYERS:
    got, want = np.asarray(out[layer][0]), ref[layer]
    assert got.shape == want.shape, layer
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < 1e-5, f'{layer}: relative L2 error {rel:.2e}'


@pytest.mark.parametrize('alias, canonical', [
    ('block4_conv2', 'block4_conv2'), ('conv4_2', 'block4_conv2'), ('relu4_2', 'block4_conv2'),
    ('conv_10', 'block4_conv2'), ('relu_1', 'block1_conv1'), ('conv_16', 'block5_conv4'),
    ('pool3', 'block3_pool'), ('pool_5', 'block5_pool'), (' CONV1_1 ', 'block1_conv1')])
def test_layer_aliases(alias, canonical):
  assert vgg.canonical_layer(alias) == canonical


@pytest.mark.parametrize('bad', ['conv6_1', 'conv_17', 'relu0_1', 'fc7', ''])
def test_unknown_layer_lists_valid_names(bad):
  with pytest.raises(ConfigError, match='valid names are block1_conv1'):
    vgg.canonical_layer(bad)


def test_extract_keys_are_names_as_given_and_alias_spellings_agree(params, content_small):
  out = vgg.extract(params, content_small.astype(np.float32), ['conv3_1', 'block3_conv1',
                                                              'relu_5'])
  assert set(out) == {'conv3_1', 'block3_conv1', 'relu_5'}
  np.testing.assert_array_equal(out['conv3_1'], out['relu_5'])
  h, w = content_small.shape[:2]
  assert out['conv3_1'].shape == (h // 4, w // 4, 256)


def test_stops_at_deepest_requested_layer(params, content_small):
  # Only block1 params given: asking for block1 layers must not touch deeper layers.
  block1 = {k: v for k, v in params.items() if k.startswith('block1')}
  out = vgg.extract(block1, content_small[None].astype(np.float32), 'block1_conv2')
  assert out['block1_conv2'].shape[-1] == 64


def test_preprocessing_happens_inside(params):
  # A mid-grey RGB image: the first conv sees BGR minus the mean pixel.
  image = np.full((1, 8, 8, 3), 120., np.float32)
  image[..., 0] = 200.  # red
  x = np.asarray(vgg.preprocess(jnp.asarray(image)))
  np.testing.assert_allclose(x[0, 0, 0], [120 - 103.939, 120 - 116.779, 200 - 123.68], rtol=1e-6)


def test_average_and_max_pooling(params):
  x = jnp.arange(2 * 5 * 4 * 1, dtype=jnp.float32).reshape(2, 5, 4, 1)
  mx = np.asarray(vgg.pool2x2(x, 'max'))
  av = np.asarray(vgg.pool2x2(x, 'avg'))
  xn = np.asarray(x)[:, :4]  # the odd last row is dropped ('VALID')
  blocks = xn.reshape(2, 2, 2, 2, 2, 1)
  np.testing.assert_allclose(mx, blocks.max(axis=(2, 4)))
  np.testing.assert_allclose(av, blocks.mean(axis=(2, 4)))
  with pytest.raises(ConfigError):
    vgg.pool2x2(x, 'median')
  # Max pooling's gradient (a reshaped maximum) equals reduce_window's (no ties), odd sizes too.
  from jax import lax
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 7, 9, 3)), jnp.float32)
  ct = jnp.asarray(rng.normal(size=(2, 3, 4, 3)), jnp.float32)
  ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')
  np.testing.assert_array_equal(vgg.pool2x2(x, 'max'), ref(x))
  np.testing.assert_array_equal(jax.vjp(lambda x: vgg.pool2x2(x, 'max'), x)[1](ct)[0],
                                jax.vjp(ref, x)[1](ct)[0])


def test_avg_pooling_changes_deep_features_only_after_first_pool(params, content_small):
  img = content_small[None].astype(np.float32)
  a = vgg.extract(params, img, ['conv1_2', 'conv2_1'], pooling='avg')
  m = vgg.extract(params, img, ['conv1_2', 'conv2_1'], pooling='max')
  np.testing.assert_array_equal(a['conv1_2'], m['conv1_2'])
  assert not np.allclose(a['conv2_1'], m['conv2_1'])


def test_bad_arguments(params):
  with pytest.raises(ConfigError, match='pooling'):
    vgg.extract(params, np.zeros((1, 8, 8, 3)), 'conv1_1', pooling='min')
  with pytest.raises(ConfigError, match='RGB'):
    vgg.extract(params, np.zeros((1, 8, 8, 4)), 'conv1_1')


# winograd4 compiles for ~50 s: out of CI (-m slow); winograd2 shares its code path.
@pytest.mark.parametrize('impl', ['winograd2', pytest.param('winograd4', marks=pytest.mark.slow)])
def test_winograd_network_matches_direct(params, impl):
  ref = np.load(REFERENCE)
  image = ref['image_rgb_uint8'].astype(np.float32)[None]
  layers = ['conv2_1', 'conv3_2', 'conv4_2', 'conv5_1']
  got = vgg.extract(params, image, layers, conv_impl=impl)
  for layer in layers:
    want = ref[vgg.canonical_layer(layer)]
    rel = np.linalg.norm(np.asarray(got[layer][0]) - want) / np.linalg.norm(want)
    assert rel < 2e-5, f'{impl} {layer}: relative L2 error {rel:.2e}'


def test_layer_conv_impl_policy():
  assert vgg.layer_conv_impl('block1_conv2', 'winograd2') == 'direct'
  assert vgg.layer_conv_impl('block3_conv1', 'winograd4') == 'winograd4'
  assert vgg.layer_conv_impl('block5_conv1', 'winograd4') == 'winograd2'
  assert vgg.layer_conv_impl('block5_conv1', 'direct') == 'direct'
  want = 'winograd2' if jax.default_backend() == 'cpu' else 'direct'
  assert vgg.layer_conv_impl('block3_conv1', 'auto') == want
  assert vgg.layer_conv_impl('block1_conv2', 'auto') == 'direct'


def test_direct_conv_custom_gradient_equals_autodiff():
  from jax import lax
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 7, 6, 5)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 5, 4)), jnp.float32)
  ref = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                              dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  ct = jnp.asarray(rng.normal(size=(2, 7, 6, 4)), jnp.float32)
  want = jax.vjp(ref, x, k)[1](ct)
  got = jax.vjp(lambda x, k: vgg.conv3x3(x, k, 'direct'), x, k)[1](ct)
  np.testing.assert_allclose(vgg.conv3x3(x, k), ref(x, k), rtol=1e-6, atol=1e-5)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def test_avg_pooling_gradient_equals_reduce_window():
  from jax import lax
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 7, 9, 3)), jnp.float32)
  ct = jnp.asarray(rng.normal(size=(2, 3, 4, 3)), jnp.float32)
  ref = lambda x: lax.reduce_window(x, 0., lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') * 0.25
  np.testing.assert_allclose(vgg.pool2x2(x, 'avg'), ref(x), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(jax.vjp(lambda x: vgg.pool2x2(x, 'avg'), x)[1](ct)[0],
                                jax.vjp(ref, x)[1](ct)[0])


@pytest.mark.parametrize('impl', ['direct', 'winograd2', 'winograd4'])
def test_bfloat16_convolutions_round_the_operands_only(impl):
  from jax import lax
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(1, 9, 10, 16)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 16, 8)) / 12, jnp.float32)
  ct = jnp.asarray(rng.normal(size=(1, 9, 10, 8)), jnp.float32)
  ref = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                              dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                              precision=lax.Precision.HIGHEST)
  rel = lambda a, b: float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
  y, vjp = jax.vjp(lambda x: vgg.conv3x3(x, k, impl, 'bfloat16'), x)
  assert y.dtype == jnp.float32
  if impl == 'winograd4':  # F(4x4,3x3) would amplify the rounding ~6x: F(2x2,3x3) runs instead.
    np.testing.assert_array_equal(y, vgg.conv3x3(x, k, 'winograd2', 'bfloat16'))
  # bfloat16 keeps 8 significant bits: visibly rounded (the option is not ignored), not more.
  assert 3e-4 < rel(y, ref(x, k)) < 1e-2
  assert 3e-4 < rel(vjp(ct)[0], jax.vjp(lambda x: ref(x, k), x)[1](ct)[0]) < 1e-2
  if impl == 'direct':  # Exactly the float32 convolution of the rounded operands.
    r = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
    np.testing.assert_allclose(y, ref(r(x), r(k)), rtol=1e-5, atol=1e-5)
  with pytest.raises(ConfigError, match='conv_dtype'):
    vgg.conv3x3(x, k, impl, 'float16')


def test_bfloat16_network_stays_close_to_the_reference(params):
  ref = np.load(REFERENCE)
  image = jnp.asarray(ref['image_rgb_uint8'].astype(np.float32)[None])
  layers = ('block1_conv1', 'block3_conv2', 'block5_conv1')
  got = jax.jit(lambda p, x: vgg.features(p, x, layers, 'max', 'winograd2',
                                          conv_dtype='bfloat16'))(params, image)
  for layer in layers:
    want = ref[layer]
    rel = np.linalg.norm(np.asarray(got[layer][0]) - want) / np.linalg.norm(want)
    assert 1e-4 < rel < 3e-2, f'{layer}: relative L2 error {rel:.2e}'
