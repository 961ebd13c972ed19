"""Arbitrary-style fast transfer: one interface over Ghiasi et al. 2017 and AdaIN (the `arbitrary` job).

  python run.py --config=configs/arbitrary.py --content=PHOTO|DIR|VIDEO \
      --style=PAINTING[,PAINTING2] --output=OUT.png|OUT_DIR|OUT.mp4

Python: :func:`stylize_arbitrary` (re-exported as ``nst_jax.fast.stylize_arbitrary``).

* ``method='ghiasi'`` (default): Magenta's pretrained networks (:mod:`nst_jax.ghiasi`). Each
  painting is centre-cropped to a square and resized to 256x256 for the style prediction network;
  ``strength`` interpolates between the photo's own embedding (the photo run through the same
  predictor) and the painting's, as Magenta does; several paintings mix by a convex combination of
  their embeddings (``style_blend_weights``).
* ``method='adain'``: Huang & Belongie's AdaIN with a decoder trained here (``model`` = its
  directory; :mod:`nst_jax.adain`, imported lazily): ``strength`` is the paper's alpha and
  several styles mix their feature statistics.

Both: ``original_colors`` keeps the photo's colours (:func:`nst_jax.controls.original_colors`);
``mask`` / ``masks`` (one per painting) composite each painting's result into its region, the photo
elsewhere; a folder is stylized image by image (outputs ``OUT_DIR/<name>.png``); a video frame by
frame through :mod:`nst_jax.video`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from nst_jax import controls, ghiasi, image_io
from nst_jax.errors import ConfigError, ImageError, NSTError

METHODS = ('ghiasi', 'adain')
MIN_STYLE_SIDE = 16
MIN_CONTENT_SIDE = 16
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')
VIDEO_EXTS = ('.mp4', '.mov', '.avi', '.mkv', '.webm')


# --- Config ----------------------------------------------------------------------------------

def arbitrary_config() -> ml_collections.ConfigDict:
  """Defaults of the `arbitrary` job (validated by :func:`validate_config`)."""
  c = ml_collections.ConfigDict()
  c.job = 'arbitrary'
  c.method = 'ghiasi'  # ghiasi | adain
  c.content = ''  # photo, folder of photos, or video
  c.style = ''  # painting(s), comma separated
  c.output = ''  # image file; a directory for a folder; a video file for a video
  c.strength = 1.0  # 0 = the photo's own embedding / features, 1 = the painting's (Magenta, AdaIN)
  c.style_blend_weights = ''  # one weight per style, comma separated (default: equal)
  c.original_colors = False  # keep the photo's colours (YIQ chroma of the photo)
  c.mask = ''  # one region mask (white = stylized), for a single style
  c.masks = ''  # one mask per style, comma separated (regions; photo where no mask covers)
  c.size = 0  # longest side of the content in px (0 = keep its size)
  c.weights = ''  # Ghiasi: converted .npz or a directory with the two ONNX files (default: shared)
  c.model = ''  # AdaIN: decoder directory written by configs/adain2017.py
  c.max_pixels = image_io.DEFAULT_MAX_PIXELS
  return c


def _weights_list(text: Union[str, Sequence[float], None], n: int) -> np.ndarray:
  """Blend weights as normalised float32 (n,); equal if empty."""
  if text is None or (isinstance(text, str) and not text.strip()):
    return np.full(n, 1. / n, np.float32)
  try:
    items = [float(t) for t in text.split(',') if t.strip()] if isinstance(text, str) else [
        float(t) for t in text]
  except (TypeError, ValueError):
    raise ConfigError(f'style_blend_weights must be numbers, got {text!r}') from None
  w = np.asarray(items, np.float32)
  if w.shape != (n,):
    raise ConfigError(f'style_blend_weights has {w.size} weight(s) for {n} style image(s); give '
                      f'one per --style image')
  if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
    raise ConfigError(f'style_blend_weights must be non-negative with a positive sum, got '
                      f'{list(map(float, w))}')
  return w / w.sum()


def _check_strength(strength: Any) -> float:
  try:
    s = float(strength)
  except (TypeError, ValueError):
    raise ConfigError(f'strength must be a number in 0..1, got {strength!r}') from None
  if not 0. <= s <= 1.:
    raise ConfigError(f'strength must be in 0..1, got {s:g}')
  return s


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks the `arbitrary` job's fields without touching the disk beyond existence checks."""
  if config.get('method') not in METHODS:
    raise ConfigError(f'unknown method {config.get("method")!r}; choose one of '
                      f'{", ".join(METHODS)}')
  if not config.get('content'):
    raise ConfigError('no content given: pass --content=PHOTO|DIR|VIDEO')
  styles = _split(config.get('style'))
  if not styles:
    raise ConfigError('no style given: pass --style=PAINTING[,PAINTING2]')
  if not config.get('output'):
    raise ConfigError('no output given: pass --output=OUT.png (a directory for a folder, a .mp4 '
                      'for a video)')
  _check_strength(config.strength)
  _weights_list(config.get('style_blend_weights'), len(styles))
  if config.get('mask') and config.get('masks'):
    raise ConfigError('give either mask (one region) or masks (one per style), not both')
  if config.get('mask') and len(styles) > 1:
    raise ConfigError('mask is for a single style; with several styles pass masks=M1,M2 (one '
                      'per style)')
  if config.get('masks') and len(_split(config.masks)) != len(styles):
    raise ConfigError(f'{len(_split(config.masks))} masks for {len(styles)} styles; give one '
                      f'mask per --style image')
  if int(config.get('size') or 0) < 0:
    raise ConfigError(f'size must be >= 0 (0 keeps the content size), got {config.size}')
  if config.method == 'adain' and not config.get('model'):
    raise ConfigError('method=adain needs a trained decoder: --model=MODEL_DIR (train one with '
                      'run.py --config=configs/adain2017.py --output=DIR)')


