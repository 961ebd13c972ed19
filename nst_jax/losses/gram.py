"""The Gram matrix and the style terms built on it: Gatys et al.'s style loss, guided (masked)
Grams, Novak & Nikulin's shifted Gram and correlation chain. Pure and jittable.

Gram matrices are always computed *normalised by area* (``G / M`` with ``M`` the number of
spatial positions, or the mask's area for a guided Gram), which keeps float32 well-conditioned
and lets style and content images differ in size. Each source's own normalisation is then
recovered exactly by a per-layer factor (:func:`style_layer_factor`; the table of ``loss_norm``
meanings is in :mod:`nst_jax.losses.terms`).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from nst_jax.losses.terms import LOSS_NORMS, _check, pool_to


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
  if mask is None:
    # (F + s)^T (F + s) / M = F^T F / M + s (mu 1^T + 1 mu^T) + s^2 (:func:`shift_gram`): the
    # product sees the activations themselves, not a shifted copy (the shift is a traced weight,
    # so XLA cannot drop a zero one); with s = 0 the result is the same to the last bit.
    *lead, h, w, c = features.shape
    g = _gram_product(features.reshape(*lead, h * w, c)) / jnp.asarray(h * w, features.dtype)
    if isinstance(shift, (int, float)) and shift == 0:
      return g
    return shift_gram(g, feature_mean(features), shift)
  # Broadcasts: (1, H, W, C) features with (R, H, W) masks give R guided Grams.
  f = (features + shift) * mask[..., None]
  area = jnp.maximum(jnp.sum(jnp.square(mask), axis=(-2, -1)), 1e-8)[..., None, None]
  *lead, h, w, c = f.shape
  f = f.reshape(*lead, h * w, c)
  return _product(f) / area


def _product(f: jax.Array) -> jax.Array:
  return jnp.einsum('...mc,...md->...cd', f, f, precision=jax.lax.Precision.HIGHEST)


@jax.custom_vjp
def _gram_product(f: jax.Array) -> jax.Array:
  """``F^T F`` of (..., M, C) features, with a memory-lean gradient.

  Autodiff's gradient is two products ``F dG^T + F dG``, each in a transposed (C, M) layout,
  which XLA:CPU computed as soon as the loss was known and kept through the whole backward pass.
  Here it is one (M, C) product ``F (dG + dG^T)`` from the features (kept for the backward pass
  anyway), the same up to float rounding: with the gatys2015 style layers, an evaluation's
  temporaries at 384x512 fell from 481 to 394 MB (~0.45 KB per pixel).
  """
  return _product(f)


def _gram_product_fwd(f):
  return _product(f), f


def _gram_product_bwd(f, g):
  return (jnp.matmul(f, g + jnp.swapaxes(g, -1, -2), precision=jax.lax.Precision.HIGHEST),)


def style_layer_factor(loss_norm: str, channels: int, positions: int,
                       image_positions: int) -> float:
  """Factor turning ``|G/M - A/M|^2`` into the per-layer style term of ``loss_norm``."""
  _check(loss_norm, LOSS_NORMS, 'loss_norm')
  if loss_norm == 'gatys':
    return 1. / (4. * channels ** 2)
  if loss_norm == 'keras':
    return positions ** 2 / (4. * 9. * float(image_positions) ** 2)
  return 1. / channels ** 2


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


def feature_mean(features: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
  """Per-channel mean of (..., H, W, C) features -> (..., C), weighted like :func:`gram`.

  With a mask the weights are ``mask^2 / sum(mask^2)``, so that with :func:`shift_gram` the Gram
  of shifted features follows from the unshifted Gram and this mean.
  """
  if mask is None:
    return jnp.mean(features, axis=(-3, -2))
  m2 = jnp.square(mask)[..., None]
  area = jnp.maximum(jnp.sum(m2, axis=(-3, -2)), 1e-8)
  return jnp.sum(features * m2, axis=(-3, -2)) / area


def shift_gram(gram_: jax.Array, mean: jax.Array, shift: float | jax.Array,
               mean2: Optional[jax.Array] = None) -> jax.Array:
  """The Gram of ``features + shift`` from the unshifted Gram and :func:`feature_mean`.

  ``(F+s)^T (F+s) / M = F^T F / M + s (mu 1^T + 1 mu^T) + s^2``, so targets can be stored
  unshifted while the shift stays a traced (vmappable) weight. ``mean2`` is the second factor's
  mean for a cross Gram (:func:`cross_gram`); it defaults to ``mean``.
  """
  mean2 = mean if mean2 is None else mean2
  return gram_ + shift * (mean[..., :, None] + mean2[..., None, :]) + jnp.square(shift)


def cross_gram(f1: jax.Array, f2: jax.Array, mask: Optional[jax.Array] = None,
               shift: float | jax.Array = 0.) -> jax.Array:
  """Area-normalised cross Gram ``(F1+s)^T (F2+s) / M`` of two layers -> (..., C1, C2).

  The correlation chain of Novak & Nikulin (2016) correlates neighbouring layers. If their sizes
  differ the finer map is average-pooled 2x2 (as VGG pools) to the coarser one's size; ``mask``,
  if given, is at that coarser size.
  """
  hw = min(f1.shape[-3:-1], f2.shape[-3:-1])
  a, b = pool_to(f1, hw) + shift, pool_to(f2, hw) + shift
  *lead, h, w, c1 = a.shape
  if mask is None:
    area = jnp.asarray(h * w, a.dtype)
  else:
    a, b = a * mask[..., None], b * mask[..., None]
    area = jnp.maximum(jnp.sum(jnp.square(mask), axis=(-2, -1)), 1e-8)[..., None, None]
  lead = jnp.broadcast_shapes(a.shape[:-3], b.shape[:-3])
  a = jnp.broadcast_to(a, (*lead, h, w, c1)).reshape(*lead, h * w, c1)
  b = jnp.broadcast_to(b, (*lead, h, w, b.shape[-1])).reshape(*lead, h * w, b.shape[-1])
  g = jnp.einsum('...mc,...md->...cd', a, b, precision=jax.lax.Precision.HIGHEST)
  return g / area


def chain_style_loss(f1: jax.Array, f2: jax.Array, target: jax.Array, loss_norm: str = 'gatys',
                     image_positions: Optional[int] = None, mask: Optional[jax.Array] = None,
                     shift: float | jax.Array = 0.) -> jax.Array:
  """Style term of one correlation-chain link (Novak & Nikulin 2016) from its cross Gram.

  Normalised like :func:`style_loss` with ``N^2`` replaced by ``C1 * C2`` and ``M`` the
  positions of the coarser layer.
  """
  h, w = min(f1.shape[-3:-1], f2.shape[-3:-1])
  g = cross_gram(f1, f2, mask, shift)
  channels = (f1.shape[-1] * f2.shape[-1]) ** 0.5
  factor = style_layer_factor(loss_norm, channels, h * w, image_positions or h * w)
  return factor * jnp.sum(jnp.square(g - target), axis=(-2, -1))


_gram_product.defvjp(_gram_product_fwd, _gram_product_bwd)
