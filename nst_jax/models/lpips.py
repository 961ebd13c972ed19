"""LPIPS (Zhang, Isola, Efros, Shechtman & Wang 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric"), version 0.1, in JAX.

For two RGB images the distance is

    d(a, b) = sum_l mean_{h,w} sum_c w_lc (n_l(a) - n_l(b))^2_hwc,

where ``n_l`` are the backbone's activations at layer ``l`` unit-normalised along the channels
(``f / (||f||_2 + 1e-10)``) and ``w_l >= 0`` the learned 1x1 linear layers (no bias). Inputs are
scaled as the reference ``lpips`` package does: RGB in [-1, 1], then its ``ScalingLayer``
``(x - shift) / scale`` with ``shift = (-.030, -.088, -.188)``, ``scale = (.458, .448, .450)``.

Backbones (torchvision's ImageNet networks, the five taps after a ReLU):

* ``'vgg'``: VGG16 ``features``, taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (channels
  64, 128, 256, 512, 512); 2x2 max pools between blocks;
* ``'alex'``: AlexNet ``features``, taps relu1..relu5 (64, 192, 384, 256, 256): the network
  ArtFID measures content distance with.

Flat parameter names (what ``weights/convert_learned.py`` writes): ``conv1_1/kernel`` (HWIO) and
``conv1_1/bias`` ... ``conv5_3`` for VGG16, ``conv1`` ... ``conv5`` for AlexNet, and ``lin0/weight``
... ``lin4/weight`` (one weight per channel).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from nst_jax.errors import ConfigError, ImageError

BACKBONES = ('vgg', 'alex')
SHIFT = (-.030, -.088, -.188)   # lpips.ScalingLayer.shift
SCALE = (.458, .448, .450)      # lpips.ScalingLayer.scale
NORM_EPS = 1e-10                # lpips.normalize_tensor
_HI = jax.lax.Precision.HIGHEST

# (name, in channels, out channels, kernel, stride, padding); 'pool' is a max pool (k, stride);
# 'tap' marks a feature the distance reads (after the preceding conv's ReLU).
_VGG16: tuple[Any, ...] = (
    ('conv1_1', 3, 64, 3, 1, 1), ('conv1_2', 64, 64, 3, 1, 1), 'tap', ('pool', 2, 2),
    ('conv2_1', 64, 128, 3, 1, 1), ('conv2_2', 128, 128, 3, 1, 1), 'tap', ('pool', 2, 2),
    ('conv3_1', 128, 256, 3, 1, 1), ('conv3_2', 256, 256, 3, 1, 1),
    ('conv3_3', 256, 256, 3, 1, 1), 'tap', ('pool', 2, 2),
    ('conv4_1', 256, 512, 3, 1, 1), ('conv4_2', 512, 512, 3, 1, 1),
    ('conv4_3', 512, 512, 3, 1, 1), 'tap', ('pool', 2, 2),
    ('conv5_1', 512, 512, 3, 1, 1), ('conv5_2', 512, 512, 3, 1, 1),
    ('conv5_3', 512, 512, 3, 1, 1), 'tap')
_ALEX: tuple[Any, ...] = (
    ('conv1', 3, 64, 11, 4, 2), 'tap', ('pool', 3, 2),
    ('conv2', 64, 192, 5, 1, 2), 'tap', ('pool', 3, 2),
    ('conv3', 192, 384, 3, 1, 1), 'tap',
    ('conv4', 384, 256, 3, 1, 1), 'tap',
    ('conv5', 256, 256, 3, 1, 1), 'tap')
LAYERS = {'vgg': _VGG16, 'alex': _ALEX}
CHANNELS = {'vgg': (64, 128, 256, 512, 512), 'alex': (64, 192, 384, 256, 256)}
MIN_SIZE = {'vgg': 16, 'alex': 31}  # smallest input with a pixel left at the last tap


def check_backbone(backbone: str) -> str:
  if backbone not in BACKBONES:
    raise ConfigError(f'unknown LPIPS backbone {backbone!r}; choose one of {", ".join(BACKBONES)}')
  return backbone


def conv_layers(backbone: str) -> tuple[tuple[str, int, int, int, int, int], ...]:
  """The backbone's convolutions: ``(name, cin, cout, kernel, stride, padding)``, in order."""
  return tuple(op for op in LAYERS[check_backbone(backbone)]
               if isinstance(op, tuple) and op[0] != 'pool')