def _split(text) -> list[str]:
  return [t.strip() for t in str(text or '').split(',') if t.strip()]


# --- Inputs ----------------------------------------------------------------------------------

def check_style_image(path: Union[str, os.PathLike]) -> None:
  """Raises ImageError for a style image that is fully transparent (its colours are undefined)."""
  try:
    with Image.open(path) as img:
      if 'A' in img.getbands() or 'transparency' in img.info:
        alpha = img.convert('RGBA').getchannel('A')
        if alpha.getextrema()[1] == 0:
          raise ImageError(f'style image {path} is fully transparent: it has no colours to '
                           f'transfer')
  except ImageError:
    raise
  except Exception:  # pylint: disable=broad-except  # load_image reports unreadable files
    pass


def _check_image(image: np.ndarray, what: str, min_side: int) -> np.ndarray:
  arr = np.asarray(image)
  if arr.ndim != 3 or arr.shape[2] != 3:
    raise ImageError(f'{what} must be an (H, W, 3) RGB array, got shape {arr.shape}')
  if min(arr.shape[:2]) < min_side:
    raise ImageError(f'{what} is {arr.shape[1]}x{arr.shape[0]} px; it must be at least '
                     f'{min_side} px on each side')
  return arr if arr.dtype == np.uint8 else image_io.to_uint8(arr)


def style_input(style: np.ndarray, size: int = ghiasi.STYLE_SIZE) -> np.ndarray:
  """A painting as the predictor's input: centre square crop, resized to size^2, float 0..1."""
  h, w = style.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = style[top:top + side, left:left + side]
  return image_io.resize_image(square, shape=(size, size)).astype(np.float32) / 255.


# --- Ghiasi ----------------------------------------------------------------------------------

def ghiasi_embedding(params, images: Sequence[np.ndarray], weights: np.ndarray) -> jnp.ndarray:
  """The convex mix of the images' style embeddings: (1, 100)."""
  embs = [ghiasi.predict(params, jnp.asarray(style_input(im))[None]) for im in images]
  return jnp.tensordot(jnp.asarray(weights), jnp.concatenate(embs, 0), 1)[None]


