"""The transformer network: the multistyle26 port against onnxruntime's reference outputs,
instance / conditional normalisation against numpy, fast (reformulated) == direct convolutions,
odd sizes, the Flax module and the model directory format."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import SHARED, random_transformer_params

from nst_jax.models import model_dir as model_io
from nst_jax.models import convolution
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.errors import ConfigError, NSTError

REFERENCE = SHARED / 'weights' / 'magenta' / 'reference_outputs.npz'


@pytest.fixture(scope='session')
def builtin(tmp_path_factory):
  pytest.importorskip('onnx')
  return model_io.load_builtin('multistyle26', cache_dir=tmp_path_factory.mktemp('onnx_cache'))


@pytest.fixture(scope='session')
def forward():
  """One jitted forward per (config, impl), reused across tests."""
  cache = {}
  def get(config, impl='fast'):
    key = (config, impl)
    if key not in cache:
      cache[key] = jax.jit(lambda p, x, w: networks.apply_params(config, p, x, w, impl == 'fast'))
    return cache[key]
  return get


@pytest.mark.parametrize('key', ['style7', 'blend_3_12'])
def test_multistyle26_matches_reference(builtin, forward, key):
  z = np.load(REFERENCE)
  x = z['multistyle_content_240x320_nchw'].transpose(0, 2, 3, 1)
  ref = z[f'multistyle_stylized_{key}_float'].transpose(0, 2, 3, 1)
  y = np.asarray(forward(builtin.config)(builtin.params, x, z[f'multistyle_weights_{key}']))
  assert y.shape == ref.shape
  assert np.abs(y - ref).max() < 1e-3
  assert np.abs(y - ref).mean() < 1e-5


def test_multistyle26_preset_matches_the_onnx_graph(builtin):
  c = builtin.config
  assert c.num_styles == 26 and c.down_widths == (32, 32, 32) and c.up_widths == (8, 4)
  assert c.residual_blocks == 6 and c.norm_last and not c.use_bias
  assert sum(a.size for p in builtin.params.values() for a in p.values()) == pytest.approx(
      166e3, rel=0.05)


def test_instance_norm_by_hand():
  rng = np.random.default_rng(1)
  x = rng.normal(2., 3., size=(2, 5, 7, 4)).astype(np.float32)
  gamma, beta = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4))
  got = np.asarray(networks.instance_norm(x, gamma, beta.astype(np.float32), 1e-5))
  for b in range(2):
    for c in range(4):
      v = x[b, :, :, c].astype(np.float64)
      want = (v - v.mean()) / np.sqrt(v.var() + 1e-5) * gamma[b, c] + beta[b, c]
      np.testing.assert_allclose(got[b, :, :, c], want, rtol=1e-4, atol=1e-5)


def test_conditional_norm_mixing_by_hand(forward):
  """Mixing rows of the gamma/beta tables == a network whose tables are the mixed rows; per-image
  weights in a batch. The mixed network runs the fast (reformulated) convolutions, the reference
  the direct ones, on an odd size: this also checks fast == direct end to end."""
  config = networks.NetworkConfig(down_widths=(4, 8, 8), residual_blocks=1, up_widths=(8, 4),
                                  in_kernel=9, out_kernel=9, num_styles=3, use_bias=True,
                                  output_activation='tanh', norm_last=True)
  single = networks.NetworkConfig(**dict(config.to_dict(), num_styles=1))
  params = random_transformer_params(config, 2)
  w = np.array([0.2, 0.0, 0.8], np.float32)
  x = np.random.default_rng(3).random((1, 17, 21, 3)).astype(np.float32)
  got = np.asarray(forward(config, 'fast')(params, np.concatenate([x, x]),
                                           np.stack([w, np.eye(3, dtype=np.float32)[1]])))
  assert got.shape == (2, 17, 21, 3)
  for i, weights in enumerate([w, np.eye(3)[1]]):
    rows = {l: {n: (weights @ a)[None].astype(np.float32) if n in ('gamma', 'beta') else a
                for n, a in p.items()} for l, p in params.items()}
    want = forward(single, 'direct')(rows, x, np.ones(1, np.float32))
    np.testing.assert_allclose(got[i], want[0], atol=2e-5)


def test_odd_size_matches_onnxruntime_crop(builtin, forward):
  ort = pytest.importorskip('onnxruntime')
  sess = ort.InferenceSession(str(SHARED / 'weights' / 'magenta' / 'multistyle26.onnx'),
                              providers=['CPUExecutionProvider'])
  x = np.random.default_rng(6).random((1, 37, 53, 3)).astype(np.float32)
  w = np.zeros(26, np.float32)
  w[[5, 20]] = 0.3, 0.7
  ref = sess.run(None, {'image': x.transpose(0, 3, 1, 2), 'style_weights': w})[0]
  assert ref.shape[2:] == (40, 56)  # the ONNX graph rounds up to a multiple of 4...
  y = np.asarray(forward(builtin.config)(builtin.params, x, w))
  assert y.shape == x.shape  # ...we crop back to the input size
  assert np.abs(y - ref.transpose(0, 2, 3, 1)[:, :37, :53]).max() < 1e-4


def test_reformulated_kernels_by_hand():
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.random((1, 11, 14, 3)).astype(np.float32))
  k9, k3 = (jnp.asarray(rng.normal(size=(k, k, 3, 5)).astype(np.float32)) for k in (9, 3))

  @jax.jit
  def pairs(x, k9, k3):
    out = []
    for k in (k9, k3):
      want = networks.conv(x, k)
      out.append((networks.conv_s2d(x, k, want.shape[1:3]), want))
    out.append((networks.conv_stride2(x, k3, True), networks.conv_stride2(x, k3, False)))
    out.append((networks.upsample_conv(x, k3, True), networks.upsample_conv(x, k3, False)))
    return out

  for got, want in pairs(x, k9, k3):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_winograd_tile_by_layer_size(monkeypatch):
  """``conv(..., winograd=True)`` equals XLA's conv whichever form runs: F(2x2,3x3) up to
  WINOGRAD_MAX_FLOATS (16 products), WINOGRAD_LARGE_TILE above it (F(4x4,3x3): 36; None: XLA's
  conv, no products in the program)."""
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.random((1, 12, 15, 6)).astype(np.float32))
  k = jnp.asarray(rng.normal(size=(3, 3, 6, 5)).astype(np.float32))
  want = networks.conv(x, k)
  for limit, large, dots in ((10 ** 9, 4, 17), (0, 4, 37), (0, None, 0)):  # + kernel transform
    monkeypatch.setattr(networks, 'WINOGRAD_MAX_FLOATS', limit)
    monkeypatch.setattr(networks, 'WINOGRAD_LARGE_TILE', large)
    monkeypatch.setattr(networks, 'WINOGRAD_MIN_POSITIONS', 1)
    f = jax.jit(lambda x, k: networks.conv(x, k, 1, None, True))
    np.testing.assert_allclose(f(x, k), want, rtol=1e-4, atol=1e-4)
    assert str(f.lower(x, k).as_text()).count('dot_general') == dots
  monkeypatch.setattr(networks, 'WINOGRAD_MIN_POSITIONS', 10 ** 9)  # too few positions: XLA's
  f = jax.jit(lambda x, k: networks.conv(x, k, 1, None, True))
  assert 'dot_general' not in str(f.lower(x, k).as_text())


@pytest.mark.parametrize('k,stride,hw', [(9, 1, (13, 11)), (3, 2, (12, 9)), (3, 2, (11, 10))])
def test_conv_gradients_equal_jax_rule(k, stride, hw):
  """conv_valid's hand-written gradients (scan-friendly on XLA:CPU) equal JAX's own rule, for
  odd sizes and strides that skip the last row or column."""
  rng = np.random.default_rng(k + stride)
  x = jnp.asarray(rng.normal(size=(2,) + hw + (3,)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 3, 4)), jnp.float32)
  plain = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), 'VALID',
                                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y, vjp = jax.vjp(plain, x, w)
  y2, vjp2 = jax.vjp(lambda x, w: convolution.conv_valid(x, w, stride), x, w)
  g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  np.testing.assert_array_equal(y2, y)
  for a, b in zip(vjp2(g), vjp(g)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_flax_module_and_johnson_preset():
  c = networks.johnson2016()
  variables = network_params.init_params(c, seed=0)
  n = sum(a.size for a in jax.tree.leaves(variables))
  shapes = jax.eval_shape(networks.Transformer(c).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 16, 16, 3)))
  assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(lambda a: a.shape, variables)
  assert n == pytest.approx(1.68e6, rel=0.02)  # Johnson et al.'s ~1.68M parameters
  y = jax.eval_shape(networks.Transformer(c).apply, variables, jnp.zeros((1, 12, 13, 3)))
  assert y.shape == (1, 12, 13, 3)
  with pytest.raises(ConfigError):
    jax.eval_shape(networks.Transformer(c).apply, variables, jnp.zeros((1, 4, 13, 3)))
  with pytest.raises(ConfigError):
    networks.NetworkConfig(output_activation='relu')


def test_save_and_load_model(tmp_path):
  c = networks.NetworkConfig(down_widths=(4, 8), residual_blocks=1, up_widths=(4,), in_kernel=3,
                             out_kernel=3, num_styles=2)
  variables = network_params.init_params(c, seed=1)
  d = model_io.save_model(tmp_path / 'm', c, variables, styles=['a', 'b'], info={'steps': 3})
  m = model_io.load_model(d)
  assert m.config == c and m.styles == ['a', 'b'] and m.info == {'steps': 3}
  x = np.random.default_rng(8).random((1, 16, 16, 3)).astype(np.float32)
  w = np.array([1., 0.], np.float32)
  apply = jax.jit(networks.Transformer(c).apply)
  np.testing.assert_array_equal(apply(network_params.flax_from_nested(m.params), x, w),
                                apply(variables, x, w))
  with np.load(d / 'model.npz', allow_pickle=False) as z:
    assert 'contract_0/kernel' in z.files
  assert json.loads((d / 'model.json').read_text())['format'] == 'nst_jax.transformer'
  assert not [p for p in d.iterdir() if p.name.startswith('.')]


def test_bad_models(tmp_path):
  c = networks.NetworkConfig(down_widths=(4, 8), residual_blocks=0, up_widths=(4,), in_kernel=3,
                             out_kernel=3)
  good = model_io.save_model(tmp_path / 'good', c, network_params.init_params(c))
  cases = {'missing': tmp_path / 'nope', 'file': tmp_path / 'f.txt', 'empty': tmp_path / 'empty'}
  cases['file'].write_text('x')
  cases['empty'].mkdir()
  trunc = tmp_path / 'trunc'
  trunc.mkdir()
  (trunc / 'model.json').write_bytes((good / 'model.json').read_bytes())
  (trunc / 'model.npz').write_bytes((good / 'model.npz').read_bytes()[:300])
  cases['truncated'] = trunc
  badjson = tmp_path / 'badjson'
  badjson.mkdir()
  (badjson / 'model.json').write_text('{"format": ')
  (badjson / 'model.npz').write_bytes((good / 'model.npz').read_bytes())
  cases['badjson'] = badjson
  for name, path in cases.items():
    with pytest.raises(NSTError) as e:
      model_io.load_model(path)
    assert '\n' not in str(e.value) and str(path) in str(e.value), (name, e.value)
