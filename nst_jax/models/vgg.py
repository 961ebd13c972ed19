"""VGG19 (Simonyan & Zisserman 2014) in Flax, as used by every neural-style-transfer system.

Only the 16 convolutional layers and the 5 pooling layers are ported; the network stops at the
deepest requested layer. The input contract is RGB float images in 0..255, NHWC; the Caffe
preprocessing the converted ImageNet weights expect (RGB->BGR, minus the BGR mean pixel) happens
inside :class:`VGG19`, so callers cannot forget it.

Layer names are accepted in every spelling people use (see :func:`canonical_layer`):
``block4_conv2`` (Keras), ``conv4_2`` / ``relu4_2`` (Gatys, Caffe), ``conv_10`` / ``relu_10``
(sequential 1..16, as in the PyTorch tutorial), and ``block4_pool`` / ``pool4`` / ``pool_4``.
Convolution activations are always returned after the ReLU.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from nst_jax.errors import ConfigError
from nst_jax.models import convolution
from nst_jax.runtime import devices

# Caffe/Keras mean pixel, BGR order.
BGR_MEAN = (103.939, 116.779, 123.68)

_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

# Every layer in network order: block{b}_conv{c} ... block{b}_pool.
LAYERS: tuple[str, ...] = tuple(
    name for b, n, _ in _BLOCKS
    for name in [f'block{b}_conv{c}' for c in range(1, n + 1)] + [f'block{b}_pool'])
CONV_LAYERS: tuple[str, ...] = tuple(l for l in LAYERS if '_conv' in l)
POOL_LAYERS: tuple[str, ...] = tuple(l for l in LAYERS if l.endswith('_pool'))
CHANNELS: dict[str, int] = {
    f'block{b}_{kind}': ch for b, n, ch in _BLOCKS
    for kind in [f'conv{c}' for c in range(1, n + 1)] + ['pool']}
# Spatial downsampling factor of each layer's output relative to the input.
STRIDE: dict[str, int] = {
    name: 2 ** (int(name[5]) - 1) * (2 if name.endswith('_pool') else 1) for name in LAYERS}

CONV_IMPLS = ('auto', 'direct', 'winograd2', 'winograd4')
# Operand dtype of the convolutions' products (accumulation is float32 either way): bfloat16
# runs Winograd's matrix products on bf16 units (AMX / AVX512-BF16 on recent x86 CPUs, tensor
# cores on GPUs); the input is rounded to 8 significant bits (~2e-3 relative per layer).
CONV_DTYPES = devices.CONV_DTYPES  # resolved precisions ('auto' resolves first: runtime.devices)
POOLINGS = ('max', 'avg')


def _aliases() -> dict[str, str]:
  table = {name: name for name in LAYERS}
  for i, name in enumerate(CONV_LAYERS, start=1):
    b, c = name[5], name[-1]
    for alias in (f'conv{b}_{c}', f'relu{b}_{c}', f'conv_{i}', f'relu_{i}'):
      table[alias] = name
  for name in POOL_LAYERS:
    b = name[5]
    for alias in (f'pool{b}', f'pool_{b}'):
      table[alias] = name
  return table


_ALIASES = _aliases()


def canonical_layer(name: str) -> str:
  """Returns the Keras name (``block4_conv2``) of any accepted spelling of a layer name."""
  key = str(name).strip().lower()
  if key in _ALIASES:
    return _ALIASES[key]
  raise ConfigError(
      f'unknown VGG19 layer {name!r}; valid names are {", ".join(LAYERS)} '
      '(or conv4_2 / relu4_2 / conv_10 / pool4 spellings)')


def parse_layers(layers: str | Iterable[str] | None) -> tuple[str, ...]:
  """Parses ``'conv1_1, conv2_1'`` or a sequence of names into canonical names (order kept)."""
  if layers is None:
    return ()
  if isinstance(layers, str):
    layers = [l for l in re.split(r'[,\s]+', layers) if l]
  return tuple(canonical_layer(l) for l in layers)


def layer_index(name: str) -> int:
  return LAYERS.index(canonical_layer(name))


def preprocess(images: jax.Array) -> jax.Array:
  """RGB 0..255 -> Caffe input: BGR, minus the BGR mean pixel."""
  return images[..., ::-1] - jnp.asarray(BGR_MEAN, images.dtype)


def conv3x3(x: jax.Array, kernel: jax.Array, impl: str = 'direct',
            dtype: str = 'float32') -> jax.Array:
  """3x3 'SAME' stride-1 cross-correlation, NHWC x HWIO, by the chosen algorithm, with the
  products' operands in ``dtype`` (:data:`CONV_DTYPES`; the result is float32).

  With bfloat16, ``winograd4`` runs F(2x2,3x3): F(4x4,3x3)'s larger transform coefficients
  amplify bfloat16's rounding to ~2.5e-2 relative error per layer (F(2x2,3x3): ~4e-3, direct:
  ~2e-3; tests/replication/test_vgg_reference.py).
  """
  if dtype not in CONV_DTYPES:
    raise ConfigError(f'unknown conv_dtype {dtype!r}; choose one of {", ".join(CONV_DTYPES)}')
  if impl == 'winograd4' and dtype != 'float32':
    impl = 'winograd2'
  if impl == 'direct':
    return convolution.same_conv(x, kernel, dtype)
  if impl in ('winograd2', 'winograd4'):
    from nst_jax.models import winograd  # pylint: disable=g-import-not-at-top
    return winograd.conv3x3(x, kernel, tile=int(impl[-1]), dtype=dtype)
  raise ConfigError(f'unknown conv_impl {impl!r}; choose one of {", ".join(CONV_IMPLS)}')


def pool2x2(x: jax.Array, pooling: str) -> jax.Array:
  """2x2 stride-2 pooling ('VALID': odd trailing rows/columns are dropped, as in Keras/Torch).

  Max pooling is a maximum over reshaped 2x2 blocks, not ``reduce_window``: the same values, but
  its gradient is a fused elementwise mask instead of XLA:CPU's ``select_and_scatter``, which
  took ~55 ms per evaluation at 192x256 for pool1 alone (~7 ms now). The one difference: a
  gradient is shared equally among exactly tied maxima (``reduce_window`` gives it to the first).
  Average pooling is the same reshape with a sum (its gradient a broadcast instead of a padded
  ``reduce_window`` transpose).
  """
  if pooling not in POOLINGS:
    raise ConfigError(f'unknown pooling {pooling!r}; choose one of {", ".join(POOLINGS)}')
  *lead, h, w, c = x.shape
  x = x[..., :h // 2 * 2, :w // 2 * 2, :].reshape(*lead, h // 2, 2, w // 2, 2, c)
  if pooling == 'max':
    return jnp.max(x, axis=(-4, -2))
  return jnp.sum(x, axis=(-4, -2)) * 0.25


# Below this many pixel-evaluations (H x W x evaluations) ``auto`` picks direct convolutions on
# CPU: Winograd's chunk program takes longer to compile (cold cache; 2-core CPUs: ~4 s more at
# 192x256 in the Performance table, ~14 s more on the 2026-11-25 machine) and saves ~20-25% of
# an evaluation (~1.5-3 us per pixel), so short runs (1 step at any size up to ~2 MP, ~80 steps
# at 192x256) finish sooner, and need ~0.3 GB less memory, with direct ones.
AUTO_WINOGRAD_MIN_PIXEL_EVALS = 4e6


def resolve_conv_impl(conv_impl: str, pixels: int, evals: int) -> str:
  """``conv_impl`` for a run of ``evals`` evaluations of ``pixels`` (H x W) pixels: ``auto``
  becomes ``direct`` on accelerators and for short CPU runs, else ``winograd2``."""
  if conv_impl != 'auto':
    return conv_impl
  if jax.default_backend() != 'cpu':
    return 'direct'
  return 'winograd2' if pixels * evals >= AUTO_WINOGRAD_MIN_PIXEL_EVALS else 'direct'


def layer_conv_impl(layer: str, conv_impl: str) -> str:
  """The algorithm a layer actually uses under the network-wide ``conv_impl`` choice.

  Measured on a 2-core CPU (see README, Performance): Winograd's transforms are memory-bound,
  so block 1 (full resolution, 3 or 64 channels) is faster direct; F(4x4,3x3) only pays on the
  128/256-channel blocks 2-3 and loses to F(2x2,3x3) on 512 channels.
  """
  if conv_impl == 'auto':
    # Winograd measured 1.23-1.32x faster on CPU; on GPU cuDNN's own algorithms win (H100:
    # 1.1 ms direct vs 3.8 ms winograd2 per evaluation at 192x256).
    conv_impl = 'winograd2' if jax.default_backend() == 'cpu' else 'direct'
  block = int(layer[5])
  if conv_impl == 'direct' or block == 1:
    return 'direct'
  if conv_impl == 'winograd4' and block >= 4:
    return 'winograd2'
  return conv_impl


class Conv3x3(nn.Module):
  """A VGG conv layer: 3x3 kernel (HWIO, Keras layout), bias, 'SAME' padding."""
  features: int
  impl: str = 'direct'
  dtype: str = 'float32'

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return conv3x3(x, kernel.astype(x.dtype), self.impl, self.dtype) + bias.astype(x.dtype)


class VGG19(nn.Module):
  """VGG19 feature extractor.

  Attributes:
    layers: canonical layer names to return (see :func:`parse_layers`).
    pooling: 'max' (ImageNet training) or 'avg' (Gatys et al. 2015 recommend it for synthesis).
    conv_impl: 'direct' (XLA convolution), 'winograd2' / 'winograd4' (fewer FLOPs), or 'auto'
      (winograd2 on CPU, direct elsewhere).
    conv_dtype: the convolutions' operand dtype (:data:`CONV_DTYPES`); activations stay float32.
  """
  layers: tuple[str, ...]
  pooling: str = 'max'
  conv_impl: str = 'direct'
  conv_dtype: str = 'float32'

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """Maps RGB 0..255 NHWC images to ``{layer: post-ReLU activation}``."""
    if not self.layers:
      return {}
    wanted = set(self.layers)
    last = max(LAYERS.index(l) for l in wanted)
    x = preprocess(images)
    out = {}
    for name in LAYERS[:last + 1]:
      if name.endswith('_pool'):
        x = pool2x2(x, self.pooling)
      else:
        x = nn.relu(Conv3x3(CHANNELS[name], layer_conv_impl(name, self.conv_impl),
                            self.conv_dtype, name=name)(x))
      if name in wanted:
        out[name] = x
    return out


@functools.partial(jax.jit, static_argnames=('layers', 'pooling', 'conv_impl'))
def _extract(params, images, layers, pooling, conv_impl):
  return VGG19(layers, pooling, conv_impl).apply({'params': params}, images)


def features(params: Mapping, images: jax.Array, layers: Sequence[str], pooling: str = 'max',
             conv_impl: str = 'direct', remat: str = 'none',
             conv_dtype: str = 'float32') -> dict[str, jax.Array]:
  """Unjitted, trace-friendly feature extraction with canonical layer names (for use inside jit).

  ``remat`` (see :func:`parse_remat`) rematerialises the chosen blocks in the backward pass
  (``jax.checkpoint``): only each block's input and the requested activations are kept, the rest
  is recomputed, trading ~1 extra forward pass of those blocks for their activation memory.
  ``conv_dtype`` is the convolutions' operand dtype (:data:`CONV_DTYPES`).
  """
  blocks = parse_remat(remat)
  if not blocks:
    return VGG19(tuple(layers), pooling, conv_impl, conv_dtype).apply({'params': params}, images)
  return _features_remat(params, images, tuple(layers), pooling, conv_impl, blocks, conv_dtype)


REMAT_CHOICES = ('none', 'all', 'early')  # or block numbers such as '1,2'


def parse_remat(remat: str) -> tuple[int, ...]:
  """``'none'`` -> (), ``'all'`` -> blocks 1-5, ``'early'`` -> (1, 2) (the full- and
  half-resolution blocks, ~75% of the activations), ``'1,3'`` -> (1, 3)."""
  text = str(remat or 'none').strip().lower()
  if text == 'none':
    return ()
  if text == 'all':
    return (1, 2, 3, 4, 5)
  if text == 'early':
    return (1, 2)
  try:
    blocks = tuple(sorted({int(t) for t in re.split(r'[,\s]+', text) if t}))
  except ValueError:
    blocks = (0,)
  if not blocks or any(b not in range(1, 6) for b in blocks):
    raise ConfigError(f'unknown remat {remat!r}; choose none, all, early or VGG block numbers '
                      'such as 1,2')
  return blocks


def _features_remat(params, images, layers, pooling, conv_impl, blocks, conv_dtype='float32'):
  """The same network as :class:`VGG19`, one function per block, ``jax.checkpoint``-ed blocks."""
  if not layers:
    return {}
  wanted = set(layers)
  last = max(LAYERS.index(l) for l in wanted)
  x = preprocess(images)
  out = {}
  for b in sorted({int(name[5]) for name in LAYERS[:last + 1]}):
    names = tuple(n for n in LAYERS[:last + 1] if int(n[5]) == b)

    def block(bparams, x, names=names):
      kept = {}
      for name in names:
        if name.endswith('_pool'):
          x = pool2x2(x, pooling)
        else:
          p = bparams[name]
          x = nn.relu(conv3x3(x, p['kernel'].astype(x.dtype), layer_conv_impl(name, conv_impl),
                              conv_dtype) + p['bias'].astype(x.dtype))
        if name in wanted:
          kept[name] = x
      return x, kept

    fn = jax.checkpoint(block) if b in blocks else block
    x, kept = fn({n: params[n] for n in names if n in params}, x)
    out.update(kept)
  return out


def extract(params: Mapping, images, layers: str | Sequence[str], pooling: str = 'max',
            conv_impl: str = 'direct') -> dict[str, jax.Array]:
  """Returns ``{name: activation}`` of VGG19 for a float32 NHWC RGB 0..255 batch.

  Args:
    params: VGG19 params, e.g. from :func:`nst_jax.models.weights.load_vgg19`.
    images: (N, H, W, 3) RGB in 0..255 (a single (H, W, 3) image is also accepted).
    layers: layer names in any accepted spelling; the keys of the result are the names as given.
    pooling: 'max' or 'avg'.
    conv_impl: 'direct', 'winograd2' or 'winograd4'.
  """
  names = [l for l in re.split(r'[,\s]+', layers) if l] if isinstance(layers, str) else list(layers)
  canon = parse_layers(names)
  if pooling not in POOLINGS:
    raise ConfigError(f'unknown pooling {pooling!r}; choose one of {", ".join(POOLINGS)}')
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f'unknown conv_impl {conv_impl!r}; choose one of {", ".join(CONV_IMPLS)}')
  images = jnp.asarray(images, jnp.float32)
  single = images.ndim == 3
  if single:
    images = images[None]
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ConfigError(f'images must be (N, H, W, 3) RGB, got shape {tuple(images.shape)}')
  out = _extract(params, images, tuple(dict.fromkeys(canon)), pooling, conv_impl)
  return {n: (out[c][0] if single else out[c]) for n, c in zip(names, canon)}


def _avg_pool2(m: jax.Array) -> jax.Array:
  h, w = m.shape[-2] // 2, m.shape[-1] // 2
  return m[..., :2 * h, :2 * w].reshape(*m.shape[:-2], h, 2, w, 2).mean(axis=(-3, -1))


def layer_masks(masks: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
  """Masks (..., H, W) carried to each layer's resolution: ``{layer: (..., h, w)}``.

  Average pooling 2x2 'VALID' at every VGG pooling stage gives exactly the layer's spatial size
  and keeps a soft region's share of each downsampled position.
  """
  m = jnp.asarray(masks, jnp.float32)
  by_stride = {1: m}
  out = {}
  for layer in layers:
    stride = STRIDE[canonical_layer(layer)]
    s = max(by_stride)
    while s < stride:
      by_stride[2 * s] = _avg_pool2(by_stride[s])
      s *= 2
    out[layer] = by_stride[stride]
  return out