def _ghiasi_stylizer(params, styles: Sequence[np.ndarray], weights: np.ndarray, strength: float
                     ) -> Callable[[np.ndarray], np.ndarray]:
  """content uint8 -> stylized uint8 with the style embedding computed once."""
  style_emb = ghiasi_embedding(params, styles, weights)

  def fn(content: np.ndarray) -> np.ndarray:
    emb = style_emb
    if strength < 1.:
      own = ghiasi_embedding(params, [content], np.ones(1, np.float32))
      emb = ghiasi.interpolate(own, style_emb, strength)
    x = jnp.asarray(content, jnp.float32)[None] / 255.
    return image_io.to_uint8(np.asarray(ghiasi.transform(params, x, emb))[0] * 255.)
  return fn


def _adain_stylizer(model: str, styles: Sequence[np.ndarray], weights: np.ndarray,
                    strength: float) -> Callable[[np.ndarray], np.ndarray]:
  """The AdaIN seam: helper E's nst_jax.adain (decoder trained by configs/adain2017.py)."""
  try:
    from nst_jax import adain  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise NSTError('method=adain needs nst_jax/adain.py (the AdaIN decoder module), which this '
                   'installation lacks') from e
  decoder, width = adain.load_decoder(model)
  return lambda content: adain.stylize(decoder, content, list(styles), alpha=strength,
                                       style_weights=weights, width=width)


def _composite(content: np.ndarray, results: Sequence[np.ndarray], masks: np.ndarray
               ) -> np.ndarray:
  """Each result in its mask's region, the photo where no mask covers (overlaps normalised)."""
  m = masks.astype(np.float32)
  total = m.sum(0)
  m = m / np.maximum(total, 1.)[None]
  out = (1. - np.minimum(total, 1.))[..., None] * content.astype(np.float32)
  for mk, r in zip(m, results):
    out += mk[..., None] * r.astype(np.float32)
  return image_io.to_uint8(out)


def stylize_arbitrary(content: np.ndarray, style: Union[np.ndarray, Sequence[np.ndarray]],
                      method: str = 'ghiasi', strength: float = 1.0,
                      style_blend_weights: Optional[Sequence[float]] = None,
                      masks: Optional[Sequence[np.ndarray]] = None, original_colors: bool = False,
                      params=None, model: Optional[str] = None) -> np.ndarray:
  """Stylizes a photo with any painting(s) in one forward pass.

  Args:
    content: (H, W, 3) uint8 RGB photo, any size >= 16 px.
    style: one (H, W, 3) uint8 painting or a list of them (each >= 16 px).
    method: 'ghiasi' (Magenta's pretrained networks) or 'adain' (a decoder trained here).
    strength: 0..1; Ghiasi: interpolation from the photo's own embedding (0) to the painting's
      (1); AdaIN: the paper's alpha.
    style_blend_weights: one non-negative weight per style (default equal), normalised.
    masks: optional (H, W) float masks in 0..1, one per style (any size; resized): each style in
      its region, the photo elsewhere. With masks the styles are not blended but placed.
    original_colors: keep the photo's colours.
    params: Ghiasi params (:func:`nst_jax.ghiasi.load`; default: converted from the shared ONNX).
    model: AdaIN decoder directory (method='adain').

  Returns:
    (H, W, 3) uint8 RGB.
  """
  if method not in METHODS:
    raise ConfigError(f'unknown method {method!r}; choose one of {", ".join(METHODS)}')
  strength = _check_strength(strength)
  content = _check_image(content, 'content image', MIN_CONTENT_SIDE)
  styles = [style] if isinstance(style, np.ndarray) and np.ndim(style) == 3 else list(style)
  if not styles:
    raise ConfigError('stylize_arbitrary needs at least one style image')
  styles = [_check_image(s, f'style image {i + 1}', MIN_STYLE_SIDE) for i, s in enumerate(styles)]
  weights = _weights_list(style_blend_weights, len(styles))
  region = None
  if masks is not None and len(masks):
    if len(masks) != len(styles):
      raise ConfigError(f'{len(masks)} masks for {len(styles)} styles; give one mask per style')
    region = controls.prepare_masks(masks, content.shape[:2])
  make = _stylizer_factory(method, params, model, strength)
  if region is None:
    out = make(styles, weights)(content)
  else:
    out = _composite(content, [make([s], np.ones(1, np.float32))(content) for s in styles],
                     region)
  return controls.original_colors(out, content) if original_colors else out


