"""Inception v3 (Szegedy et al. 2016) in Flax: the 2048-d pool3 features that FID compares.

Two variants of the same graph, told apart by their pooling branches:

* ``'fid'``: the TensorFlow FID network as pytorch-fid ports it (``FIDInceptionA/C/E_1/E_2``):
  the 3x3 average pools of the A, C and first E blocks leave the zero padding out of the average
  (TensorFlow's ``avg_pool``), and the last E block (``Mixed_7c``) max-pools instead. Its input
  is bilinearly resized to 299x299 (no antialiasing, half-pixel centres:
  ``F.interpolate(mode='bilinear', align_corners=False)``) and scaled from [0, 1] to [-1, 1]
  (:func:`fid_input`).
* ``'torchvision'``: torchvision's ``Inception3`` blocks (padding counted in the averages), the
  network of ArtFID's art-trained checkpoint (Wright & Ommer 2022), which takes the [0, 1]
  image (``ToTensor``) as it is, at its own size (:func:`art_input`).

Every convolution is torchvision's ``BasicConv2d``: a bias-free convolution, batch norm in
inference mode (``eps = 1e-3``) and a ReLU. The flat parameter names (:func:`flatten`) are the
torch module paths with ``/``: ``Mixed_5b/branch1x1/conv/kernel`` (HWIO), ``.../bn/scale``,
``bn/bias``, ``bn/mean``, ``bn/var``; ``weights/convert_learned.py`` writes exactly these.
Images are NHWC, RGB; the smallest input the graph takes is 75x75 (:data:`MIN_SIZE`).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from nst_jax.errors import ConfigError, ImageError

VARIANTS = ('fid', 'torchvision')
FID_SIZE = 299      # pytorch-fid resizes every image to 299x299 (InceptionV3.resize_input)
MIN_SIZE = 75       # below this a stride-2 stage has no output pixel left
FEATURES = 2048     # pool3: the final average pooling of Mixed_7c
BN_EPS = 1e-3       # torchvision BasicConv2d: nn.BatchNorm2d(out_channels, eps=0.001)
STAT_LEAVES = ('mean', 'var')  # batch-norm running statistics: Flax's 'batch_stats' collection
_HI = jax.lax.Precision.HIGHEST


def check_variant(variant: str) -> str:
  if variant not in VARIANTS:
    raise ConfigError(f'unknown Inception variant {variant!r}; choose one of {", ".join(VARIANTS)}')
  return variant


# --- Pooling ------------------------------------------------------------------------------------

def _pool(x: jax.Array, op: str, k: int, stride: int, pad: int) -> jax.Array:
  window, strides = (1, k, k, 1), (1, stride, stride, 1)
  padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
  if op == 'max':
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)
  return jax.lax.reduce_window(x, 0., jax.lax.add, window, strides, padding)


def avg_pool_3x3(x: jax.Array, count_include_pad: bool) -> jax.Array:
  """``F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=...)`` of NHWC ``x``."""
  total = _pool(x, 'sum', 3, 1, 1)
  if count_include_pad:
    return total / 9.
  ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
  return total / _pool(ones, 'sum', 3, 1, 1)


def max_pool(x: jax.Array, k: int = 3, stride: int = 2, pad: int = 0) -> jax.Array:
  """``F.max_pool2d(x, k, stride, padding=pad)`` (floor mode) of NHWC ``x``."""
  return _pool(x, 'max', k, stride, pad)


# --- Blocks -------------------------------------------------------------------------------------

class BasicConv(nn.Module):
  """Convolution (no bias), batch norm (running statistics), ReLU."""
  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.stride, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=_HI, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name='bn')(x)
    return nn.relu(x)


def _conv(features: int, name: str, kernel: int | tuple[int, int] = 1, stride: int = 1,
          padding: int | tuple[int, int] = 0) -> BasicConv:
  k = (kernel, kernel) if isinstance(kernel, int) else kernel
  p = (padding, padding) if isinstance(padding, int) else padding
  return BasicConv(features, k, stride, p, name=name)


class InceptionA(nn.Module):
  pool_features: int
  count_include_pad: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = _conv(64, 'branch1x1')(x)
    b5 = _conv(64, 'branch5x5_2', 5, padding=2)(_conv(48, 'branch5x5_1')(x))
    b3 = _conv(64, 'branch3x3dbl_1')(x)
    b3 = _conv(96, 'branch3x3dbl_3', 3, padding=1)(_conv(96, 'branch3x3dbl_2', 3, padding=1)(b3))
    bp = _conv(self.pool_features, 'branch_pool')(avg_pool_3x3(x, self.count_include_pad))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = _conv(384, 'branch3x3', 3, stride=2)(x)
    bd = _conv(96, 'branch3x3dbl_2', 3, padding=1)(_conv(64, 'branch3x3dbl_1')(x))
    bd = _conv(96, 'branch3x3dbl_3', 3, stride=2)(bd)
    return jnp.concatenate([b3, bd, max_pool(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int
  count_include_pad: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = _conv(192, 'branch1x1')(x)
    b7 = _conv(c7, 'branch7x7_1')(x)
    b7 = _conv(c7, 'branch7x7_2', (1, 7), padding=(0, 3))(b7)
    b7 = _conv(192, 'branch7x7_3', (7, 1), padding=(3, 0))(b7)
    bd = _conv(c7, 'branch7x7dbl_1')(x)
    for i, (kernel, pad) in enumerate([((7, 1), (3, 0)), ((1, 7), (0, 3)), ((7, 1), (3, 0)),
                                       ((1, 7), (0, 3))], start=2):
      bd = _conv(192 if i == 5 else c7, f'branch7x7dbl_{i}', kernel, padding=pad)(bd)
    bp = _conv(192, 'branch_pool')(avg_pool_3x3(x, self.count_include_pad))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = _conv(320, 'branch3x3_2', 3, stride=2)(_conv(192, 'branch3x3_1')(x))
    b7 = _conv(192, 'branch7x7x3_1')(x)
    b7 = _conv(192, 'branch7x7x3_2', (1, 7), padding=(0, 3))(b7)
    b7 = _conv(192, 'branch7x7x3_3', (7, 1), padding=(3, 0))(b7)
    b7 = _conv(192, 'branch7x7x3_4', 3, stride=2)(b7)
    return jnp.concatenate([b3, b7, max_pool(x)], axis=-1)


class InceptionE(nn.Module):
  pool: str  # 'avg' (padding counted), 'avg_exclude_pad' or 'max' (3x3, stride 1, padding 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = _conv(320, 'branch1x1')(x)
    b3 = _conv(384, 'branch3x3_1')(x)
    b3 = jnp.concatenate([_conv(384, 'branch3x3_2a', (1, 3), padding=(0, 1))(b3),
                          _conv(384, 'branch3x3_2b', (3, 1), padding=(1, 0))(b3)], axis=-1)
    bd = _conv(384, 'branch3x3dbl_2', 3, padding=1)(_conv(448, 'branch3x3dbl_1')(x))
    bd = jnp.concatenate([_conv(384, 'branch3x3dbl_3a', (1, 3), padding=(0, 1))(bd),
                          _conv(384, 'branch3x3dbl_3b', (3, 1), padding=(1, 0))(bd)], axis=-1)
    if self.pool == 'max':
      pooled = max_pool(x, 3, 1, 1)
    else:
      pooled = avg_pool_3x3(x, self.pool == 'avg')
    bp = _conv(192, 'branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """Inception v3 up to pool3: ``(N, H, W, 3)`` preprocessed input -> ``(N, 2048)``."""
  variant: str = 'fid'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fid = check_variant(self.variant) == 'fid'
    x = _conv(32, 'Conv2d_1a_3x3', 3, stride=2)(x)
    x = _conv(32, 'Conv2d_2a_3x3', 3)(x)
    x = _conv(64, 'Conv2d_2b_3x3', 3, padding=1)(x)
    x = max_pool(x)
    x = _conv(80, 'Conv2d_3b_1x1')(x)
    x = _conv(192, 'Conv2d_4a_3x3', 3)(x)
    x = max_pool(x)
    for name, pool_features in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
      x = InceptionA(pool_features, count_include_pad=not fid, name=name)(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c7, count_include_pad=not fid, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE('avg_exclude_pad' if fid else 'avg', name='Mixed_7b')(x)
    x = InceptionE('max' if fid else 'avg', name='Mixed_7c')(x)
    return jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)), flattened


# --- Parameters ---------------------------------------------------------------------------------

def flatten(variables: Mapping[str, Any]) -> dict[str, Any]:
  """Flax ``{'params': ..., 'batch_stats': ...}`` -> ``{'Mixed_5b/branch1x1/conv/kernel': ...}``
  (NumPy arrays; ``jax.ShapeDtypeStruct`` leaves are kept as they are)."""
  flat: dict[str, Any] = {}

  def walk(tree: Mapping[str, Any], prefix: str) -> None:
    for key, value in tree.items():
      name = f'{prefix}/{key}' if prefix else str(key)
      if isinstance(value, Mapping):
        walk(value, name)
      else:
        flat[name] = value if isinstance(value, jax.ShapeDtypeStruct) else np.asarray(value)
  for collection in ('params', 'batch_stats'):
    walk(variables.get(collection, {}), '')
  return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """The inverse of :func:`flatten`: running statistics go to ``batch_stats``."""
  variables: dict[str, Any] = {'params': {}, 'batch_stats': {}}
  for name, value in flat.items():
    parts = name.split('/')
    node = variables['batch_stats' if parts[-1] in STAT_LEAVES else 'params']
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = jnp.asarray(value, jnp.float32)
  return variables


@functools.cache
def param_shapes(variant: str = 'fid') -> dict[str, tuple[int, ...]]:
  """Every flat parameter name of the variant and its shape (no weights are built)."""
  model = InceptionV3(check_variant(variant))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, MIN_SIZE, MIN_SIZE, 3), jnp.float32))
  return {name: tuple(int(d) for d in a.shape) for name, a in flatten(shapes).items()}


# --- Input and forward pass ---------------------------------------------------------------------

def _check_images(images: jax.Array, min_size: int) -> None:
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ImageError(f'Inception takes (N, H, W, 3) RGB images, got shape {tuple(images.shape)}')
  if min(images.shape[1:3]) < min_size:
    raise ImageError(f'images of {images.shape[1]}x{images.shape[2]} px are too small for '
                     f'Inception v3 (at least {min_size}x{min_size})')


def fid_input(images: ArrayLike, size: int | None = FID_SIZE) -> jax.Array:
  """pytorch-fid's input: RGB 0..255 -> [0, 1] -> bilinear ``size`` x ``size`` -> [-1, 1]."""
  x = jnp.asarray(images, jnp.float32) / 255.
  if size is not None and x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), method='linear',
                         antialias=False)
  return 2. * x - 1.


