"""The native fused convolution (``convolution.fused_conv``) against a NumPy transcription of
its definition, its gradient against XLA's, vmap, bad operands, the fallback where the kernel is
off; and the transformer on it against the plain convolutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.models import convolution
from nst_jax.models import transformer as networks
from nst_jax.runtime import native

from conftest import random_transformer_params

pytestmark = pytest.mark.skipif(not convolution.fused_conv_available(),
                                reason='the native convolution is off here')


def numpy_fused(x, k, scale, shift, stride, pad, edge, pre, skip):
  """The definition, written out: z = pre(x) (+ skip), padded, every output position the sum
  over the kernel's taps and input channels; stats the per-channel mean and variance."""
  z = x.astype(np.float64)
  if pre != 'none':
    z = z * scale[:, None, None] + shift[:, None, None]
    if pre == 'affine_relu':
      z = np.maximum(z, 0.)
  if skip is not None:
    z = z + skip
  zp = np.pad(z, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge' if edge else 'reflect')
  kh, kw, _, co = k.shape
  oh, ow = (zp.shape[1] - kh) // stride + 1, (zp.shape[2] - kw) // stride + 1
  y = np.zeros((x.shape[0], oh, ow, co))
  for u in range(kh):
    for v in range(kw):
      win = zp[:, u:u + stride * (oh - 1) + 1:stride, v:v + stride * (ow - 1) + 1:stride]
      y += win @ k[u, v].astype(np.float64)
  stats = np.stack([y.mean((1, 2)), y.var((1, 2))], axis=1)
  return y, stats, z


CASES = [  # n, h, w, ci, co, k, stride, pad, edge, pre, skip
    (1, 13, 11, 3, 32, 9, 1, 4, False, 'none', False),          # a first layer
    (2, 12, 9, 32, 16, 3, 2, 1, False, 'affine_relu', False),   # stride 2, per-image maps
    (2, 11, 10, 8, 12, 3, 1, 1, True, 'affine', True),          # edge pad; 12 = not 16k
    (1, 9, 12, 16, 3, 5, 1, 0, False, 'none', True),            # no pad; 3 outputs
    (1, 7, 7, 5, 48, 3, 1, 1, False, 'affine_relu', False),     # three output vectors
    (1, 40, 36, 32, 32, 3, 1, 1, False, 'affine_relu', True),   # large enough for threads
]


@pytest.mark.parametrize('case', CASES, ids=[f'k{c[5]}s{c[6]}-{c[9]}' for c in CASES])
def test_against_the_numpy_definition(case):
  n, h, w, ci, co, k, stride, pad, edge, pre, with_skip = case
  rng = np.random.default_rng(sum(case[:8]))
  x = rng.normal(size=(n, h, w, ci)).astype(np.float32)
  kern = (rng.normal(size=(k, k, ci, co)) / np.sqrt(k * k * ci)).astype(np.float32)
  scale = rng.normal(size=(n, ci)).astype(np.float32)
  shift = rng.normal(size=(n, ci)).astype(np.float32)
  skip = rng.normal(size=x.shape).astype(np.float32) if with_skip else None
  want = numpy_fused(x, kern, scale, shift, stride, pad, edge, pre, skip)
  got = convolution.fused_conv(x, kern, stride, pad, edge, scale, shift, pre, skip,
                               keep_input=True)
  for g, wnt, name in zip(got, want, ('y', 'stats', 'z')):
    assert g.shape == wnt.shape, name
    np.testing.assert_allclose(g, wnt, rtol=2e-5, atol=2e-5 * np.abs(wnt).max(), err_msg=name)
  y2, st2 = convolution.fused_conv(x, kern, stride, pad, edge, scale, shift, pre, skip)[:2]
  np.testing.assert_array_equal(y2, got[0])  # the same with or without z
  ref = convolution.fused_conv_reference(jnp.asarray(x), kern, scale, shift, stride, pad, edge,
                                         pre, skip)
  np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5 * float(jnp.abs(ref[0]).max()))


