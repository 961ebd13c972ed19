"""Arbitrary-style fast transfer, Ghiasi et al. 2017, AdaIN and WCT behind one interface.

  python run.py --config=configs/arbitrary.py --content=PHOTO|DIR|VIDEO \
      --style=PAINTING[,PAINTING2] --output=OUT.png|OUT_DIR|OUT.mp4

Python: :func:`stylize_arbitrary` (re-exported as ``nst_jax.jobs.fast.stylize_arbitrary``).

* ``method='ghiasi'`` (default): Magenta's pretrained networks (:mod:`nst_jax.models.ghiasi`). Each
  painting is centre-cropped to a square and resized to 256x256 for the style prediction network;
  ``strength`` interpolates between the photo's own embedding (the photo through the same
  predictor) and the painting's, as Magenta's demo does; several paintings mix by a convex
  combination of their embeddings (``style_blend_weights``). A style file (``--style=FILE.npz``,
  :mod:`nst_jax.models.ghiasi_style`, e.g. an embedding refined by
  ``configs/ghiasi_refine_cpu.py``) takes a painting's place: alone, mixed, with ``strength``.
* ``method='adain'``: Huang & Belongie's AdaIN with a decoder trained here (``model`` = its
  directory; :mod:`nst_jax.models.adain`, imported lazily): ``strength`` is the paper's alpha,
  several styles mix their feature statistics, and masks give each region its own painting's
  statistics (the content's statistics taken per region; one decoding), as in the paper.
* ``method='wct'``: Li et al. 2017's whitening and colouring of relu4_1
  (:mod:`nst_jax.models.wct`) with the same decoder (best one pre-trained to reconstruct:
  ``adain.pretrain_steps``); ``strength`` is their alpha; mixing and masks as for AdaIN.

All: ``original_colors`` keeps the photo's colours (the YIQ transform of
:mod:`nst_jax.losses.controls`); ``mask`` (one style) or ``masks`` (one per style) put each
painting's result in its region and keep the photo elsewhere (Ghiasi: by compositing whole results;
AdaIN: per region in feature space); folders and videos go through the feed-forward job's pipeline
(:mod:`nst_jax.jobs.fast`, :mod:`nst_jax.io.video`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
import time
from typing import Any, Optional, Sequence, Union, cast

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from nst_jax.config import arbitrary as arbitrary_schema
from nst_jax.errors import ConfigError, ImageError, NSTError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.io import log
from nst_jax.jobs import media
from nst_jax.losses import controls
from nst_jax.models import ghiasi
from nst_jax.models import ghiasi_style

METHODS = ('ghiasi', 'adain', 'wct')
# The decoder shipped with the repository (float16), used by method=adain and wct when no model
# is given: trained here only to reconstruct photos from relu4_1, which beat the AdaIN-loss
# decoders on unseen pairs (docs/results/2026-12-04-adain.md).
DEFAULT_ADAIN_MODEL = Path(__file__).resolve().parents[2] / 'weights' / 'adain_decoder'
MIN_STYLE_SIDE = 16
MIN_CONTENT_SIDE = 16
# method=wct's pixel level (nst_jax.models.wct.stylize) for the Python API: the config's default
# (its measurement is beside it in nst_jax/config/arbitrary.py).
DEFAULT_WCT_PIXEL_LEVEL = float(arbitrary_schema.arbitrary_config().wct_pixel_level)
# method=adain's decoder-level matching and pixel level, likewise.
DEFAULT_ADAIN_DECODER_MATCHING = bool(arbitrary_schema.arbitrary_config().adain_decoder_matching)
DEFAULT_ADAIN_PIXEL_LEVEL = float(arbitrary_schema.arbitrary_config().adain_pixel_level)


def _split(text: Any) -> list[str]:
  return [t.strip() for t in str(text or '').split(',') if t.strip()]


def blend_weights(weights: Union[str, Sequence[float], np.ndarray, None], n: int) -> np.ndarray:
  """Normalised float32 (n,) blend weights; equal if empty (ConfigError if they do not fit)."""
  if weights is None or (isinstance(weights, str) and not weights.strip()):
    return np.full(n, 1. / n, np.float32)
  try:
    items = ([float(t) for t in _split(weights)] if isinstance(weights, str)
             else [float(t) for t in np.ravel(weights)])
  except (TypeError, ValueError):
    raise ConfigError(f'style_blend_weights must be numbers, got {weights!r}') from None
  w = np.asarray(items, np.float64)
  if w.shape != (n,):
    raise ConfigError(f'style_blend_weights has {w.size} weight(s) for {n} style image(s); give '
                      f'one per style')
  if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
    raise ConfigError(f'style_blend_weights must be >= 0 with a positive sum, got '
                      f'{[float(v) for v in w]}')
  return (w / w.sum()).astype(np.float32)


def adain_model(model: Optional[str]) -> str:
  """The AdaIN decoder directory: ``model``, else the shipped one; ConfigError if neither."""
  if model:
    return str(model)
  if (DEFAULT_ADAIN_MODEL / 'model.npz').is_file():
    return str(DEFAULT_ADAIN_MODEL)
  raise ConfigError('method=adain needs a trained decoder: --model=MODEL_DIR (train one with '
                    'run.py --config=configs/adain2017.py --output=DIR)')


def _check_unit(value: Any, name: str) -> float:
  """``value`` as a float in [0, 1]; ConfigError naming ``name`` otherwise."""
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise ConfigError(f'{name} must be a number in [0, 1], got {value!r}') from None
  if not 0. <= v <= 1.:
    raise ConfigError(f'{name} must be in [0, 1], got {v:g}')
  return v


def check_pixel_level(level: Any, name: str = 'wct_pixel_level') -> float:
  return _check_unit(level, name)


def check_strength(strength: Any) -> float:
  return _check_unit(strength, 'strength')


def validate(config: ml_collections.ConfigDict) -> None:
  """One-line ConfigError for an impossible arbitrary config (before any file is read)."""
  if config.method not in METHODS:
    raise ConfigError(f'unknown method {config.method!r}; choose one of {", ".join(METHODS)}')
  if not config.content:
    raise ConfigError('the arbitrary job needs --content=PHOTO, a folder of photos or a video')
  styles = _split(config.style)
  if not styles:
    raise ConfigError('the arbitrary job needs --style=PAINTING (several: comma separated)')
  if config.method != 'ghiasi' and any(map(ghiasi_style.is_style_file, styles)):
    raise ConfigError('style files (.npz) hold Ghiasi embeddings; use them with method=ghiasi')
  check_strength(config.strength)
  blend_weights(config.style_blend_weights, len(styles))
  if config.mask and config.masks:
    raise ConfigError('give mask (one style) or masks (one per style), not both')
  if config.mask and len(styles) > 1:
    raise ConfigError(f'mask is for one style; with {len(styles)} styles give masks=M1,M2,... '
                      '(one region per style) or no mask to blend them')
  if config.masks and len(_split(config.masks)) != len(styles):
    raise ConfigError(f'{len(_split(config.masks))} masks for {len(styles)} styles; give one '
                      'mask per --style image')
  if int(config.size) < 0:
    raise ConfigError(f'size must be >= 0 (0 = the source size), got {config.size}')
  if int(config.batch_size) < 1:
    raise ConfigError(f'batch_size must be >= 1, got {config.batch_size}')
  if not 0. <= float(config.temporal_smoothing) < 1.:
    raise ConfigError(f'temporal_smoothing must be in [0, 1), got {config.temporal_smoothing}')
  if int(config.max_frames) < 0:
    raise ConfigError(f'max_frames must be >= 0, got {config.max_frames}')
  if config.impl not in ('fast', 'direct'):
    raise ConfigError(f'unknown impl {config.impl!r}; choose fast or direct')
  if config.method in ('adain', 'wct'):  # both decode with an AdaIN decoder
    adain_model(config.model)


# --- Inputs ----------------------------------------------------------------------------------

def check_style_file(path: Union[str, Path]) -> None:
  """ImageError if a style image file is fully transparent (it has no colours to transfer)."""
  try:
    with Image.open(path) as img:
      if not ('A' in img.getbands() or 'transparency' in img.info):
        return
      alpha = img.convert('RGBA').getchannel('A')
      transparent = alpha.getextrema()[1] == 0
  except Exception:  # pylint: disable=broad-except  # image_io.load_image reports bad files
    return
  if transparent:
    raise ImageError(f'style image {path} is fully transparent: it has no colours to transfer')


def load_style(path: Union[str, Path], max_pixels: Optional[int] = image_io.DEFAULT_MAX_PIXELS
               ) -> np.ndarray:
  """A painting as uint8 RGB, with the checks of :func:`check_image` and transparency."""
  check_style_file(path)
  return check_image(image_io.load_image(path, max_pixels=max_pixels), f'style image {path}',
                     MIN_STYLE_SIDE)


def check_image(image: np.ndarray, what: str, min_side: int) -> np.ndarray:
  """``image`` as uint8 (H, W, 3); ImageError if it has another shape or a side < min_side."""
  arr = np.asarray(image)
  if arr.ndim != 3 or arr.shape[2] != 3:
    raise ImageError(f'{what} must be an (H, W, 3) RGB array, got shape {arr.shape}')
  if min(arr.shape[:2]) < min_side:
    raise ImageError(f'{what} is {arr.shape[1]}x{arr.shape[0]} px; both sides must be at least '
                     f'{min_side} px')
  return arr if arr.dtype == np.uint8 else image_io.to_uint8(arr)


style_input = ghiasi_style.predictor_input  # the predictor's input (centre square, 256x256)

Style = Union[np.ndarray, ghiasi_style.StyleEmbedding]  # a painting (uint8) or a style file's


def load_style_or_file(path: Union[str, Path],
                       max_pixels: Optional[int] = image_io.DEFAULT_MAX_PIXELS) -> Style:
  """``--style`` entry: a style file (``.npz``, :func:`ghiasi_style.load`) or a painting."""
  if ghiasi_style.is_style_file(path):
    return ghiasi_style.load(path)
  return load_style(path, max_pixels)


def embeddings(params, images: Sequence[Style]) -> jax.Array:
  """Style embeddings (N, 100) of uint8 images (one compiled 256x256 program, batch 1); a style
  file's embedding is taken as it is."""
  return jnp.concatenate([
      jnp.asarray(im.embedding, jnp.float32)[None]
      if isinstance(im, ghiasi_style.StyleEmbedding)
      else ghiasi.predict(params, jnp.asarray(style_input(im))[None]) for im in images], 0)


