"""WCT: whitening and colouring transforms of VGG19 relu4_1 (Li et al. 2017).

"Universal Style Transfer via Feature Transforms" (NeurIPS 2017, arXiv:1705.08086), Sec. 3.2, at
one level (relu4_1) with the AdaIN decoder of :mod:`nst_jax.models.adain` (best pre-trained as an
inverse of relu4_1: ``adain.pretrain_steps``). With ``f_c`` the content's features as a (C, n)
matrix, ``m_c`` its channel means and ``(f_c - m_c)(f_c - m_c)^T / n = E_c D_c E_c^T`` its
covariance's eigendecomposition (``jnp.linalg.eigh``):

* whitening (eq. 2): ``f_hat = E_c (D_c + r I)^(-1/2) E_c^T (f_c - m_c)``, whose covariance is
  the identity up to the regulariser ``r`` (``D_c / (D_c + r)``);
* colouring (eq. 3): ``f_cs = E_s D_s^(1/2) E_s^T f_hat + m_s``, with the style's covariance
  ``E_s D_s E_s^T`` and mean ``m_s``: ``f_cs`` has the style's covariance and mean;
* blend (eq. 4): ``alpha f_cs + (1 - alpha) f_c``, ``alpha`` the job's ``strength``.

Covariances are population covariances (divided by n, as :func:`nst_jax.models.adain.mean_std`'s
variance). ``r`` regularises the whitening: :data:`EPS` times the features' mean square (over
positions and channels, uncentred: the mean eigenvalue plus the mean squared channel mean), so
it does not depend on the features' scale, and a flat image (no covariance) whitens to ~0, not
to amplified rounding noise. On a photo's relu4_1 it is ~6 (Tubingen at 192x256: 6.3, the mean
eigenvalue 4.0e5), next to the absolute ``+ I`` of the public eridgd/WCT-TF. Several
styles mix by a convex combination of their colourings and means (the paper's interpolation of
WCT outputs, among its user controls: the transform is linear in them); masks give each region
its own painting, whitened with that region's statistics (its spatial control).
"""

from __future__ import annotations

import functools
from typing import Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError

from nst_jax.io import images as image_io
from nst_jax.models import adain

# The whitening's regulariser, relative to the features' mean square. In float32, 1e-5
# reproduced a float64 WCT of a 192x256 photo's relu4_1 (768 positions, 512 channels, the largest
# eigenvalue 96x the mean) to 0.3 % RMS, with whitened variances of 0.995 on average (1e-5 of the
# mean eigenvalue instead: 0.3 %, 0.996; 1e-4 of it: 0.2 %, 0.980; 1e-3: 0.08 %, 0.900).
EPS = 1e-5


def moments(features: jax.Array, mask: Optional[jax.Array] = None
            ) -> tuple[jax.Array, jax.Array]:
  """Channel means (C,) and population covariance (C, C) of (..., H, W, C) features over every
  position (weighted by a (..., H, W) ``mask`` when given)."""
  x = jnp.reshape(features, (-1, features.shape[-1]))
  w = (jnp.ones(x.shape[:1], x.dtype) if mask is None
       else jnp.reshape(jnp.broadcast_to(mask, features.shape[:-1]), (-1,)))
  w = w / jnp.maximum(jnp.sum(w), 1e-8)
  mu = w @ x
  xc = x - mu
  return mu, (xc * w[:, None]).T @ xc


def whitening_matrix(cov: jax.Array, mean: jax.Array, eps: float = EPS) -> jax.Array:
  """``E (D + r I)^(-1/2) E^T`` of a (C, C) covariance ``E D E^T`` of features with channel
  means ``mean``: ``r = eps (trace(D) / C + mean(mean^2))``, ``eps`` times their mean square
  (negative rounding in ``D`` clamped)."""
  d, e = jnp.linalg.eigh(cov)
  d = jnp.maximum(d, 0.)
  d = d + eps * jnp.maximum(jnp.mean(d) + jnp.mean(jnp.square(mean)), 1e-30)
  return (e * jax.lax.rsqrt(d)) @ e.T


def colouring_matrix(cov: jax.Array) -> jax.Array:
  """``E D^(1/2) E^T`` of a (C, C) covariance: the symmetric square root."""
  d, e = jnp.linalg.eigh(cov)
  return (e * jnp.sqrt(jnp.maximum(d, 0.))) @ e.T


@functools.partial(jax.jit, static_argnames=('eps',))
def whiten(features: jax.Array, eps: float = EPS) -> jax.Array:
  """(..., H, W, C) features, whitened over all positions (eq. 2): zero mean, identity
  covariance."""
  mu, cov = moments(features)
  return (features - mu) @ whitening_matrix(cov, mu, eps)


