"""The metrics papers report for style transfer, as pure jitted JAX functions, computed the same
way for every method.

Per image (:func:`image_metrics`, one VGG19 pass per image; keys :data:`METRICS`):

* ``style_gram``: per-layer relative Gram distance to the painting (:func:`gram_distance`),
* ``style_mean_std``: relative distance of the channel means and standard deviations
  (:func:`mean_std_distance`),
* ``style_hist``: relative 1-D Wasserstein distance of each channel's whole feature distribution
  to the painting's (:func:`feature_histogram_distance`),
* ``content``: relative feature distance to the photo at conv4_2 (:func:`content_distance`),
* ``cfsd``: StyleID's content feature structural distance (:func:`cfsd`),
* ``ssim`` / ``edge_ssim``: SSIM of the luminances / of their Sobel edge maps against the photo
  (:func:`ssim`, :func:`edge_ssim`),
* ``hist_hellinger`` / ``hist_swd``: colour distances to the painting
  (:mod:`nst_jax.evaluation.color`).

Per video: :func:`video_metrics` (flicker ratio, warping error; :mod:`nst_jax.evaluation.video`).

All are distances (lower is better, 0 for identical images) except SSIM and edge-SSIM (higher is
better, 1 for identical images): :data:`HIGHER_IS_BETTER`. Images are RGB in 0..255, NHWC; the
building blocks take leading batch axes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ImageError
from nst_jax.evaluation import color
from nst_jax.evaluation.video import video_metrics  # noqa: F401  (re-exported)
from nst_jax.io import images as image_io
from nst_jax.io import log
from nst_jax.losses import controls
from nst_jax.losses import distribution
from nst_jax.losses import gram as gram_lib
from nst_jax.losses import sorting
from nst_jax.models import vgg

STYLE_LAYERS = ('conv1_1', 'conv2_1', 'conv3_1', 'conv4_1', 'conv5_1')
CONTENT_LAYER = 'conv4_2'
CFSD_LAYER = 'relu3_1'
METRICS = ('style_gram', 'style_mean_std', 'style_hist', 'content', 'cfsd', 'ssim', 'edge_ssim',
           'hist_hellinger', 'hist_swd')
HIGHER_IS_BETTER = {name: name in ('ssim', 'edge_ssim') for name in METRICS}

# SSIM settings of Wang et al. 2004, Sec. III-B: an 11x11 circular-symmetric Gaussian window of
# sigma 1.5 (radius int(3.5 * 1.5 + 0.5) = 5, as scipy truncates), K1 = 0.01, K2 = 0.03,
# population (co)variances; the mean is over the positions whose window lies inside the image.
# These are scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=255), the test reference.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

# StyleID's CFSD runs torchvision's VGG19 on inputs normalised to unit std ((x/255 - mean)/std);
# nst_jax's VGG19 (converted Caffe/Keras weights) takes 0..255 pixels minus the mean pixel. The
# features are multiplied by 1 / (255 * 0.226) (0.226: the mean of torchvision's std) so the
# softmax temperature sees activations of about the magnitude StyleID's network gives; CFSD is not
# scale-invariant, so values are comparable between nst_jax runs, not to StyleID's tables.
CFSD_FEATURE_SCALE = 1. / (255. * 0.226)
# Rows of the (N, N) self-similarity matrices computed at once (memory: 2 x chunk x N floats).
_CFSD_CHUNK_ELEMENTS = 1 << 21
_HI = jax.lax.Precision.HIGHEST
_TINY = 1e-12


# --- Structure against the photo: SSIM and edge-SSIM ------------------------------------------

def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
  """The normalised 1-D Gaussian of ``sigma``, radius ``int(truncate * sigma + 0.5)``."""
  r = int(truncate * sigma + 0.5)
  x = np.arange(-r, r + 1, dtype=np.float64)
  k = np.exp(-0.5 * np.square(x / sigma))
  return (k / k.sum()).astype(np.float32)


def _filter_valid(x: jax.Array, k: np.ndarray) -> jax.Array:
  """Separable 'VALID' filtering of (B, H, W) maps by the 1-D kernel ``k`` in both axes."""
  dn = ('NHWC', 'HWIO', 'NHWC')
  y = x[..., None]
  kk = jnp.asarray(k)
  y = jax.lax.conv_general_dilated(y, kk.reshape(-1, 1, 1, 1), (1, 1), 'VALID',
                                   dimension_numbers=dn, precision=_HI)
  y = jax.lax.conv_general_dilated(y, kk.reshape(1, -1, 1, 1), (1, 1), 'VALID',
                                   dimension_numbers=dn, precision=_HI)
  return y[..., 0]


def ssim(x: jax.Array, y: jax.Array, data_range: float = 255., sigma: float = SSIM_SIGMA,
         truncate: float = SSIM_TRUNCATE) -> jax.Array:
  """Mean structural similarity of (..., H, W) single-channel images -> (...); 1 = identical.

  Source: Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to
  Structural Similarity", IEEE TIP 2004, Eq. 13 with the Gaussian window of Sec. III-B (see
  :data:`SSIM_SIGMA`); the same numbers as scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
  """
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  k = gaussian_window(sigma, truncate)
  *lead, h, w = x.shape
  if min(h, w) < k.size:
    raise ImageError(f'SSIM needs images of at least {k.size}x{k.size} pixels, got {h}x{w}')
  # Centring both images on one shared constant changes no statistic below but keeps float32's
  # E[x^2] - E[x]^2 cancellation small; the luminance term gets the constant back.
  shift = 0.5 * (jnp.mean(x, axis=(-2, -1), keepdims=True)
                 + jnp.mean(y, axis=(-2, -1), keepdims=True))
  xc, yc = (x - shift).reshape(-1, h, w), (y - shift).reshape(-1, h, w)
  n = xc.shape[0]
  maps = _filter_valid(jnp.concatenate([xc, yc, xc * xc, yc * yc, xc * yc]), k)
  mx, my, mxx, myy, mxy = (maps[i * n:(i + 1) * n] for i in range(5))
  vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
  s = shift.reshape(-1, 1, 1)
  mx, my = mx + s, my + s
  c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
  smap = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
  return jnp.mean(smap, axis=(-2, -1)).reshape(lead)


def luminance(image: jax.Array) -> jax.Array:
  """(..., H, W, 3) RGB -> (..., H, W) luminance Y of YIQ (Rec. 601 weights), 0..255."""
  return controls.rgb_to_yiq(image)[..., 0]


def sobel_magnitude(y: jax.Array) -> jax.Array:
  """Sobel gradient magnitude of (..., H, W) maps, in the maps' units.

  ``sqrt((G_x^2 + G_y^2) / 2)`` with the kernels ``[1, 0, -1]`` x ``[1, 2, 1] / 4`` and
  symmetric (half-sample) padding: scikit-image's ``filters.sobel`` (its test reference), whose
  values stay within the input's range.
  """
  y = jnp.asarray(y, jnp.float32)
  pad = [(0, 0)] * (y.ndim - 2) + [(1, 1), (1, 1)]
  p = jnp.pad(y, pad, mode='symmetric')
  dr = p[..., 2:, :] - p[..., :-2, :]
  gr = (dr[..., :, :-2] + 2. * dr[..., :, 1:-1] + dr[..., :, 2:]) * 0.25
  dc = p[..., :, 2:] - p[..., :, :-2]
  gc = (dc[..., :-2, :] + 2. * dc[..., 1:-1, :] + dc[..., 2:, :]) * 0.25
  return jnp.sqrt(0.5 * (jnp.square(gr) + jnp.square(gc)))


def edge_ssim(x: jax.Array, y: jax.Array, data_range: float = 255.) -> jax.Array:
  """SSIM between the Sobel edge maps of (..., H, W) luminances -> (...); 1 = identical.

  Source: the edge-based SSIM of Chen, Yang & Xie, "Edge-Based Structural Similarity for Image
  Quality Assessment", ICASSP 2006 (SSIM's structure comparison on gradient maps), here as the
  full :func:`ssim` of the :func:`sobel_magnitude` maps: it rewards keeping the photo's edges
  whatever the colours and textures laid over them.
  """
  return ssim(sobel_magnitude(x), sobel_magnitude(y), data_range)


# --- Feature distances: style, content, CFSD --------------------------------------------------

def _norm(x: jax.Array, axes: Sequence[int]) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(axes)))


def gram_distance(features: Mapping[str, jax.Array], style: Mapping[str, jax.Array],
                  layers: Sequence[str] = STYLE_LAYERS) -> jax.Array:
  """Mean over ``layers`` of ``||G(out) - G(style)||_F / ||G(style)||_F`` -> (...).

  Source: the Gram matrices of Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional
  Neural Networks", CVPR 2016, Eq. 3, area-normalised (:func:`nst_jax.losses.gram.gram`) so
  images of different sizes compare; each layer's distance is relative to the painting's Gram,
  so every layer weighs the same whatever its activation scale. Features are (..., h, w, C).
  """
  per_layer = []
  for l in layers:
    gs = gram_lib.gram(style[l])
    per_layer.append(_norm(gram_lib.gram(features[l]) - gs, (-2, -1))
                     / jnp.maximum(_norm(gs, (-2, -1)), _TINY))
  return jnp.mean(jnp.stack(per_layer), axis=0)


def mean_std_distance(features: Mapping[str, jax.Array], style: Mapping[str, jax.Array],
                      layers: Sequence[str] = STYLE_LAYERS) -> jax.Array:
  """Mean over ``layers`` of ``(||mu_o - mu_s|| + ||sigma_o - sigma_s||) / (||mu_s|| +
  ||sigma_s||)`` of the per-channel spatial means and standard deviations -> (...).

  Source: the style loss of Huang & Belongie, "Arbitrary Style Transfer in Real-time with
  Adaptive Instance Normalization", ICCV 2017, Eq. 11 (L2 distances of channel means and
  standard deviations summed over relu1_1..relu4_1), made relative per layer like
  :func:`gram_distance`, with population standard deviations.
  """
  per_layer = []
  for l in layers:
    fo, fs = features[l], style[l]
    mo, ms = jnp.mean(fo, axis=(-3, -2)), jnp.mean(fs, axis=(-3, -2))
    so, ss = jnp.std(fo, axis=(-3, -2)), jnp.std(fs, axis=(-3, -2))
    num = _norm(mo - ms, (-1,)) + _norm(so - ss, (-1,))
    per_layer.append(num / jnp.maximum(_norm(ms, (-1,)) + _norm(ss, (-1,)), _TINY))
  return jnp.mean(jnp.stack(per_layer), axis=0)


def feature_histogram_distance(features: Mapping[str, jax.Array], style: Mapping[str, jax.Array],
                               layers: Sequence[str] = STYLE_LAYERS) -> jax.Array:
  """Mean over ``layers`` of ``sqrt(sum_c W2^2(out_c, style_c) / sum_c E[style_c^2])`` -> (...).

  ``W2^2(out_c, style_c)`` is the squared 1-D Wasserstein distance between channel c's feature
  values over the output's positions and over the painting's: the mean squared difference of the
  sorted values, the painting's read at the output's quantiles where the counts differ
  (:func:`nst_jax.losses.distribution.quantiles`). It compares whole per-channel distributions,
  which the Gram and mean/std distances summarise by second moments. Source: the exact histogram
  matching of Risser, Wilmot & Barnes 2017 and Zhang et al. 2022 (EFDM), the 1-D optimal
  transport of Heitz et al. 2021, Sec. 3, whose texture comparison it serves; relative to the
  painting's mean square per layer, like :func:`gram_distance`. Features are (..., h, w, C).
  """
  per_layer = []
  for l in layers:
    fo, fs = features[l], style[l]
    xo = fo.reshape(fo.shape[:-3] + (-1, fo.shape[-1]))
    xs = fs.reshape(fs.shape[:-3] + (-1, fs.shape[-1]))
    so = sorting.sort(xo, axis=-2)
    ss = jnp.moveaxis(sorting.sort(xs, axis=-2), -2, 0)
    t = jnp.moveaxis(distribution.quantiles(ss, xo.shape[-2]), 0, -2)
    w2 = jnp.sum(jnp.mean(jnp.square(so - t), axis=-2), axis=-1)
    ref = jnp.sum(jnp.mean(jnp.square(xs), axis=-2), axis=-1)
    per_layer.append(jnp.sqrt(w2 / jnp.maximum(ref, _TINY)))
  return jnp.mean(jnp.stack(per_layer), axis=0)


def content_distance(features: jax.Array, content: jax.Array) -> jax.Array:
  """``||F(out) - F(content)||_F / ||F(content)||_F`` of (..., h, w, C) features -> (...).

  Source: the content loss of Gatys et al. 2016 (Eq. 1, at conv4_2 there and in
  :data:`CONTENT_LAYER`), relative to the photo's features so the value does not depend on the
  network's activation scale or the image size.
  """
  return _norm(features - content, (-3, -2, -1)) / jnp.maximum(
      _norm(content, (-3, -2, -1)), _TINY)


def _cfsd_one(fc: jax.Array, fo: jax.Array) -> jax.Array:
  """Sum over rows of KL(softmax(S_c[i]) || softmax(S_o[i])) for (N, C) features."""
  n, c = fc.shape
  rows = min(n, max(1, _CFSD_CHUNK_ELEMENTS // n))
  chunks = -(-n // rows)
  pad = ((0, chunks * rows - n), (0, 0))
  rc = jnp.pad(fc, pad).reshape(chunks, rows, c)
  ro = jnp.pad(fo, pad).reshape(chunks, rows, c)
  valid = (jnp.arange(chunks * rows) < n).reshape(chunks, rows)

  def chunk(args):
    qc, qo, ok = args
    lp = jax.nn.log_softmax(jnp.matmul(qc, fc.T, precision=_HI), axis=-1)
    lq = jax.nn.log_softmax(jnp.matmul(qo, fo.T, precision=_HI), axis=-1)
    # Each row's KL is >= 0; float32 rounding of near-uniform rows can dip below.
    kl = jnp.maximum(jnp.sum(jnp.exp(lp) * (lp - lq), axis=-1), 0.)
    return jnp.sum(jnp.where(ok, kl, 0.))

  return jnp.sum(jax.lax.map(chunk, (rc, ro, valid)))


def cfsd(features: jax.Array, content: jax.Array,
         feature_scale: float = CFSD_FEATURE_SCALE) -> jax.Array:
  """Content feature structural distance of (..., h, w, C) relu3_1 features -> (...).

  Source: Chung, Hyun & Heo, "Style Injection in Diffusion: A Training-free Approach for
  Adapting Large-scale Diffusion Models for Style Transfer" (StyleID), CVPR 2024, Sec. 5.1, as
  computed by jiwoogit/StyleID, evaluation/image_metrics.py (``PatchSimi``, called from
  eval_artfid.py's ``compute_patch_simi``): each image's features ``F`` (N positions x C
  channels, here multiplied by ``feature_scale``, see :data:`CFSD_FEATURE_SCALE`) are divided by
  C, the patch self-similarity ``S = F F^T`` is softmaxed row-wise, and CFSD is
  ``sum_i KL(softmax(S_content[i]) || softmax(S_out[i]))`` (PyTorch's ``kl_div`` with
  ``reduction='batchmean'`` of one image: a sum over the N rows, so it grows with the image
  area; compare at equal sizes). 0 when the self-similarities agree.
  """
  *lead, h, w, c = content.shape
  scale = feature_scale / c
  fc = (jnp.asarray(content, jnp.float32) * scale).reshape(-1, h * w, c)
  fo = (jnp.asarray(features, jnp.float32) * scale).reshape(-1, h * w, c)
  return jax.vmap(_cfsd_one)(fc, fo).reshape(lead)


# --- All of them for one stylised image -------------------------------------------------------

_STYLE = vgg.parse_layers(STYLE_LAYERS)
_CONTENT = vgg.canonical_layer(CONTENT_LAYER)
_CFSD = vgg.canonical_layer(CFSD_LAYER)
_PAIR_LAYERS = tuple(dict.fromkeys(_STYLE + (_CONTENT, _CFSD)))


@jax.jit
def _image_metrics(params, output: jax.Array, content: jax.Array,
                   style: jax.Array) -> dict[str, jax.Array]:
  pair = jnp.stack([output, content])
  f = vgg.features(params, pair, _PAIR_LAYERS, pooling='max')
  fs = vgg.features(params, style[None], _STYLE, pooling='max')
  fo = {l: f[l][0] for l in _STYLE}
  fs = {l: fs[l][0] for l in _STYLE}
  y = luminance(pair)
  return {
      'style_gram': gram_distance(fo, fs, _STYLE),
      'style_mean_std': mean_std_distance(fo, fs, _STYLE),
      'style_hist': feature_histogram_distance(fo, fs, _STYLE),
      'content': content_distance(f[_CONTENT][0], f[_CONTENT][1]),
      'cfsd': cfsd(f[_CFSD][0], f[_CFSD][1]),
      'ssim': ssim(y[0], y[1]),
      'edge_ssim': edge_ssim(y[0], y[1]),
      'hist_hellinger': color.hist_hellinger(output, style),
      'hist_swd': color.sliced_wasserstein(output, style),
  }


def _as_image(image, name: str) -> np.ndarray:
  arr = np.asarray(image)
  if arr.ndim != 3 or arr.shape[-1] != 3:
    raise ImageError(f'{name} must be an (H, W, 3) RGB array, got shape {arr.shape}')
  if min(arr.shape[:2]) < 16:
    raise ImageError(f'{name} must be at least 16x16 pixels (VGG19 pools 4 times before '
                     f'conv5_1), got {arr.shape[0]}x{arr.shape[1]}')
  if arr.dtype != np.uint8 and arr.size and float(np.max(arr)) <= 1.:
    log.warning(f'{name} is a float image with values in 0..1; the metrics expect 0..255')
  return arr.astype(np.float32)


def image_metrics(vgg_params: Mapping, output, content, style) -> dict[str, float]:
  """Every metric of :data:`METRICS` for one stylised image, as Python floats.

  Args:
    vgg_params: VGG19 params (:func:`nst_jax.models.weights.load_vgg19`).
    output: the stylised image, (H, W, 3) RGB, uint8 or float in 0..255.
    content: the photo it was made from; resized to the output's size if it differs
      (:func:`nst_jax.io.images.resize_image`).
    style: the painting, any size.

  Style metrics compare with the painting, content metrics (content, CFSD, SSIM, edge-SSIM)
  with the photo, colour metrics with the painting. One VGG19 pass for the output and the photo
  together and one for the painting, in one jitted program per set of image sizes.
  """
  out = _as_image(output, 'output')
  content = _as_image(content, 'content')
  style = _as_image(style, 'style')
  if content.shape != out.shape:
    content = image_io.resize_image(content, shape=out.shape[:2]).astype(np.float32)
  values = _image_metrics(vgg_params, jnp.asarray(out), jnp.asarray(content), jnp.asarray(style))
  values = jax.device_get(values)
  return {name: float(values[name]) for name in METRICS}