# --- Stylizing -------------------------------------------------------------------------------

@jax.jit
def _finish(images, stylized, masks, original_colors):
  """Photos uint8 (B, H, W, 3) + K stylized versions (K, B, H, W, 3) in 0..1 -> uint8.

  The K results are composited by the masks (K, H, W) (the photo where their sum is below 1,
  overlaps normalised), then the photo's colours are optionally restored.
  """
  photo = images.astype(jnp.float32)
  total = masks.sum(0)
  weights = masks / jnp.maximum(total, 1.)[None]
  y = photo * (1. - jnp.minimum(total, 1.))[..., None]
  y = y + jnp.einsum('khw,kbhwc->bhwc', weights, stylized * 255.)
  yiq = controls.rgb_to_yiq(photo)
  oc = controls.yiq_to_rgb(yiq.at[..., 0].set(controls.rgb_to_yiq(y)[..., 0]))
  y = jnp.where(original_colors, oc, y)
  return jnp.clip(jnp.round(y), 0, 255).astype(jnp.uint8)


class ArbitraryStylizer:
  """Paintings + options, prepared once (style embeddings / statistics); call on uint8 photos.

  Args:
    styles: uint8 (H, W, 3) paintings (each >= 16 px); with method='ghiasi' also style files'
      embeddings (:class:`nst_jax.models.ghiasi_style.StyleEmbedding`).
    method: 'ghiasi', 'adain' or 'wct'.
    strength: 0..1 (Ghiasi: photo's own embedding -> painting's; AdaIN: alpha).
    style_blend_weights: one weight per style (default equal); ignored with masks.
    masks: None, or one float (H, W) mask per style (any size; resized to each photo).
    original_colors: keep the photo's colours.
    params: Ghiasi params (default :func:`nst_jax.models.ghiasi.load`); for method='adain' the VGG19
      params of the encoder (default :func:`nst_jax.models.weights.load_vgg19`).
    model: AdaIN decoder directory (default: the shipped ``weights/adain_decoder``).
    impl: Ghiasi conv formulation ('fast' or 'direct', same result).
    wct_pixel_level, adain_pixel_level, adain_decoder_matching: the config fields of those
      names (nst_jax/config/arbitrary.py).
  """

  def __init__(self, styles: Sequence[Style], method: str = 'ghiasi', strength: float = 1.,
               style_blend_weights=None, masks: Optional[Sequence[np.ndarray]] = None,
               original_colors: bool = False, params=None, model: Optional[str] = None,
               impl: str = 'fast', wct_pixel_level: float = DEFAULT_WCT_PIXEL_LEVEL,
               adain_pixel_level: float = DEFAULT_ADAIN_PIXEL_LEVEL,
               adain_decoder_matching: bool = DEFAULT_ADAIN_DECODER_MATCHING):
    if method not in METHODS:
      raise ConfigError(f'unknown method {method!r}; choose one of {", ".join(METHODS)}')
    if not styles:
      raise ConfigError('give at least one style image')
    if method != 'ghiasi' and any(isinstance(s, ghiasi_style.StyleEmbedding) for s in styles):
      raise ConfigError('style files (.npz) hold Ghiasi embeddings; use them with method=ghiasi')
    self.styles: list[Any] = [s if isinstance(s, ghiasi_style.StyleEmbedding)
                              else check_image(s, f'style image {i + 1}', MIN_STYLE_SIDE)
                              for i, s in enumerate(styles)]
    self.method, self.strength = method, check_strength(strength)
    self.weights = blend_weights(style_blend_weights, len(self.styles))
    if masks is not None and len(masks) and len(masks) != len(self.styles):
      raise ConfigError(f'{len(masks)} masks for {len(self.styles)} styles; give one mask per '
                        'style')
    self.masks = ([controls.check_mask(m, f'mask {i + 1}') for i, m in enumerate(masks)]
                  if masks is not None and len(masks) else None)
    self.original_colors = bool(original_colors)
    self.impl = impl
    self.wct_pixel_level = check_pixel_level(wct_pixel_level)
    self.adain_pixel_level = check_pixel_level(adain_pixel_level, 'adain_pixel_level')
    self.adain_decoder_matching = bool(adain_decoder_matching)
    self._mask_cache: dict[tuple[int, int], jax.Array] = {}
    if method == 'ghiasi':
      self.params = ghiasi.load() if params is None else params
      embs = embeddings(self.params, self.styles)
      # With masks each style keeps its own embedding; without, they blend into one.
      self.style_embs = embs if self.masks else jnp.tensordot(jnp.asarray(self.weights), embs,
                                                              1)[None]
    else:
      model = adain_model(model)
      try:
        adain = importlib.import_module('nst_jax.models.adain')  # the AdaIN module, loaded lazily
      except ImportError as e:
        raise NSTError('method=adain needs nst_jax/models/adain.py (the AdaIN decoder), which this '
                       'installation lacks; use method=ghiasi') from e
      self._adain = adain
      self.decoder, self.width = adain.load_decoder(model)
      if params is None:
        from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
        params = weights.load_vgg19()
      self.vgg = params
      # WCT: the same decoder after whitening and colouring (nst_jax.models.wct, lazily too);
      # its pixel level serves AdaIN as well.
      self._wct = importlib.import_module('nst_jax.models.wct')
      self._transfer = self._wct if method == 'wct' else adain
      # The paintings' statistics once, not once per photo or video frame.
      self.adain_stats = self._transfer.style_statistics(params, list(self.styles))
      # The pixel level (WCT's and AdaIN's): the paintings' colour statistics, also once.
      self.pixel_level = self.wct_pixel_level if method == 'wct' else self.adain_pixel_level
      self.pixel_stats = (self._wct.pixel_statistics(list(self.styles))
                          if self.pixel_level > 0. else None)
      # AdaIN's decoder-level targets (the paintings' reconstructions), also once.
      self.decoder_stats = (adain.decoder_statistics(self.decoder, params, list(self.styles),
                                                     self.width)
                            if method == 'adain' and self.adain_decoder_matching else None)

  def _masks_for(self, shape: tuple[int, int]) -> jax.Array:
    if shape not in self._mask_cache:
      self._mask_cache[shape] = jnp.asarray(
          np.ones((1, *shape), np.float32) if self.masks is None
          else controls.prepare_masks(self.masks, shape))
    return self._mask_cache[shape]

  def dispatch(self, images: np.ndarray):
    """Starts stylizing a uint8 (B, H, W, 3) batch; returns the (async for Ghiasi) result."""
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ImageError(f'expected uint8 images of shape (B, H, W, 3), got {images.shape}')
    images = images if images.dtype == np.uint8 else image_io.to_uint8(images)
    h, w = images.shape[1:3]
    if min(h, w) < MIN_CONTENT_SIDE:
      raise ImageError(f'content image is {w}x{h} px; both sides must be at least '
                       f'{MIN_CONTENT_SIDE} px')
    if self.method in ('adain', 'wct'):
      return np.stack([self._adain_one(im) for im in images])
    b = images.shape[0]
    embs = jnp.broadcast_to(self.style_embs[:, None], (self.style_embs.shape[0], b,
                                                       ghiasi.EMBEDDING_DIM))
    if self.strength < 1.:  # Magenta: interpolate from the photo's own embedding
      own = embeddings(self.params, list(images))
      embs = ghiasi.interpolate(own[None], embs, self.strength)
    x = jnp.asarray(images, jnp.float32) / 255.
    # One transform program per shape whatever the number of masked styles.
    stylized = jnp.stack([ghiasi.transform(self.params, x, e, impl=self.impl) for e in embs])
    return _finish(images, stylized, self._masks_for((h, w)), jnp.bool_(self.original_colors))

  def _adain_one(self, photo: np.ndarray) -> np.ndarray:
    # With masks: the paper's per-region AdaIN (content statistics per region, each region its
    # own painting's statistics), one feature map decoded once (nst_jax.models.adain.adain_regions).
    masks = None if self.masks is None else np.asarray(self._masks_for(photo.shape[:2]))
    extra = ({'pixel_level': self.pixel_level, 'pixel_stats': self.pixel_stats}
             if self.method == 'wct' else
             {'decoder_matching': self.adain_decoder_matching,
              'decoder_stats': self.decoder_stats})
    out = self._transfer.stylize(self.decoder, photo, list(self.styles), alpha=self.strength,
                                 style_weights=self.weights, vgg_params=self.vgg,
                                 width=self.width, masks=masks, statistics=self.adain_stats,
                                 **extra)
    if self.method == 'adain' and self.pixel_level > 0.:
      out = self._wct.apply_pixel_level(out, list(self.styles), self.weights,
                                        self.strength * self.pixel_level, masks,
                                        self.pixel_stats)
    return controls.original_colors(out, photo) if self.original_colors else out

  def __call__(self, images: np.ndarray) -> np.ndarray:
    out = np.asarray(self.dispatch(images))
    return out[0] if np.asarray(images).ndim == 3 else out


