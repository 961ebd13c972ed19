"""Loss terms of neural style transfer: content, Gram style, total variation. Pure and jittable.

Gram matrices are always computed *normalised by area* (``G / M`` with ``M`` the number of
spatial positions, or the mask's area for a guided Gram), which keeps float32 well-conditioned and
lets style and content images differ in size. Each source's own normalisation is then recovered
exactly by a per-layer factor (:func:`style_layer_factor`) so a preset means what its source meant
when the style image has the content's size:

========== =========================================== =================================
loss_norm  style term per layer                        content term per layer
========== =========================================== =================================
gatys      ``|G - A|^2 / (4 N^2 M^2)`` (Gatys 2015 eq.4) ``0.5 |F - P|^2`` (eq. 1)
keras      ``|G - A|^2 / (4 * 3^2 * S^2)``, S = H*W of  ``|F - P|^2``
           the *image* (Chollet's Keras example)
tf_tutorial ``mean((G/M - A/M)^2)`` (TensorFlow tutorial) ``mean((F - P)^2)``
========== =========================================== =================================

(``G``, ``A``: raw Grams of the generated and style features; ``N`` channels; ``M`` positions.)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from nst_jax.errors import ConfigError

LOSS_NORMS = ('gatys', 'keras', 'tf_tutorial')
TV_TYPES = ('l2', 'keras', 'l1')


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
  if value not in allowed:
    raise ConfigError(f'unknown {what} {value!r}; choose one of {", ".join(allowed)}')


def gram(features: jax.Array, mask: Optional[jax.Array] = None,
         shift: float | jax.Array = 0.) -> jax.Array:
  """Area-normalised Gram matrix ``F^T F / M`` of (..., H, W, C) features -> (..., C, C).

  Args:
    features: activations, spatial axes -3 and -2, channels last.
    mask: optional (..., H, W) guidance channel (Gatys et al. 2016): the features are multiplied
      by it and ``M`` becomes the mask's energy ``sum(mask^2)``.
    shift: activation shift added to the features before the product (Novak & Nikulin 2016
      use -1); 0 is the classic Gram.
  """
  f = features + shift
  *lead, h, w, c = f.shape
  if mask is None:
    area = jnp.asarray(h * w, f.dtype)
  else:
    f = f * mask[..., None]
    area = jnp.maximum(jnp.sum(jnp.square(mask), axis=(-2, -1)), 1e-8)[..., None, None]
  f = f.reshape(*lead, h * w, c)
  g = jnp.einsum('...mc,...md->...cd', f, f, precision=jax.lax.Precision.HIGHEST)
  return g / area


def style_layer_factor(loss_norm: str, channels: int, positions: int,
                       image_positions: int) -> float:
  """Factor turning ``|G/M - A/M|^2`` into the per-layer style term of ``loss_norm``."""
  _check(loss_norm, LOSS_NORMS, 'loss_norm')
  if loss_norm == 'gatys':
    return 1. / (4. * channels ** 2)
  if loss_norm == 'keras':
    return positions ** 2 / (4. * 9. * float(image_positions) ** 2)
  return 1. / channels ** 2


def content_layer_factor(loss_norm: str, channels: int, positions: int) -> float:
  """Factor turning ``|F - P|^2`` into the per-layer content term of ``loss_norm``."""
  _check(loss_norm, LOSS_NORMS, 'loss_norm')
  return {'gatys': 0.5, 'keras': 1., 'tf_tutorial': 1. / (channels * positions)}[loss_norm]


def content_loss(features: jax.Array, target: jax.Array, loss_norm: str = 'gatys',
                 mask: Optional[jax.Array] = None) -> jax.Array:
  """Content term of one layer: squared feature difference, normalised per ``loss_norm``.

  ``mask`` (..., H, W), if given, weights each position (1 = counted, 0 = ignored).
  """
  *_, h, w, c = features.shape
  diff = jnp.square(features - target)
  if mask is not None:
    diff = diff * mask[..., None]
  return content_layer_factor(loss_norm, c, h * w) * jnp.sum(diff, axis=(-3, -2, -1))


def style_loss(features: jax.Array, target_gram: jax.Array, loss_norm: str = 'gatys',
               image_positions: Optional[int] = None, mask: Optional[jax.Array] = None,
               shift: float | jax.Array = 0.) -> jax.Array:
  """Style term of one layer from its features and the (area-normalised) target Gram.

  Args:
    features: (..., H, W, C) activations of the image being optimised.
    target_gram: (..., C, C) area-normalised Gram of the style image, see :func:`gram`.
    loss_norm: one of :data:`LOSS_NORMS`.
    image_positions: H*W of the input image ('keras' normalisation only).
    mask: optional guidance channel for a guided Gram (spatial control).
    shift: activation shift, see :func:`gram`.
  """
  *_, h, w, c = features.shape
  g = gram(features, mask, shift)
  factor = style_layer_factor(loss_norm, c, h * w, image_positions or h * w)
  return factor * jnp.sum(jnp.square(g - target_gram), axis=(-2, -1))


def tv_loss(image: jax.Array, tv_type: str = 'l2') -> jax.Array:
  """Total variation of (..., H, W, C) images.

  'l2': ``sum dy^2 + sum dx^2``; 'l1': ``sum |dy| + sum |dx|`` (``tf.image.total_variation``);
  'keras': ``sum((dy^2 + dx^2)^1.25)`` over the top-left (H-1, W-1) grid (Chollet's example).
  """
  _check(tv_type, TV_TYPES, 'tv_type')
  dy = image[..., 1:, :, :] - image[..., :-1, :, :]
  dx = image[..., :, 1:, :] - image[..., :, :-1, :]
  axes = (-3, -2, -1)
  if tv_type == 'l2':
    return jnp.sum(jnp.square(dy), axes) + jnp.sum(jnp.square(dx), axes)
  if tv_type == 'l1':
    return jnp.sum(jnp.abs(dy), axes) + jnp.sum(jnp.abs(dx), axes)
  a = jnp.square(dy[..., :, :-1, :]) + jnp.square(dx[..., :-1, :, :])
  # (a + eps)^1.25 keeps the gradient finite where a == 0.
  return jnp.sum(jnp.power(a + 1e-12, 1.25), axes)
