"""Perceptual controls of Gatys et al. 2016 ("Controlling Perceptual Factors in Neural Style
Transfer"): colour, spatial masks and scale. Pure array helpers; the engine wires them in.

Colour (images are RGB float or uint8 in 0..255):
  * :func:`rgb_to_yiq` / :func:`yiq_to_rgb`, :func:`luminance_inputs` (luminance-only transfer:
    grey content, grey style with the content's luminance mean and variance),
    :func:`original_colors` (the result's luminance with the content's I/Q chroma),
  * :func:`match_color`: a linear map of the style's colours onto the content's mean and
    covariance (``cholesky`` or ``eigen`` square root).

Space (masks are float (H, W) in [0, 1]):
  * :func:`load_masks`, :func:`check_mask`, :func:`label_masks` (label image -> R masks),
    :func:`resize_mask`, :func:`hold_mask` (the unstyled remainder),
  * :func:`layer_masks`: masks carried down to every VGG layer's resolution by average pooling
    alongside the network (conv layers keep the size, each pool halves it, 'VALID').

Scale: :func:`parse_stages` (coarse-to-fine schedule), :func:`scale_mix_sources` (coarse
structure from one style, fine texture from another).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import images as image_io
from nst_jax.models import vgg

COLOR_CONTROLS = ('none', 'luminance', 'match_style', 'original_colors')
COLOR_MATCH_MODES = ('cholesky', 'eigen')

# NTSC YIQ (the colour space of Gatys et al. 2016, Sec. 4).
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ.astype(np.float64)).astype(np.float32)
_HI = jax.lax.Precision.HIGHEST


# --- Colour ----------------------------------------------------------------------------------

def rgb_to_yiq(image: jax.Array) -> jax.Array:
  """(..., 3) RGB -> YIQ (same units: Y in 0..255 for 0..255 RGB)."""
  return jnp.einsum('...c,dc->...d', jnp.asarray(image, jnp.float32), _RGB_TO_YIQ, precision=_HI)


def yiq_to_rgb(yiq: jax.Array) -> jax.Array:
  return jnp.einsum('...c,dc->...d', jnp.asarray(yiq, jnp.float32), _YIQ_TO_RGB, precision=_HI)


def gray3(y: jax.Array) -> jax.Array:
  """(H, W) luminance -> (H, W, 3) grey RGB, the input VGG sees in luminance-only transfer."""
  return jnp.repeat(jnp.asarray(y, jnp.float32)[..., None], 3, axis=-1)


def match_luminance(style_y: jax.Array, content_y: jax.Array) -> jax.Array:
  """Affine map of the style's luminance onto the content's mean and standard deviation."""
  s, c = jnp.asarray(style_y, jnp.float32), jnp.asarray(content_y, jnp.float32)
  return (s - s.mean()) * (c.std() / jnp.maximum(s.std(), 1e-6)) + c.mean()


def luminance_inputs(content: jax.Array, styles: Sequence[jax.Array]
                     ) -> tuple[jax.Array, list[jax.Array]]:
  """Luminance-only transfer inputs: grey content and grey, luminance-matched styles."""
  cy = rgb_to_yiq(content)[..., 0]
  return gray3(cy), [gray3(match_luminance(rgb_to_yiq(s)[..., 0], cy)) for s in styles]


def original_colors(result: np.ndarray, content: np.ndarray) -> np.ndarray:
  """The result's luminance with the content's chroma (I, Q): uint8 (H, W, 3).

  The post-process of luminance-only transfer, usable on any result; the content is resized to
  the result's size if needed.
  """
  result = np.asarray(result)
  content = image_io.resize_image(content, shape=result.shape[:2], max_pixels=None) if (
      np.asarray(content).shape[:2] != result.shape[:2]) else np.asarray(content)
  yiq = rgb_to_yiq(content)
  yiq = yiq.at[..., 0].set(rgb_to_yiq(result)[..., 0])
  return image_io.to_uint8(np.asarray(yiq_to_rgb(yiq)))


def _sqrt_psd(cov: jax.Array, mode: str, inverse: bool = False) -> jax.Array:
  """A square root ``A`` with ``A A^T = cov`` (or of ``cov^-1`` if inverse)."""
  if mode == 'cholesky':
    l = jnp.linalg.cholesky(cov)
    return jnp.linalg.inv(l) if inverse else l
  if mode == 'eigen':
    vals, vecs = jnp.linalg.eigh(cov)
    vals = jnp.maximum(vals, 1e-12) ** (-0.5 if inverse else 0.5)
    return (vecs * vals) @ vecs.T
  raise ConfigError(f'unknown color_match_mode {mode!r}; choose one of '
                    f'{", ".join(COLOR_MATCH_MODES)}')


def match_color(style: jax.Array, content: jax.Array, mode: str = 'cholesky',
                eps: float = 1e-5) -> jax.Array:
  """Maps the style's colours onto the content's mean and covariance (Gatys et al. 2016, 4.2).

  ``x' = A (x - mu_s) + mu_c`` with ``A Sigma_s A^T = Sigma_c``: ``cholesky`` uses
  ``A = L_c L_s^-1`` (Cholesky factors), ``eigen`` the symmetric square roots
  ``A = Sigma_c^1/2 Sigma_s^-1/2`` (Hertzmann et al.'s image analogies). Returns float32
  (H, W, 3), not clipped (clipping would break the matched statistics).
  """
  s = jnp.asarray(style, jnp.float32).reshape(-1, 3)
  c = jnp.asarray(content, jnp.float32).reshape(-1, 3)
  def stats(x):
    mu = x.mean(0)
    d = x - mu
    return mu, jnp.matmul(d.T, d, precision=_HI) / x.shape[0] + eps * jnp.eye(3)
  mu_s, cov_s = stats(s)
  mu_c, cov_c = stats(c)
  a = jnp.matmul(_sqrt_psd(cov_c, mode), _sqrt_psd(cov_s, mode, inverse=True), precision=_HI)
  out = jnp.matmul(s - mu_s, a.T, precision=_HI) + mu_c
  return out.reshape(jnp.shape(style))


# --- Space -----------------------------------------------------------------------------------

def check_mask(mask: np.ndarray, name: str = 'mask') -> np.ndarray:
  """Returns ``mask`` as float32 (H, W) in [0, 1]; ImageError if it is empty (all black)."""
  mask = np.asarray(mask, np.float32)
  if mask.ndim != 2 or 0 in mask.shape:
    raise ImageError(f'{name} must be a non-empty (H, W) array, got shape {mask.shape}')
  if not np.all(np.isfinite(mask)):
    raise ImageError(f'{name} contains NaN or Inf values')
  mask = np.clip(mask, 0., 1.)
  if mask.sum() < 1.:
    raise ImageError(f'{name} is empty (all black): it selects no pixels to stylize')
  return mask


def resize_mask(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Bilinear resize of a float (H, W) mask to ``shape`` = (H', W')."""
  mask = np.asarray(mask, np.float32)
  if tuple(mask.shape) == tuple(shape):
    return mask
  pil = Image.fromarray(np.ascontiguousarray(mask))
  return np.clip(np.asarray(pil.resize((shape[1], shape[0]), Image.BILINEAR)), 0., 1.)


def load_masks(paths: Sequence[str], max_pixels: Optional[int] = None) -> list[np.ndarray]:
  """Reads mask files (white = selected) at their own size; see :func:`prepare_masks`."""
  return [image_io.load_mask(p, max_pixels=max_pixels) for p in paths]


def _split(text: str, keep_empty: bool = False) -> list[str]:
  items = [t.strip() for t in str(text or '').split(',')]
  return items if keep_empty else [t for t in items if t]


def config_masks(config: Any, n_styles: int) -> tuple[Optional[list[np.ndarray]],
                                                  Optional[list[Optional[np.ndarray]]]]:
  """Reads the mask files a config names: (region masks or None, style masks or None).

  ``mask`` (one region), ``masks`` (one per style image) or ``labels`` (a label image, one region
  per colour) give the region masks; ``style_masks`` has one entry per style image, where an
  empty entry or ``none`` means the whole style image.
  """
  cap = int(config.max_pixels)
  load = lambda p: check_mask(image_io.load_mask(p, max_pixels=cap), f'mask {p}')
  masks = None
  if config.mask:
    masks = [load(config.mask)]
  elif config.masks:
    masks = [load(p) for p in _split(config.masks)]
  elif config.labels:
    labels, colours = label_masks(image_io.load_image(config.labels, max_pixels=cap))
    if len(colours) < 2:
      raise ImageError(f'label image {config.labels} has a single colour: nothing to separate')
    masks = list(labels)
  style_masks = None
  if config.style_masks:
    paths = _split(config.style_masks, keep_empty=True)
    if len(paths) != n_styles:
      raise ConfigError(f'{len(paths)} style_masks for {n_styles} style images (leave an '
                        f'entry empty to use a whole style image)')
    style_masks = [None if p.lower() in ('', 'none') else load(p) for p in paths]
  return masks, style_masks


def prepare_masks(masks: Sequence[np.ndarray], shape: Sequence[int], names: Sequence[str] = ()
                  ) -> np.ndarray:
  """Resizes masks to ``shape`` and checks each is non-empty there: (R, H, W) float32."""
  names = list(names) or [f'mask {i + 1}' for i in range(len(masks))]
  out = []
  for mask, name in zip(masks, names):
    m = np.asarray(mask, np.float32)
    if m.ndim == 3:  # An RGB mask array: use its luminance.
      m = np.asarray(rgb_to_yiq(m)[..., 0]) / (255. if m.max() > 1. else 1.)
    check_mask(m, name)
    out.append(check_mask(resize_mask(m, shape), f'{name} (resized to {shape[0]}x{shape[1]})'))
  return np.stack(out)


def label_masks(labels: np.ndarray, min_fraction: float = 0.002, tolerance: float = 48.
                ) -> tuple[np.ndarray, list[tuple[int, ...]]]:
  """Splits a label image into one mask per colour: ((R, H, W) float32, colours).

  Labels are the colours covering at least ``min_fraction`` of the image, most frequent first,
  skipping those within ``tolerance`` (RGB distance) of a label already taken (JPEG noise); every
  pixel joins its nearest label (anti-aliased edges). Regions come sorted by colour value, so
  black (e.g. a background) comes before white.
  """
  arr = np.asarray(labels)
  arr = arr[..., None] if arr.ndim == 2 else arr
  flat = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
  colours, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
  centres = []
  for k in np.argsort(-counts, kind='stable'):
    if counts[k] < min_fraction * flat.shape[0] and centres:
      break
    if all(np.linalg.norm(colours[k] - colours[c]) > tolerance for c in centres):
      centres.append(k)
  centres = sorted(centres, key=lambda k: tuple(colours[k]))
  dist = np.sum((colours[:, None, :] - colours[None, centres, :]) ** 2, axis=-1)
  region = np.argmin(dist, axis=1)[inverse.reshape(-1)].reshape(arr.shape[:2])
  masks = np.stack([(region == r).astype(np.float32) for r in range(len(centres))])
  return masks, [tuple(int(v) for v in colours[k]) for k in centres]


def hold_mask(masks: np.ndarray) -> np.ndarray:
  """The pixels no styled region covers, ``clip(1 - sum_r mask_r, 0, 1)``: held to the content."""
  return np.clip(1. - np.sum(np.asarray(masks, np.float32), axis=0), 0., 1.)


# --- Scale -----------------------------------------------------------------------------------

# stages='auto': coarse-to-fine only where the quality-at-time curves showed it ahead of one
# scale (docs/results/2026-12-03-time-to-quality-512.md: at 512 px, 256:75,512:50 beat 125 steps
# at 512 on both pairs, while 50-75 steps were better spent at one scale).
AUTO_STAGES = 'auto'
AUTO_MIN_SIZE = 257      # ours: at 256 px one scale (the 256 px curves)
AUTO_MIN_STEPS = 125     # ours: 50- and 75-step schedules lost to one scale at 512 px
AUTO_COARSE_SHARE = 0.6  # ours: 75 of 125 steps at the coarse size


def auto_stages(size: int, num_steps: int) -> list[tuple[int, int]]:
  """``stages='auto'``: [] (one scale) at most 256 px or under 125 steps; else 60 % of the steps
  at half the size (at least 256 px) and the rest at ``size``."""
  if size < AUTO_MIN_SIZE or num_steps < AUTO_MIN_STEPS:
    return []
  coarse = round(AUTO_COARSE_SHARE * num_steps)
  return [(max(256, size // 2), coarse), (size, num_steps - coarse)]


def parse_stages(text: str, size: int = 0, num_steps: int = 0) -> list[tuple[int, int]]:
  """``'256:200,512:100'`` -> [(256, 200), (512, 100)]: longest side and steps per stage.
  ``'auto'``: :func:`auto_stages` of ``size`` and ``num_steps``."""
  if str(text).strip() == AUTO_STAGES:
    return auto_stages(int(size), int(num_steps))
  stages = []
  for item in [t.strip() for t in str(text or '').split(',') if t.strip()]:
    try:
      size, steps = (int(v) for v in item.split(':'))
    except ValueError:
      raise ConfigError(f'stages must look like "256:200,512:100" (size:steps,...) or be '
                        f'"auto", got {text!r}') from None
    if size <= 0 or steps < 0:
      raise ConfigError(f'stage {item!r}: size must be positive and steps >= 0')
    stages.append((size, steps))
  return stages


def scale_mix_sources(style_layers: Sequence[str], mix_layer: str) -> list[int]:
  """Per style layer, the index of the style image it takes its Gram from when mixing scales.

  Layers at or deeper than ``mix_layer`` (coarse structure) use style 0, shallower layers (fine
  texture) use style 1.
  """
  split = vgg.layer_index(mix_layer)
  return [0 if vgg.layer_index(l) >= split else 1 for l in style_layers]