def stylize_arbitrary(content: np.ndarray, style: Union[Style, Sequence[Style]],
                      method: str = 'ghiasi', strength: float = 1.0,
                      style_blend_weights: Optional[Sequence[float]] = None,
                      masks: Optional[Sequence[np.ndarray]] = None, original_colors: bool = False,
                      params=None, model: Optional[str] = None, impl: str = 'fast',
                      wct_pixel_level: Optional[float] = None,
                      adain_pixel_level: Optional[float] = None,
                      adain_decoder_matching: Optional[bool] = None) -> np.ndarray:
  """Stylizes a photo with any painting(s) in one forward pass.

  Args:
    content: uint8 RGB photo (H, W, 3) (or a batch (B, H, W, 3)), any size >= 16 px.
    style: one uint8 (H, W, 3) painting or a list of them (each >= 16 px); Ghiasi: also
      style files' embeddings (:func:`nst_jax.models.ghiasi_style.load`).
    method: 'ghiasi' (Magenta's pretrained networks) or 'adain' (a decoder trained here).
    strength: 0..1; Ghiasi: from the photo's own embedding (0) to the painting's (1); AdaIN:
      the paper's alpha.
    style_blend_weights: one non-negative weight per style (default equal), normalised.
    masks: optional float (H, W) masks in 0..1, one per style: each style in its region, the
      photo elsewhere (styles are then placed, not blended).
    original_colors: keep the photo's colours.
    params: Ghiasi params (:func:`nst_jax.models.ghiasi.load`; default: the shared ONNX, converted
      once); method='adain': VGG19 params (default :func:`nst_jax.models.weights.load_vgg19`).
    model: AdaIN decoder directory (method='adain'; default: the shipped one).
    impl: Ghiasi conv formulation, 'fast' or 'direct' (same result).
    wct_pixel_level, adain_pixel_level, adain_decoder_matching: the config fields of those
      names (default: the config's defaults).

  Returns:
    uint8 RGB of the content's shape.
  """
  single = (isinstance(style, ghiasi_style.StyleEmbedding)
            or isinstance(style, np.ndarray) and style.ndim == 3)
  styles = [cast(Style, style)] if single else list(cast(Sequence[Style], style))
  content = np.asarray(content)
  if content.ndim == 3:
    check_image(content, 'content image', MIN_CONTENT_SIDE)
  level = DEFAULT_WCT_PIXEL_LEVEL if wct_pixel_level is None else wct_pixel_level
  a_level = DEFAULT_ADAIN_PIXEL_LEVEL if adain_pixel_level is None else adain_pixel_level
  matching = (DEFAULT_ADAIN_DECODER_MATCHING if adain_decoder_matching is None
              else adain_decoder_matching)
  return ArbitraryStylizer(styles, method, strength, style_blend_weights, masks, original_colors,
                           params, model, impl, level, a_level, matching)(content)