def colour(whitened: jax.Array, mean: jax.Array, colouring: jax.Array) -> jax.Array:
  """Whitened (..., C) features given the style's covariance (its :func:`colouring_matrix`) and
  mean (C,) (eq. 3)."""
  return whitened @ colouring + mean


@functools.partial(jax.jit, static_argnames=('eps',))
def wct(content: jax.Array, style: jax.Array, alpha: float | jax.Array = 1.,
        eps: float = EPS) -> jax.Array:
  """Content features (..., H, W, C) whitened and coloured with the style features' (any
  positions) covariance and mean, blended with the content by ``alpha`` (eqs. 2-4)."""
  mu_s, cov_s = moments(style)
  f = colour(whiten(content, eps), mu_s, colouring_matrix(cov_s))
  return alpha * f + (1. - alpha) * content


def wct_regions(content: jax.Array, masks: jax.Array, means: jax.Array, colourings: jax.Array,
                alpha: float | jax.Array = 1., eps: float = EPS) -> jax.Array:
  """Per-region WCT (the paper's spatial control): one feature map, decoded once.

  Region ``r`` (mask ``m_r``) is whitened with the content's mean and covariance over that
  region (weighted by ``m_r``), coloured with painting ``r``'s, and blended with ``alpha``; the
  regions are combined as :func:`nst_jax.models.adain.adain_regions` combines them (overlaps
  normalised, the content's own features where no mask covers).

  Args:
    content: (1, h, w, C) features.
    masks: (K, h, w) region masks in 0..1 on the feature grid.
    means, colourings: (K, C) and (K, C, C): each painting's mean and colouring matrix.
  """
  def one(mask, mean, colouring):
    mu, cov = moments(content, mask[None])
    t = colour((content - mu) @ whitening_matrix(cov, mu, eps), mean, colouring)
    t = jnp.where(jnp.sum(mask) > 1e-6, t, content)  # a region no grid cell touches: unused
    return alpha * t + (1. - alpha) * content
  t = jax.vmap(one)(masks, means, colourings)            # (K, 1, h, w, C)
  total = jnp.sum(masks, 0)
  w = masks / jnp.maximum(total, 1.)[None]
  return (jnp.einsum('khw,knhwc->nhwc', w, t)
          + (1. - jnp.minimum(total, 1.))[None, :, :, None] * content)


# --- Images in, images out (the arbitrary job's method=wct).


@functools.partial(jax.jit, static_argnames=('conv_impl',))
def _style_stats(vgg_params, style, conv_impl):
  f = adain.encode(vgg_params, style, (adain.ENCODER_LAYER,), conv_impl)[adain.ENCODER_LAYER]
  mu, cov = moments(f)
  return mu, colouring_matrix(cov)


def style_statistics(vgg_params: Mapping, styles: Sequence[np.ndarray],
                     conv_impl: str = 'direct') -> tuple[jax.Array, jax.Array]:
  """The paintings' relu4_1 means and colouring matrices, stacked: ((K, C), (K, C, C))."""
  stats = [_style_stats(vgg_params, jnp.asarray(s, jnp.float32)[None], conv_impl) for s in styles]
  return jnp.stack([m for m, _ in stats]), jnp.stack([c for _, c in stats])


@functools.partial(jax.jit, static_argnames=('width', 'conv_impl', 'eps'))
def _stylize(decoder_params, vgg_params, content, means, colourings, weights, alpha, width,
             conv_impl, eps):
  fc = adain.encode(vgg_params, content, (adain.ENCODER_LAYER,), conv_impl)[adain.ENCODER_LAYER]
  t = colour(whiten(fc, eps), jnp.tensordot(weights, means, 1),
             jnp.tensordot(weights, colourings, 1))
  t = alpha * t + (1. - alpha) * fc
  return adain.Decoder(width).apply({'params': decoder_params}, t)


@functools.partial(jax.jit, static_argnames=('width', 'conv_impl', 'eps'))
def _stylize_regions(decoder_params, vgg_params, content, masks, means, colourings, alpha, width,
                     conv_impl, eps):
  fc = adain.encode(vgg_params, content, (adain.ENCODER_LAYER,), conv_impl)[adain.ENCODER_LAYER]
  t = wct_regions(fc, adain.masks_to_grid(masks), means, colourings, alpha, eps)
  out = adain.Decoder(width).apply({'params': decoder_params}, t)
  covered = jnp.minimum(jnp.sum(masks, 0), 1.)[None, :, :, None]
  return covered * out + (1. - covered) * content


@jax.jit
def _pixel_stats(style):
  mu, cov = moments(style)
  return mu, colouring_matrix(cov)


