"""Loss terms of neural style transfer: content, Gram style, total variation, and the controls'
terms (guided Grams, Novak & Nikulin's shifted Grams and correlation chain, the hold term of
unstyled regions). Pure and jittable.

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


def pool_to(features: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """Average-pools (..., H, W, C) features 2x2 ('VALID', as VGG) until they are ``hw`` in size."""
  while features.shape[-3] > hw[0]:
    *lead, h, w, c = features.shape
    f = features[..., :h // 2 * 2, :w // 2 * 2, :].reshape(*lead, h // 2, 2, w // 2, 2, c)
    features = jnp.mean(f, axis=(-4, -2))
  if tuple(features.shape[-3:-1]) != tuple(hw):
    raise ConfigError(f'cannot pool features of size {features.shape[-3:-1]} to {tuple(hw)}')
  return features


def hold_loss(image: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean squared pixel difference inside ``mask`` (..., H, W): holds unstyled regions to the
  content. (..., H, W, C) images; the mean is over the mask's area and the channels."""
  diff = jnp.sum(jnp.square(image - target) * mask[..., None], axis=(-3, -2, -1))
  return diff / jnp.maximum(jnp.sum(mask, axis=(-2, -1)) * image.shape[-1], 1e-8)


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