def _stylizer_factory(method: str, params, model: Optional[str], strength: float):
  if method == 'ghiasi':
    params = ghiasi.load() if params is None else params
    return lambda styles, w: _ghiasi_stylizer(params, styles, w, strength)
  if not model:
    raise ConfigError('method=adain needs a trained decoder: model=MODEL_DIR (train one with '
                      'run.py --config=configs/adain2017.py --output=DIR)')
  return lambda styles, w: _adain_stylizer(model, styles, w, strength)


# --- The job ---------------------------------------------------------------------------------

def _content_files(folder: Path) -> list[Path]:
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
  if not files:
    raise ImageError(f'content folder {folder} has no images ({", ".join(IMAGE_EXTS)})')
  return files


def run(config: ml_collections.ConfigDict) -> dict:
  """Runs the `arbitrary` job: one photo, a folder or a video. Returns a summary dict."""
  validate_config(config)
  t0 = time.perf_counter()
  cap = int(config.get('max_pixels') or image_io.DEFAULT_MAX_PIXELS)
  style_paths = _split(config.style)
  for p in style_paths:
    check_style_image(p)
  styles = [image_io.load_image(p, max_pixels=cap) for p in style_paths]
  for p, s in zip(style_paths, styles):
    _check_image(s, f'style image {p}', MIN_STYLE_SIDE)
  mask_list, _ = controls.config_masks(config, len(styles))
  strength = _check_strength(config.strength)
  weights = _weights_list(config.get('style_blend_weights'), len(styles))
  params = ghiasi.load(config.get('weights') or None) if config.method == 'ghiasi' else None
  size = int(config.get('size') or 0) or None

  def stylize_one(photo: np.ndarray) -> np.ndarray:
    if size:
      photo = image_io.resize_image(photo, size=size, max_pixels=cap)
    return stylize_arbitrary(photo, styles, config.method, strength, weights, mask_list,
                             bool(config.get('original_colors')), params,
                             config.get('model') or None)

  src, out = Path(config.content).expanduser(), Path(config.output).expanduser()
  outputs = []
  if src.is_dir():
    files = _content_files(src)
    if out.suffix.lower() in IMAGE_EXTS:
      raise ConfigError(f'content {src} is a folder, so output must be a directory, not {out}')
    for f in files:  # read all first: a bad file stops the run before anything is written
      image_io.load_image(f, max_pixels=cap)
    for f in files:
      dest = out / f'{f.stem}.png'
      image_io.save_image(dest, stylize_one(image_io.load_image(f, max_pixels=cap)))
      outputs.append(str(dest))
  elif src.suffix.lower() in VIDEO_EXTS:
    try:
      from nst_jax import video  # pylint: disable=g-import-not-at-top  # issue 8's video I/O
    except ImportError as e:
      raise NSTError('video input needs nst_jax/video.py (feed-forward video I/O), which this '
                     'installation lacks') from e
    info = video.stylize_video(src, out, stylize_one)
    outputs.append(str(out))
  else:
    photo = image_io.load_image(src, max_pixels=cap)
    if out.suffix.lower() not in IMAGE_EXTS:
      raise ConfigError(f'output {out} needs an image extension such as .png')
    image_io.save_image(out, stylize_one(photo))
    outputs.append(str(out))
  result = {'job': 'arbitrary', 'method': config.method, 'outputs': outputs,
            'strength': strength, 'styles': style_paths, 'blend_weights': weights.tolist(),
            'seconds': round(time.perf_counter() - t0, 3)}
  if src.suffix.lower() in VIDEO_EXTS:
    result['video'] = info
  print(f'wrote {len(outputs)} output(s): {outputs[0]}{" ..." if len(outputs) > 1 else ""}')
  return result