@functools.cache
def param_shapes(backbone: str = 'vgg') -> dict[str, tuple[int, ...]]:
  """Every flat parameter name of the backbone plus its linear layers, and its shape."""
  shapes: dict[str, tuple[int, ...]] = {}
  for name, cin, cout, k, _, _ in conv_layers(backbone):
    shapes[f'{name}/kernel'] = (k, k, cin, cout)
    shapes[f'{name}/bias'] = (cout,)
  for i, c in enumerate(CHANNELS[backbone]):
    shapes[f'lin{i}/weight'] = (c,)
  return shapes


def scale_input(images: ArrayLike) -> jax.Array:
  """RGB 0..255 -> [-1, 1] -> the ScalingLayer's ``(x - shift) / scale``."""
  x = jnp.asarray(images, jnp.float32) / 127.5 - 1.
  return (x - jnp.asarray(SHIFT, jnp.float32)) / jnp.asarray(SCALE, jnp.float32)


def backbone_features(params: Mapping[str, Any], x: jax.Array, backbone: str) -> list[jax.Array]:
  """The five tapped activations (NHWC, after ReLU) of scaled input ``x``."""
  taps = []
  for op in LAYERS[backbone]:
    if op == 'tap':
      taps.append(x)
    elif op[0] == 'pool':
      _, k, s = op
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), 'VALID')
    else:
      name, _, _, _, stride, pad = op
      x = jax.lax.conv_general_dilated(
          x, jnp.asarray(params[f'{name}/kernel'], jnp.float32), (stride, stride),
          ((pad, pad), (pad, pad)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=_HI)
      x = jax.nn.relu(x + jnp.asarray(params[f'{name}/bias'], jnp.float32))
  return taps


def unit_normalize(f: jax.Array) -> jax.Array:
  """``f / (||f||_2 + 1e-10)`` along the channel (last) axis."""
  return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + NORM_EPS)


@functools.partial(jax.jit, static_argnames=('backbone',))
def _distance(params: Mapping[str, Any], a: jax.Array, b: jax.Array,
              backbone: str) -> jax.Array:
  n = a.shape[0]
  taps = backbone_features(params, scale_input(jnp.concatenate([a, b], axis=0)), backbone)
  total = jnp.zeros((n,), jnp.float32)
  for i, f in enumerate(taps):
    d = jnp.square(unit_normalize(f[:n]) - unit_normalize(f[n:]))
    w = jnp.asarray(params[f'lin{i}/weight'], jnp.float32)
    total = total + jnp.mean(jnp.einsum('nhwc,c->nhw', d, w, precision=_HI), axis=(1, 2))
  return total


def distance(params: Mapping[str, Any], a: ArrayLike, b: ArrayLike,
             backbone: str = 'vgg') -> jax.Array:
  """LPIPS distances ``(N,)`` between RGB 0..255 image batches ``a`` and ``b`` (N, H, W, 3)."""
  check_backbone(backbone)
  x, y = jnp.asarray(a), jnp.asarray(b)
  if x.shape != y.shape or x.ndim != 4 or x.shape[-1] != 3:
    raise ImageError(f'LPIPS compares two (N, H, W, 3) batches of one shape, got '
                     f'{tuple(x.shape)} and {tuple(y.shape)}')
  if min(x.shape[1:3]) < MIN_SIZE[backbone]:
    raise ImageError(f'images of {x.shape[1]}x{x.shape[2]} px are too small for LPIPS-'
                     f'{backbone} (at least {MIN_SIZE[backbone]}x{MIN_SIZE[backbone]})')
  return _distance(params, x, y, backbone)
