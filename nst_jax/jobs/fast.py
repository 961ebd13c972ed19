"""Fast (feed-forward) style transfer: one network pass per photo, folder image or video frame.

  python run.py --config=configs/fast.py --content=../shared/images/tubingen.jpg \
      --output=outputs/tubingen_fast.png --config.style_index=7
  python run.py --config=configs/fast.py --model=MODEL_DIR --content=PHOTOS_DIR --output=OUT_DIR
  python run.py --config=configs/fast.py --content=../shared/videos/bunny.mp4 \
      --output=outputs/bunny.mp4 --config.style_index=3:0.5,12:0.5

The model is a trained model directory (``--model``, see :mod:`nst_jax.models.model_dir`) or,
without ``--model``, the built-in 26-style network (``multistyle26``, converted from ONNX on first
use). ``style_index`` picks a style of an N-style model, or a convex mix ``'I:W,J:W'`` (weights are
normalised to sum to 1). Post-processing, in order: ``original_colors`` (the result's luminance with
the photo's colours, :mod:`nst_jax.losses.controls`' YIQ), ``strength`` (linear blend with the
photo), ``mask`` (white = stylized, black = photo). Everything runs inside one jitted function per
input shape, uint8 in and out.

Python::

  from nst_jax import fast
  out = fast.stylize('multistyle26', photo_uint8, style=7)        # or a Model / model dir
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
import time
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.jobs import media
from nst_jax.losses import controls
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks

StyleSpec = Union[None, int, str, Sequence[float], Mapping[int, float], np.ndarray]


def validate(config: ml_collections.ConfigDict) -> None:
  """One-line ConfigError for an impossible fast config (before any work)."""
  if not config.content:
    raise ConfigError('the fast job needs --content=PHOTO, a folder of photos or a video')
  if int(config.size) < 0:
    raise ConfigError(f'size must be >= 0 (0 = the source size), got {config.size}')
  if int(config.batch_size) < 1:
    raise ConfigError(f'batch_size must be >= 1, got {config.batch_size}')
  if not 0. <= float(config.strength) <= 1.:
    raise ConfigError(f'strength must be in [0, 1], got {config.strength}')
  if not 0. <= float(config.temporal_smoothing) < 1.:
    raise ConfigError(f'temporal_smoothing must be in [0, 1), got {config.temporal_smoothing}')
  if int(config.max_frames) < 0:
    raise ConfigError(f'max_frames must be >= 0, got {config.max_frames}')
  if config.impl not in networks.IMPLS:
    raise ConfigError(f'unknown impl {config.impl!r}; choose one of {", ".join(networks.IMPLS)}')


# --- Models and styles -----------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _cached_builtin(name: str) -> model_io.Model:
  return model_io.load_builtin(name)


def get_model(model: Union[None, str, os.PathLike, model_io.Model] = None,
              builtin: str = 'multistyle26') -> model_io.Model:
  """A :class:`~nst_jax.models.model_dir.Model` from a Model, a model directory or a built-in
  name."""
  if isinstance(model, model_io.Model):
    return model
  if model is None or str(model) == '':
    return _cached_builtin(builtin)
  if str(model) in model_io.BUILTINS and not Path(model).exists():
    return _cached_builtin(str(model))
  return model_io.load_model(model)


def style_weights(style: StyleSpec, num_styles: int) -> np.ndarray:
  """A convex (num_styles,) weight vector from an index, ``'I:W,J:W'``, a mapping or a vector.

  Raises:
    ConfigError: index out of range, negative weights, or weights not summing to > 0.
  """
  n = num_styles
  def check_index(i):
    if not 0 <= i < n:
      raise ConfigError(f'style index {i} is out of range: this model has {n} style'
                        f'{"s" if n != 1 else ""} (0..{n - 1})')
    return i
  w = np.zeros(n, np.float64)
  if style is None or (isinstance(style, str) and not style.strip()):
    w[0] = 1.
  elif isinstance(style, (int, np.integer)) and not isinstance(style, bool):
    w[check_index(int(style))] = 1.
  elif isinstance(style, str):
    for part in style.split(','):
      part = part.strip()
      if not part:
        continue
      idx, _, weight = part.partition(':')
      try:
        i, v = int(idx), float(weight) if weight else 1.
      except ValueError:
        raise ConfigError(f'cannot parse style_index {style!r}: use K or a mix like '
                          '3:0.5,12:0.5') from None
      w[check_index(i)] += v
  elif isinstance(style, Mapping):
    for i, v in style.items():
      w[check_index(int(i))] += float(v)
  else:
    w = np.asarray(style, np.float64).reshape(-1)
    if w.shape != (n,):
      raise ConfigError(f'style weights must have {n} entries, got {w.shape[0]}')
  if not np.all(np.isfinite(w)) or np.any(w < 0):
    raise ConfigError(f'style weights must be finite and >= 0, got {_fmt_weights(w)}')
  total = w.sum()
  if not total > 0:
    raise ConfigError(f'style weights must sum to a positive number, got {_fmt_weights(w)}')
  return (w / total).astype(np.float32)


def _fmt_weights(w: np.ndarray) -> str:
  nz = [(i, v) for i, v in enumerate(w) if v != 0]
  return ','.join(f'{i}:{v:g}' for i, v in nz) or 'all zero'


# --- The jitted stylization ------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=('config', 'fast'))
def _stylize_batch(params, images, weights, strength, mask, original_colors, *, config, fast):
  """uint8 (B, H, W, 3) -> uint8 (B, H, W, 3); ``mask`` (H, W) float in [0, 1].

  The options are traced values (one compiled program per config and input shape): the colour
  transform and the blends cost a few elementwise passes next to the network.
  """
  x = images.astype(jnp.float32) / 255.
  y = networks.apply_params(config, params, x, weights, fast) * 255.
  photo = x * 255.
  yiq = controls.rgb_to_yiq(photo)
  oc = controls.yiq_to_rgb(yiq.at[..., 0].set(controls.rgb_to_yiq(y)[..., 0]))
  y = jnp.where(original_colors, oc, y)
  y = photo + (strength * mask)[..., None] * (y - photo)
  return jnp.clip(jnp.round(y), 0, 255).astype(jnp.uint8)


class Stylizer:
  """A model + style + post-processing options; call it on uint8 image batches.

  Device parameters are put once; one compiled program per input shape (jit's cache).
  """

  def __init__(self, model: Union[None, str, os.PathLike, model_io.Model] = None,
               style: StyleSpec = None, strength: float = 1., original_colors: bool = False,
               mask: Optional[np.ndarray] = None, impl: str = 'fast'):
    self.model = get_model(model)
    self.weights = jnp.asarray(style_weights(style, self.model.num_styles))
    if not 0. <= float(strength) <= 1.:
      raise ConfigError(f'strength must be in [0, 1], got {strength}')
    if impl not in networks.IMPLS:
      raise ConfigError(f'unknown impl {impl!r}; choose one of {", ".join(networks.IMPLS)}')
    self.strength = jnp.float32(strength)
    self.original_colors = bool(original_colors)
    self.mask = None if mask is None else controls.check_mask(mask)
    self.fast = impl == 'fast'
    self.params = jax.tree.map(jnp.asarray, self.model.params)
    self._masks: dict[tuple[int, int], jax.Array] = {}

  def _mask_for(self, shape: tuple[int, int]) -> jax.Array:
    if shape not in self._masks:
      self._masks[shape] = jnp.asarray(np.ones(shape, np.float32) if self.mask is None
                                       else controls.resize_mask(self.mask, shape))
    return self._masks[shape]

  def dispatch(self, images: np.ndarray) -> jax.Array:
    """Starts the stylization of a uint8 (B, H, W, 3) batch; returns the (async) device result."""
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ImageError(f'expected uint8 images of shape (B, H, W, 3), got {images.shape}')
    if images.dtype != np.uint8:
      images = image_io.to_uint8(images)
    h, w = images.shape[1:3]
    if min(h, w) < networks.MIN_SIDE:
      raise ImageError(f'image is {w}x{h}; both sides must be at least {networks.MIN_SIDE} px')
    return _stylize_batch(self.params, images, self.weights, self.strength,
                          self._mask_for((h, w)), jnp.bool_(self.original_colors),
                          config=self.model.config, fast=self.fast)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    out = np.asarray(self.dispatch(images))
    return out[0] if np.asarray(images).ndim == 3 else out


def stylize(model: Union[None, str, os.PathLike, model_io.Model], image: np.ndarray,
            style: StyleSpec = None, *, size: Optional[int] = None, strength: float = 1.,
            original_colors: bool = False, mask: Optional[np.ndarray] = None,
            impl: str = 'fast') -> np.ndarray:
  """Stylizes one RGB image (uint8 (H, W, 3), or a batch (B, H, W, 3)) with a feed-forward model.

  Args:
    model: a :class:`~nst_jax.models.model_dir.Model`, a model directory, ``'multistyle26'`` or None
      (the built-in network).
    image: the photo(s), uint8 RGB (floats in 0..255 are rounded).
    style: style index, ``'I:W,J:W'`` mix, {index: weight} or a weight vector (N-style models).
    size: resize the photo's longest side first (None = keep).
    strength: 1 = stylized, 0 = the photo.
    original_colors: keep the photo's colours.
    mask: float (H, W) in [0, 1] (any size; resized): where to stylize.
    impl: 'fast' or 'direct' convolutions (same result).

  Returns:
    uint8 array of the (resized) input's shape.
  """
  image = np.asarray(image)
  if size:
    image = (np.stack([image_io.resize_image(i, size=size) for i in image]) if image.ndim == 4
             else image_io.resize_image(image, size=size))
  return Stylizer(model, style, strength, original_colors, mask, impl)(image)


# --- The job ---------------------------------------------------------------------------------

def run(config: ml_collections.ConfigDict, stylizer: Optional[Stylizer] = None,
        **unused: Any) -> dict:
  """The ``fast`` job: stylizes ``config.content`` (photo, folder or video) into
  ``config.output``; writes a JSON summary beside it and returns it."""
  del unused
  t0 = time.perf_counter()
  validate(config)
  content, kind = media.content_kind(config.content)
  output = (Path(config.output).expanduser() if config.output
            else media.default_output(content, kind))
  if kind == 'video':
    from nst_jax.io import video  # pylint: disable=g-import-not-at-top
    info = video.probe(content)  # an unreadable video fails here, before any work
    if output.suffix.lower() not in ('.mp4', '.m4v', '.mov', '.mkv'):
      raise ImageError(f'{content} is a video: give --output a .mp4 (or .mov/.mkv) file name, '
                       f'not {output}')
    fileio.check_writable(output, suffixes=None)
  elif kind == 'folder':
    all_files = image_io.list_images(content)
    if output.suffix.lower() in fileio.IMAGE_SUFFIXES or media.is_video(output):
      raise ImageError(f'{content} is a folder: give --output a directory, not {output}')
    fileio.check_writable_dir(output, '--output')
    jobs = media.folder_jobs(all_files, output, config.skip_existing)
  else:
    fileio.check_writable(output)
  mask = None
  if config.mask:
    mask = controls.check_mask(image_io.load_mask(config.mask, max_pixels=int(config.max_pixels)),
                               f'mask {config.mask}')
  if stylizer is None:
    stylizer = Stylizer(config.model or config.builtin, config.style_index, config.strength,
                        config.original_colors, mask, config.impl)
  t_loaded = time.perf_counter()
  summary: dict[str, Any] = {
      'config': config.to_dict(), 'kind': kind, 'content': str(content), 'output': str(output),
      'model': stylizer.model.source, 'styles': _style_names(stylizer),
      'device': str(jax.devices()[0])}
  if kind == 'folder' and not jobs:
    summary.update(count=0, files=[], skipped='all outputs exist (skip_existing)')
    json_path = output / 'fast.json'
  elif kind == 'image':
    image = image_io.load_image(content, size=int(config.size) or None,
                                max_pixels=int(config.max_pixels))
    t = time.perf_counter()
    result = stylizer(image)
    summary['stylize_s'] = time.perf_counter() - t  # includes compilation
    image_io.save_image(output, result)
    summary['shape'] = list(result.shape[:2])
    summary['count'] = 1
    json_path = output.with_suffix('.json')
  elif kind == 'folder':
    summary.update(media.run_folder(config, stylizer, jobs, output))
    json_path = output / 'fast.json'
  else:
    summary.update(media.run_video(config, stylizer, content, output, info))
    json_path = output.with_suffix('.json')
  summary['load_s'] = t_loaded - t0
  summary['wall_s'] = time.perf_counter() - t0
  fileio.write_json(json_path, summary)
  what = 'frames' if kind == 'video' else 'images'
  media.report(config, f'wrote {output} ({summary["count"]} {what}, {summary["wall_s"]:.1f} s)')
  media.check_failures(summary)  # a folder's unreadable photos: one error after the others
  return summary


def _style_names(stylizer: Stylizer) -> dict[str, float]:
  w = np.asarray(stylizer.weights)
  return {stylizer.model.styles[i]: round(float(w[i]), 6) for i in np.flatnonzero(w)}