def art_input(images: ArrayLike) -> jax.Array:
  """ArtFID's input: RGB 0..255 -> [0, 1] (``ToTensor``), at the image's own size."""
  return jnp.asarray(images, jnp.float32) / 255.


@functools.partial(jax.jit, static_argnames=('variant', 'size'))
def preprocess(images: ArrayLike, variant: str = 'fid', size: int | None = FID_SIZE) -> jax.Array:
  """The variant's input transform of RGB 0..255 images: :func:`fid_input` or
  :func:`art_input` (jitted apart from the network, so that every image size the FID variant
  resizes shares one compiled network)."""
  return fid_input(images, size) if variant == 'fid' else art_input(images)


@functools.partial(jax.jit, static_argnames=('variant',))
def network(variables: Mapping[str, Any], x: jax.Array, variant: str = 'fid') -> jax.Array:
  """pool3 features ``(N, 2048)`` of preprocessed input ``x``."""
  return cast(jax.Array, InceptionV3(variant).apply(variables, x))


def features(variables: Mapping[str, Any], images: ArrayLike, variant: str = 'fid',
             size: int | None = FID_SIZE) -> jax.Array:
  """pool3 features ``(N, 2048)`` of RGB 0..255 images ``(N, H, W, 3)``.

  ``variables``: :func:`unflatten` of a converted file. ``size``: the square size the ``'fid'``
  variant resizes to (299 as pytorch-fid; ``None`` keeps the image's size); the
  ``'torchvision'`` (ArtFID) variant never resizes.
  """
  x = jnp.asarray(images)
  check_variant(variant)
  resize = size if variant == 'fid' else None
  _check_images(x, MIN_SIZE if resize is None else 1)
  if resize is not None and resize < MIN_SIZE:
    raise ConfigError(f'Inception input size {resize} is below the minimum {MIN_SIZE}')
  return network(variables, preprocess(x, variant, resize), variant)