def test_gradient_is_the_reference_gradient():
  rng = np.random.default_rng(3)
  x, skip = (jnp.asarray(rng.normal(size=(2, 10, 9, 8)), jnp.float32) for _ in range(2))
  kern = jnp.asarray(rng.normal(size=(3, 3, 8, 16)) / 8, jnp.float32)
  scale, shift = (jnp.asarray(rng.normal(size=(2, 8)), jnp.float32) for _ in range(2))

  def loss(f):
    def g(*a):
      y, st, z = f(*a)
      return jnp.sum(jnp.sin(y)) + jnp.sum(st ** 2) + jnp.sum(jnp.cos(z))
    return g

  native_f = lambda *a: convolution.fused_conv(a[0], a[1], 2, 1, False, a[2], a[3],
                                               'affine_relu', a[4], keep_input=True)
  ref_f = lambda *a: convolution.fused_conv_reference(*a[:4], 2, 1, False, 'affine_relu', a[4])
  args = (x, kern, scale, shift, skip)
  got = jax.grad(loss(native_f), argnums=tuple(range(5)))(*args)
  want = jax.grad(loss(ref_f), argnums=tuple(range(5)))(*args)
  for g, wnt in zip(got, want):
    np.testing.assert_allclose(g, wnt, rtol=1e-4, atol=1e-4 * float(jnp.abs(wnt).max()))


def test_vmap_and_jit():
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(3, 1, 8, 8, 4)), jnp.float32)
  kern = jnp.asarray(rng.normal(size=(3, 3, 4, 16)), jnp.float32)
  f = jax.jit(jax.vmap(lambda a: convolution.fused_conv(a, kern, 1, 1)[0]))
  want = np.stack([np.asarray(convolution.fused_conv(a, kern, 1, 1)[0]) for a in x])
  np.testing.assert_array_equal(f(x), want)


def test_bad_operands():
  x = jnp.zeros((1, 6, 6, 4))
  kern = jnp.zeros((3, 3, 4, 16))
  with pytest.raises(ValueError, match='pre'):
    convolution.fused_conv(x, kern, pre='gelu')
  with pytest.raises(ValueError, match='kernel'):
    convolution.fused_conv(x, jnp.zeros((3, 3, 5, 16)))
  with pytest.raises(ValueError, match='skip'):
    convolution.fused_conv(x, kern, skip=jnp.zeros((1, 6, 6, 3)))
  with pytest.raises(ValueError, match='padding'):
    convolution.fused_conv(x, kern, pad=6)
  with pytest.raises(ValueError, match='scale and shift'):
    convolution.fused_conv(x, kern, pre='affine')


def test_kernel_off_falls_back_to_xla(monkeypatch):
  monkeypatch.setattr(native, 'conv_targets', lambda: None)
  assert not convolution.fused_conv_available() and not networks.use_native()
  with pytest.raises(ValueError, match='off here'):
    convolution.fused_conv(jnp.zeros((1, 6, 6, 4)), jnp.zeros((3, 3, 4, 16)))


NETWORKS = {
    'multistyle26': networks.multistyle26(),
    'johnson2016': networks.johnson2016(2),
    'no_residual_blocks': networks.NetworkConfig(down_widths=(16, 32), residual_blocks=0,
                                                 up_widths=(16,), num_styles=2, norm_last=True,
                                                 output_activation='linear'),
    'no_upsampling': networks.NetworkConfig(down_widths=(16,), residual_blocks=2, up_widths=(),
                                            norm_last=True, output_activation='tanh'),
}


@pytest.mark.parametrize('name,hw', [('multistyle26', (29, 35)), ('johnson2016', (32, 40)),
                                     ('no_residual_blocks', (29, 35)),
                                     ('no_upsampling', (32, 40)), ('no_upsampling', (29, 35))])
def test_the_network_on_the_native_convolution_equals_the_plain_one(name, hw):
  """Every conv of the network runs natively (no XLA convolution left in the program) and the
  output is the plain convolutions' within a hundredth of a level of 255 (even and odd sizes)."""
  c = NETWORKS[name]
  params = jax.tree.map(jnp.asarray, random_transformer_params(c, len(name)))
  rng = np.random.default_rng(hw[0])
  x = jnp.asarray(rng.random((2,) + hw + (3,)), jnp.float32)
  sw = jnp.asarray(rng.dirichlet(np.ones(c.num_styles), 2), jnp.float32)
  fn = jax.jit(lambda p, x, w: networks.apply_params(c, p, x, w, True, native=True))
  hlo = fn.lower(params, x, sw).as_text()
  assert 'nst_conv' in hlo and 'convolution' not in hlo
  got = fn(params, x, sw)
  want = networks.apply_params(c, params, x, sw, False)
  scale = max(1., float(jnp.abs(want).max()))
  assert got.shape == want.shape == x.shape
  assert float(jnp.abs(got - want).max()) < 1e-2 / 255 * scale