def pixel_statistics(styles: Sequence[np.ndarray]) -> tuple[jax.Array, jax.Array]:
  """The paintings' RGB pixel means and colouring matrices, stacked: ((K, 3), (K, 3, 3))."""
  stats = [_pixel_stats(jnp.asarray(s, jnp.float32)) for s in styles]
  return jnp.stack([m for m, _ in stats]), jnp.stack([c for _, c in stats])


@functools.partial(jax.jit, static_argnames=('eps',))
def _pixel_level(image, means, colourings, weights, alpha, eps):
  """WCT of the decoded image's RGB pixels with the paintings' statistics mixed by ``weights``."""
  t = colour(whiten(image, eps), jnp.tensordot(weights, means, 1),
             jnp.tensordot(weights, colourings, 1))
  return alpha * t + (1. - alpha) * image


@functools.partial(jax.jit, static_argnames=('eps',))
def _pixel_level_regions(image, masks, means, colourings, alpha, eps):
  return wct_regions(image[None], masks, means, colourings, alpha, eps)[0]


def stylize(decoder_params: Mapping, content: np.ndarray, style, alpha: float = 1.0,
            style_weights: Optional[Sequence[float]] = None, vgg_params: Optional[Mapping] = None,
            width: Optional[float] = None, conv_impl: str = 'direct',
            masks: Optional[np.ndarray] = None,
            statistics: Optional[tuple[jax.Array, jax.Array]] = None,
            eps: float = EPS, pixel_level: float = 0.,
            pixel_stats: Optional[tuple[jax.Array, jax.Array]] = None) -> np.ndarray:
  """Stylizes one photo by WCT at relu4_1 and the decoder, in one forward pass.

  The arguments are :func:`nst_jax.models.adain.stylize`'s (``alpha``: eq. 4's blend;
  ``statistics``: :func:`style_statistics`, computed once for many photos); ``eps``: the
  whitening's regulariser relative to the mean eigenvalue (:data:`EPS`).

  ``pixel_level`` (0..1): a last, finest level of the paper's coarse-to-fine cascade on the
  decoded RGB pixels: whitened and coloured with the painting's pixel mean and covariance (a
  colour transfer; the paper's relu1_1 level, which needs a decoder of its own, does mostly
  this), blended by ``alpha * pixel_level``; per region with ``masks``. ``pixel_stats``:
  :func:`pixel_statistics`, computed once for many photos.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  pixel_level = float(pixel_level)
  if not 0. <= pixel_level <= 1.:
    raise ConfigError(f'wct_pixel_level must be in [0, 1], got {pixel_level}')
  styles, w = adain.check_styles(style, style_weights, alpha)
  vgg_params = adain.default_vgg(vgg_params)
  width = adain.decoder_width(decoder_params) if width is None else width
  means, colourings = (style_statistics(vgg_params, styles, conv_impl) if statistics is None
                       else statistics)
  padded, (h, wd) = adain.pad_to_multiple(np.asarray(content))
  x = jnp.asarray(padded, jnp.float32)[None]
  if masks is not None:
    out = _stylize_regions(decoder_params, vgg_params, x,
                           adain.padded_masks(masks, len(styles), (h, wd)), means, colourings,
                           jnp.float32(alpha), float(width), conv_impl, float(eps))
  else:
    out = _stylize(decoder_params, vgg_params, x, means, colourings, jnp.asarray(w),
                   jnp.float32(alpha), float(width), conv_impl, float(eps))
  out = jnp.clip(out[0, :h, :wd], 0., 255.)
  return apply_pixel_level(out, styles, w, alpha * pixel_level, masks, pixel_stats, eps)


def apply_pixel_level(image, styles: Sequence[np.ndarray], weights, alpha: float,
                      masks: Optional[np.ndarray] = None,
                      pixel_stats: Optional[tuple[jax.Array, jax.Array]] = None,
                      eps: float = EPS) -> np.ndarray:
  """The pixel level of :func:`stylize` on a decoded (H, W, 3) image (0..255, float or uint8):
  WCT of its RGB pixels with the paintings' pixel statistics (mixed by ``weights``, or per region
  with ``masks``), blended by ``alpha``; uint8 RGB. Also what ``method=adain`` ends with."""
  out = jnp.asarray(image, jnp.float32)
  if alpha > 0.:
    pm, pc = pixel_statistics(styles) if pixel_stats is None else pixel_stats
    a = jnp.float32(alpha)
    out = (_pixel_level_regions(out, jnp.asarray(masks, jnp.float32), pm, pc, a, float(eps))
           if masks is not None else
           _pixel_level(out, pm, pc, jnp.asarray(weights, jnp.float32), a, float(eps)))
  return image_io.to_uint8(np.asarray(out))
