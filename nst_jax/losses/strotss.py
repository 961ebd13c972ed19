"""STROTSS: style by relaxed optimal transport, content by self-similarity, on hypercolumns.

Kolkin, Salavon & Shakhnarovich 2019, "Style Transfer by Relaxed Optimal Transport and
Self-Similarity" (CVPR), Sec. 2, whose objective at one scale is

    L = (alpha l_c + l_m + l_r + alpha^-1 l_p) / (2 + alpha + alpha^-1).

Every term compares *hypercolumns*: at a set of sampled positions, the image's RGB values and
the features of every layer there, concatenated. With X (n x D) the image's hypercolumns and
Y (m x D) the style's (named by the paper's symbols):

* ``l_r``, the relaxed EMD with cosine cost ``C_ij = 1 - cos(X_i, Y_j)``::

      l_r = max( mean_i min_j C_ij , mean_j min_i C_ij )

* ``l_m``, the moment term: ``l_m = 1/D |mu_X - mu_Y|_1 + 1/D^2 |Sigma_X - Sigma_Y|_1`` (mean and
  covariance of the hypercolumns, the code's ``moment_loss``);
* ``l_p``, the colour (palette) term: the relaxed EMD on the RGB channels alone, taken to the
  code's decorrelated colour space (``rgb_to_yuv_pc``: rows (1,1,1)/sqrt 3, ...) with cost
  ``1 - cos + sqrt(|a - b|^2 / 3)`` (the squared distance clipped to [1e-5, 1e5]);
* the style term as the code's ``gen_remd_dp_objective``:
  ``l_style = l_r + moment_weight * (l_m + palette_weight * l_p)``, its total
  ``(cw l_c + l_style) / (cw + 1 + moment_weight)`` with ``palette_weight = 1 / max(cw, 1)``;
* ``l_c``, the content term: cosine self-similarity matrices of the image's and the
  content's hypercolumns at the same positions, ``D^X_ij = 1 - cos(X_i, X_j)``, each column
  normalised to sum 1, ``l_c = 1/n sum_ij |D^X_ij - D^C_ij|`` (the code's ``dp_loss``).

Choices, from the authors' code (nkolkin13/STROTSS at its May 2020 fix, which feeds VGG16
ImageNet-normalised RGB and keeps RGB in [0, 1] as the hypercolumn's first channels; David
Futschik's faster port futscdav/strotss agrees on every constant):

* **Layers**: whatever ``feats`` holds, in sorted name order (VGG names sort by depth; the order
  only has to be the same for the image and the style). The paper's VGG16 layers are relu1_1,
  relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3, relu4_3, relu5_3 (2176 channels, 2179
  with RGB); :data:`HYPERCOLUMN_LAYERS` names VGG19's layers of the same names.
* **Feature scale**: this codebase's VGG19 is the Caffe network, fed 0..255 minus the mean
  pixel: 255 * sigma ~ 57.6 times torchvision's normalised input (the means coincide), so its
  activations are about that multiple of the official code's. Features are multiplied by
  ``feature_scale`` (:data:`FEATURE_SCALE` = 1 / (255 * 0.226)) before anything else, which
  restores the code's balance of RGB against features in the cosines and of the moment term
  against the (scale-free) relaxed EMD.
* **Positions** (the image): the code's grid -- strides ``floor`` and ``ceil`` of
  ``sqrt(H W // 128^2)`` along rows and columns from a random offset -- and ``samples`` (the
  code's 32^2 = 1024) positions on it, rows and columns drawn independently (the code shuffles
  the two coordinate lists separately); all redrawn from ``key`` at every step (the code moves
  the offset every 10 steps and reshuffles every step). The code uses one sample for both
  terms: give :func:`strotss_loss` and :func:`self_similarity_loss` the same key. Features of
  a layer with 2^k times fewer rows are read at (row, col) / 2^k **bilinearly**, clipped at the
  border, as the code's ``spatial_feature_extract``.
* **Positions** (the style, :func:`strotss_target`): ``draws`` (the code's 5) draws of
  ``samples`` (the code's 1000) distinct positions each, read at floor((row, col) / 2^k) (the
  code's ``forward_samples_hypercolumn``), fixed for the run.
* **Cost**: the cosine matrices are one matrix product each, on stop-gradient copies; the
  minima's arguments then pick the pairs, and only those pairs are differentiated (the same
  value and gradient as differentiating the min, without a backward pass through n x m).
  Norms get 1e-12 under the square root and column sums a floor of 1e-12 (the code has none:
  it returns NaN on a zero hypercolumn). The cost matrices (which only choose pairs) use the default
  matrix-product precision; everything differentiated is elementwise or full float32.

Memory of one evaluation (value and gradient), float32 bytes, with D the hypercolumn width,
n = ``samples`` of the image, m the style's samples (in the target)::

    4 * (m * D + D + D^2)                           the target (kept for the run)
  + 4 * (3 * m * D + 3 * n * m + 2 * D^2 + 4 * n * D)  strotss_loss's temporaries: the weighted
                                                    and unit style copies, the two cost blocks
                                                    (features, palette), the covariances, the
                                                    hypercolumns (four bilinear corners), pairs
  + 4 * (12 * n * D + 4 * n^2)                      self_similarity_loss's (both sides'
                                                    hypercolumns, both n x n matrices)

(upper bounds of XLA:CPU's ``memory_analysis`` at 192x256 px with the nine layers, D = 2179,
n = 512 / 1024, m = 2000 / 5000, within 25%; nothing grows with the image but the features).

Pure and jittable: ``samples`` and ``draws`` are static (shapes); ``key``, ``layer_weights``,
``moment_weight``, ``palette_weight`` and ``feature_scale`` may be traced.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError
from nst_jax.losses import gram as gram_lib

# VGG19 layers of the paper's VGG16 hypercolumn (relu1_1 ... relu3_3, relu4_3, relu5_3).
HYPERCOLUMN_LAYERS = ('block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2',
                      'block3_conv1', 'block3_conv2', 'block3_conv3', 'block4_conv3',
                      'block5_conv3')
FEATURE_SCALE = 1. / (255. * 0.226)   # Caffe-VGG activations -> torchvision-VGG scale
GRID_POSITIONS = 128 ** 2             # the code's ``const``: grid stride sqrt(H W // 128^2)
SAMPLES = 1024                        # image positions per step (the code's 32 ** 2)
STYLE_SAMPLES = 1000                  # style positions per draw (the code's ``subsamps``)
STYLE_DRAWS = 5                       # draws of style positions (the code's ``inner``)
PALETTE_WEIGHT = 1. / 16.             # 1 / max(content_weight, 1) at the first scale (16)
# The code's decorrelated colour space (``utils.C``), applied to RGB in [0, 1].
YUV = np.array([[0.577350, 0.577350, 0.577350],
                [-0.577350, 0.788675, -0.211325],
                [-0.577350, -0.211325, 0.788675]], np.float32)
_EPS = 1e-12


def _check_samples(samples: int, what: str = 'samples (positions sampled)') -> None:
  if int(samples) < 1:
    raise ConfigError(f'STROTSS {what} must be >= 1, got {samples}')


def _names(feats: Mapping[str, jax.Array], what: str) -> tuple[str, ...]:
  if not feats:
    raise ConfigError(f'STROTSS needs at least one layer of {what} features')
  for l, f in feats.items():
    if len(f.shape) != 3:
      raise ConfigError(f'STROTSS {what} features of {l} must be (H, W, C), got {f.shape}')
  return tuple(sorted(feats))


def _base(feats: Mapping[str, jax.Array], pixels: Optional[jax.Array],
          what: str) -> tuple[int, int]:
  """The grid positions live on: the pixels', or else the largest layer's."""
  if pixels is not None:
    if len(pixels.shape) != 3 or pixels.shape[-1] != 3:
      raise ConfigError(f'STROTSS {what} pixels must be (H, W, 3) RGB, got {pixels.shape}')
    return int(pixels.shape[0]), int(pixels.shape[1])
  return max((int(f.shape[0]), int(f.shape[1])) for f in feats.values())


def _scales(feats: Mapping[str, jax.Array], names: tuple[str, ...], base: tuple[int, int],
            what: str) -> dict[str, float]:
  """2^-k for a layer with 2^k times fewer rows than the base grid (k poolings)."""
  out = {}
  for l in names:
    h, w = int(feats[l].shape[0]), int(feats[l].shape[1])
    if h > base[0] or w > base[1]:
      raise ConfigError(f'STROTSS {what} layer {l} ({h}x{w}) is larger than its image '
                        f'({base[0]}x{base[1]})')
    out[l] = 2. ** -round(math.log2(base[0] / h))
  return out


def sample_positions(key: jax.Array, height: int, width: int, samples: int
                     ) -> tuple[jax.Array, jax.Array]:
  """``samples`` (row, col) int32 positions on the code's strided grid with a random offset
  (``init_inds``: strides floor / ceil of sqrt(H W // 128^2)), rows and columns independent.

  One draw of 32-bit words, reduced modulo the ranges (a bias below range / 2^32: none that
  matters for grids of a few thousand rows), which compiles in a fraction of separate
  ``randint`` calls' time.
  """
  _check_samples(samples)
  q = (height * width) // GRID_POSITIONS
  sr = max(int(math.floor(math.sqrt(q))), 1)
  sc = max(int(math.ceil(math.sqrt(q))), 1)
  bits = jax.random.bits(key, (2 * samples + 2,), jnp.uint32)
  o_r, o_c = bits[0] % sr, bits[1] % sc
  n_r = (height - 1 - o_r) // sr + 1
  n_c = (width - 1 - o_c) // sc + 1
  rows = o_r + sr * (bits[2:2 + samples] % n_r)
  cols = o_c + sc * (bits[2 + samples:] % n_c)
  return rows.astype(jnp.int32), cols.astype(jnp.int32)


def _read(f: jax.Array, rows: jax.Array, cols: jax.Array, scale: float,
          bilinear: bool) -> jax.Array:
  """(n, C) features of (h, w, C) ``f`` at (rows, cols) * scale. The indices are clipped first,
  so the gathers promise in-bounds indices (no clamping or masking ops: at 192x256 with the
  nine layers, the hypercolumns and their gradient took ~0.05 s against ~0.1 s)."""
  h, w = f.shape[0], f.shape[1]
  y = rows.astype(f.dtype) * scale
  x = cols.astype(f.dtype) * scale
  y0, x0 = jnp.floor(y), jnp.floor(x)
  iy0 = jnp.clip(y0.astype(jnp.int32), 0, h - 1)
  ix0 = jnp.clip(x0.astype(jnp.int32), 0, w - 1)
  at = lambda iy, ix: f.at[iy, ix].get(mode='promise_in_bounds')
  if not bilinear:
    return at(iy0, ix0)
  fy, fx = (y - y0)[:, None], (x - x0)[:, None]
  iy1 = jnp.clip(y0.astype(jnp.int32) + 1, 0, h - 1)
  ix1 = jnp.clip(x0.astype(jnp.int32) + 1, 0, w - 1)
  return ((1. - fy) * ((1. - fx) * at(iy0, ix0) + fx * at(iy0, ix1))
          + fy * ((1. - fx) * at(iy1, ix0) + fx * at(iy1, ix1)))


def hypercolumns(feats: Mapping[str, jax.Array], pixels: Optional[jax.Array], rows: jax.Array,
                 cols: jax.Array, bilinear: bool = True) -> jax.Array:
  """(n, D) raw hypercolumns at base-grid positions: RGB / 255 (when ``pixels`` is given) and
  then every layer of ``feats`` in sorted name order, unscaled (see :func:`channel_weights`)."""
  names = _names(feats, 'image')
  scales = _scales(feats, names, _base(feats, pixels, 'image'), 'image')
  parts = []
  if pixels is not None:
    px = jnp.asarray(pixels, jnp.result_type(feats[names[0]]))
    parts.append(_read(px, rows, cols, 1., False) / 255.)
  for l in names:
    parts.append(_read(jnp.asarray(feats[l]), rows, cols, scales[l], bilinear))
  return jnp.concatenate(parts, axis=1)


def channel_weights(feats: Mapping[str, jax.Array], with_pixels: bool,
                    layer_weights: Optional[Mapping[str, float | jax.Array]] = None,
                    feature_scale: float = FEATURE_SCALE) -> jax.Array:
  """(D,) factors of the hypercolumn's channels: 1 for RGB, ``feature_scale`` times the layer's
  weight (default 1) for each layer's channels."""
  names = _names(feats, 'image')
  parts = [jnp.ones((3,), jnp.float32)] if with_pixels else []
  for l in names:
    wl = 1. if layer_weights is None else layer_weights[l]
    parts.append(jnp.broadcast_to(jnp.asarray(wl, jnp.float32) * feature_scale,
                                  (int(feats[l].shape[-1]),)))
  return jnp.concatenate(parts)


def _unit(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + _EPS)


def _pair_cost(a: jax.Array, b: jax.Array, euclidean: bool) -> jax.Array:
  """Cost of matched rows: 1 - cos (+ the palette's sqrt(clip(|a - b|^2) / 3))."""
  c = 1. - jnp.sum(_unit(a) * _unit(b), axis=-1)
  if euclidean:
    c = c + jnp.sqrt(jnp.clip(jnp.sum(jnp.square(a - b), axis=-1), 1e-5, 1e5) / a.shape[-1])
  return c


def relaxed_emd(x: jax.Array, y: jax.Array, euclidean: bool = False) -> jax.Array:
  """``l_r``: ``max(mean_i min_j C_ij, mean_j min_i C_ij)`` of (n, D) ``x`` against (m, D)
  ``y`` with the cosine cost (``euclidean``: plus the palette's distance term).

  The cost matrix is built once without gradient; the value is recomputed on the minimising
  pairs, so the gradient is that of the min (a.e.) without differentiating the n x m matrix.
  """
  xs, ys = jax.lax.stop_gradient(x), jax.lax.stop_gradient(y)
  cost = 1. - jnp.matmul(_unit(xs), _unit(ys).T)
  if euclidean:
    sq = (jnp.sum(jnp.square(xs), 1)[:, None] + jnp.sum(jnp.square(ys), 1)[None, :]
          - 2. * jnp.matmul(xs, ys.T))
    cost = cost + jnp.sqrt(jnp.clip(sq, 1e-5, 1e5) / x.shape[-1])
  j = jnp.argmin(cost, axis=1)                  # each image sample's nearest style sample
  i = jnp.argmin(cost, axis=0)                  # each style sample's nearest image sample
  m1 = jnp.mean(_pair_cost(x, jnp.take(y, j, axis=0), euclidean))
  m2 = jnp.mean(_pair_cost(jnp.take(x, i, axis=0), y, euclidean))
  return jnp.maximum(m1, m2)


def _covariance(x: jax.Array, mean: jax.Array) -> jax.Array:
  """(D, D) ``(X - mu)^T (X - mu) / n`` with gram's one-product gradient."""
  return gram_lib.gram((x - mean)[None])


def moment_loss(x: jax.Array, mean: jax.Array, cov: jax.Array) -> jax.Array:
  """``l_m``: mean |mu_X - mu_Y| + mean |Sigma_X - Sigma_Y| (the code's ``moment_loss``)."""
  mu = jnp.mean(x, axis=0)
  return jnp.mean(jnp.abs(mu - mean)) + jnp.mean(jnp.abs(_covariance(x, mu) - cov))


def _yuv(rgb: jax.Array) -> jax.Array:
  # HIGHEST: on the value path (GPUs would otherwise round the operands to TF32).
  return jnp.matmul(rgb, jnp.asarray(YUV).T, precision=jax.lax.Precision.HIGHEST)


def strotss_target(feats: Mapping[str, jax.Array], pixels: jax.Array,
                   samples: int = STYLE_SAMPLES, key: Optional[jax.Array] = None,
                   draws: int = STYLE_DRAWS) -> dict:
  """The style's sampled hypercolumns and their moments, computed once per style image.

  Args:
    feats: layer -> the style's (Hs, Ws, C) activations (the layers of :func:`strotss_loss`).
    pixels: the style image, (Hs0, Ws0, 3) RGB 0..255.
    samples: distinct positions per draw (the code: 1000; at most Hs0 * Ws0).
    key: PRNG key of the positions (default PRNGKey(0): a fixed sample).
    draws: draws of positions, concatenated (the code: 5).

  Returns:
    ``{'features': (m, D), 'mean': (D,), 'cov': (D, D)}``, raw (unscaled) hypercolumns with
    m = draws * min(samples, Hs0 * Ws0); the loss applies its channel factors to all three.
  """
  _check_samples(samples)
  _check_samples(draws, 'draws (of style positions)')
  _names(feats, 'style')
  h, w = _base(feats, pixels, 'style')
  n = min(int(samples), h * w)
  key = jax.random.PRNGKey(0) if key is None else key
  flat = jnp.concatenate([jax.random.permutation(k, h * w)[:n]
                          for k in jax.random.split(key, int(draws))])
  y = hypercolumns(feats, pixels, (flat // w).astype(jnp.int32), (flat % w).astype(jnp.int32),
                   bilinear=False)
  mean = jnp.mean(y, axis=0)
  return {'features': y, 'mean': mean, 'cov': _covariance(y, mean)}


def strotss_loss(feats: Mapping[str, jax.Array], pixels: jax.Array, target: dict,
                 key: jax.Array, samples: int = SAMPLES,
                 layer_weights: Optional[Mapping[str, float | jax.Array]] = None,
                 moment_weight: float = 1., palette_weight: float = PALETTE_WEIGHT,
                 feature_scale: float = FEATURE_SCALE) -> jax.Array:
  """STROTSS's style term ``l_r + moment_weight * (l_m + palette_weight * l_p)`` (Sec. 2).

  Args:
    feats: layer -> the image's (H, W, C) activations (the same layers as the target).
    pixels: the image, (H0, W0, 3) RGB 0..255 (its positions are the sampling grid).
    target: :func:`strotss_target` of the style.
    key: PRNG key of this step's positions.
    samples: image positions (the code: 1024).
    layer_weights: optional layer -> factor of that layer's hypercolumn channels, on both
      sides (default 1: the paper's unweighted hypercolumn).
    moment_weight: the code's ``moment_weight`` (1).
    palette_weight: the code's ``1 / max(content_weight, 1)`` with its per-scale content weight
      (16, 8, 4, 2 over the four scales: 1/16 ... 1/2).
    feature_scale: factor of the features (not RGB); see the module docstring.

  Returns:
    A float32 scalar >= 0 (the palette term alone is at least sqrt(1e-5 / 3), the code's
    clamp). The code's total at one scale is
    ``(cw * self_similarity_loss + strotss_loss) / (cw + 1 + moment_weight)``.
  """
  _check_samples(samples)
  d = target['features'].shape[-1]
  v = channel_weights(feats, True, layer_weights, feature_scale)
  if v.shape[0] != d:
    raise ConfigError(f'STROTSS target has hypercolumns of {d} channels, the image '
                      f'{v.shape[0]}: compute it from the same layers')
  rows, cols = sample_positions(key, *_base(feats, pixels, 'image'), samples)
  x = hypercolumns(feats, pixels, rows, cols, bilinear=True) * v
  y = target['features'] * v
  remd = relaxed_emd(x, y)
  moments = moment_loss(x, target['mean'] * v, target['cov'] * (v[:, None] * v[None, :]))
  palette = relaxed_emd(_yuv(x[:, :3]), _yuv(y[:, :3]), euclidean=True)
  return remd + moment_weight * (moments + palette_weight * palette)


def self_similarity(x: jax.Array) -> jax.Array:
  """(n, n) cosine distances ``1 - cos(x_i, x_j)``, each column normalised to sum 1."""
  u = _unit(x)
  # u u^T through gram (columns of u^T as "channels"): its one-product, memory-lean gradient.
  dist = 1. - gram_lib.gram(u.T[None]) * u.shape[1]
  return dist / jnp.maximum(jnp.sum(dist, axis=0, keepdims=True), _EPS)


def self_similarity_loss(feats: Mapping[str, jax.Array], content_feats: Mapping[str, jax.Array],
                         key: jax.Array, samples: int = SAMPLES,
                         pixels: Optional[jax.Array] = None,
                         content_pixels: Optional[jax.Array] = None,
                         layer_weights: Optional[Mapping[str, float | jax.Array]] = None,
                         feature_scale: float = FEATURE_SCALE) -> jax.Array:
  """STROTSS's content term ``l_c`` (the code's ``dp_loss``): ``1/n sum_ij |D^X - D^C|``.

  Args:
    feats: layer -> the image's (H, W, C) activations.
    content_feats: the content's activations of the same layers at the same sizes.
    key: PRNG key of the positions (the same key and grid as :func:`strotss_loss` give the
      same positions, as in the code, where one sample serves both terms).
    samples: positions (the code: 1024).
    pixels, content_pixels: optional (H0, W0, 3) RGB 0..255 of both: the code's hypercolumn
      starts with RGB; without them the grid is the largest layer's and RGB is left out.
    layer_weights, feature_scale: as :func:`strotss_loss` (they only matter relative to RGB
      and between layers: cosines ignore a common factor).

  Returns:
    A float32 scalar >= 0, zero when the image's hypercolumns equal the content's.
  """
  _check_samples(samples)
  names = _names(feats, 'image')
  if names != _names(content_feats, 'content') or any(
      tuple(feats[l].shape) != tuple(content_feats[l].shape) for l in names):
    raise ConfigError('STROTSS self-similarity needs the image and content features of the '
                      'same layers at the same sizes')
  if (pixels is None) != (content_pixels is None):
    raise ConfigError('STROTSS self-similarity needs both pixels and content_pixels, or neither')
  base = _base(feats, pixels, 'image')
  if pixels is not None and tuple(pixels.shape) != tuple(content_pixels.shape):
    raise ConfigError(f'STROTSS self-similarity: image pixels {pixels.shape} and content '
                      f'pixels {content_pixels.shape} differ in size')
  rows, cols = sample_positions(key, *base, samples)
  v = channel_weights(feats, pixels is not None, layer_weights, feature_scale)
  x = hypercolumns(feats, pixels, rows, cols) * v
  c = jax.lax.stop_gradient(hypercolumns(content_feats, content_pixels, rows, cols) * v)
  return jnp.sum(jnp.abs(self_similarity(x) - self_similarity(c))) / samples