# --- The job ---------------------------------------------------------------------------------

def run(config: ml_collections.ConfigDict, stylizer: Optional[ArbitraryStylizer] = None,
        **unused: Any) -> dict:
  """The ``arbitrary`` job: stylizes ``config.content`` (photo, folder or video) into
  ``config.output`` with ``config.style``; writes a JSON summary beside it and returns it.

  Folders and videos run through the feed-forward job's pipeline (batches of equal shape,
  device work overlapping file I/O; video via :mod:`nst_jax.io.video`, audio kept).
  """
  del unused
  t0 = time.perf_counter()
  validate(config)
  content, kind = media.content_kind(config.content)
  output = (Path(config.output).expanduser() if config.output else
            Path('outputs') / f'{content.stem}_arbitrary{".mp4" if kind == "video" else ""}'
            f'{".png" if kind == "image" else ""}')
  cap = int(config.max_pixels)
  style_paths = _split(config.style)
  styles = [load_style_or_file(p, cap) for p in style_paths]
  masks = None
  if config.mask or config.masks:
    masks = [controls.check_mask(image_io.load_mask(p, max_pixels=cap), f'mask {p}')
             for p in _split(config.mask or config.masks)]
  # Every input is read or probed, and the weights loaded, before the output is touched.
  if kind == 'video':
    from nst_jax.io import video  # pylint: disable=g-import-not-at-top
    info = video.probe(content)  # an unreadable video fails here, before any work
  elif kind == 'folder':
    files = image_io.list_images(content)
  else:
    image = image_io.load_image(content, size=int(config.size) or None, max_pixels=cap)
  if stylizer is None:
    params = ghiasi.load(config.weights or None) if config.method == 'ghiasi' else None
    stylizer = ArbitraryStylizer(styles, config.method, config.strength,
                                 config.style_blend_weights, masks, config.original_colors,
                                 params, config.model or None, config.impl,
                                 config.wct_pixel_level, config.adain_pixel_level,
                                 config.adain_decoder_matching)
  if kind == 'video':
    fileio.check_writable(output, suffixes=('.mp4', '.m4v', '.mov', '.mkv'))
  elif kind == 'folder':
    fileio.check_writable_dir(output, '--output')
    jobs = media.folder_jobs(files, output, config.skip_existing)
  else:
    fileio.check_writable(output)
  t_loaded = time.perf_counter()
  summary: dict[str, Any] = {
      'config': config.to_dict(), 'kind': kind, 'method': config.method,
      'content': str(content), 'output': str(output),
      'styles': dict(zip(style_paths, map(float, stylizer.weights))),
      'device': str(jax.devices()[0])}
  if kind == 'image':
    t = time.perf_counter()
    result = stylizer(image)
    summary.update(stylize_s=time.perf_counter() - t, shape=list(result.shape[:2]), count=1)
    image_io.save_image(output, result)
    json_path = output.with_suffix('.json')
  elif kind == 'folder':
    summary.update(media.run_folder(config, cast(Any, stylizer), jobs, output) if jobs else
                   dict(count=0, files=[], skipped='all outputs exist (skip_existing)'))
    json_path = output / 'arbitrary.json'
  else:
    summary.update(media.run_video(config, cast(Any, stylizer), content, output, info))
    json_path = output.with_suffix('.json')
  summary['load_s'] = t_loaded - t0
  summary['wall_s'] = time.perf_counter() - t0
  fileio.write_json(json_path, summary)
  if not config.quiet:
    log.info(f'wrote {output} ({summary["count"]} {"frames" if kind == "video" else "images"}, '
             f'{summary["wall_s"]:.1f} s)')
  media.check_failures(summary)  # a folder's unreadable photos: one error after the others
  return summary
