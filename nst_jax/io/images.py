"""Reading, resizing and atomically writing images and masks.

Everything here works on numpy arrays: colour images are ``uint8`` arrays of shape (H, W, 3) in RGB
order, masks are ``float32`` arrays of shape (H, W) in [0, 1]. Every user-facing failure (missing,
unreadable, corrupt or oversized file, bad size, unwritable destination) raises
:class:`~nst_jax.errors.ImageError` with a one-line message naming the path.
"""

from __future__ import annotations

import contextlib
import operator
import os
from pathlib import Path
import tempfile
import threading
from typing import Iterator, Optional, Sequence, Tuple, Union
import warnings

import numpy as np
from PIL import Image, ImageOps

from nst_jax.errors import ImageError
from nst_jax.io import files as fileio

PathLike = Union[str, os.PathLike]

DEFAULT_MAX_PIXELS = 40_000_000

# Output extension -> Pillow format name.
_FORMATS = {
    '.png': 'PNG',
    '.jpg': 'JPEG',
    '.jpeg': 'JPEG',
    '.webp': 'WEBP',
    '.bmp': 'BMP',
    '.tif': 'TIFF',
    '.tiff': 'TIFF',
}
_SAVE_OPTIONS = {'JPEG': {'quality': 95}, 'WEBP': {'quality': 95}}
_HIGH_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I;16S', 'I', 'I;32', 'F')
# Pillow's decompression-bomb limit is a module global; guard our temporary changes to it.
_PILLOW_LIMIT_LOCK = threading.Lock()


def _one_line(err: BaseException) -> str:
  """Returns an exception's message squeezed onto one line."""
  text = ' '.join(str(err).split())
  return text or type(err).__name__


def _check_max_pixels(max_pixels: Optional[int]) -> Optional[int]:
  """Validates ``max_pixels`` (a positive integer, or None for no cap)."""
  return None if max_pixels is None else _positive_int('max_pixels', max_pixels)


def _check_cap(path: Optional[PathLike], what: str, h: int, w: int,
               max_pixels: Optional[int]) -> None:
  """Raises ImageError if an (h, w) image is above ``max_pixels``."""
  if max_pixels is not None and h * w > max_pixels:
    where = f' {path}' if path is not None else ''
    raise ImageError(
        f'{what}{where} is {w}x{h} = {h * w / 1e6:.1f} megapixels, above the cap of '
        f'{max_pixels / 1e6:g} megapixels; use a smaller image or raise the cap with '
        f'max_pixels (config field `max_pixels`)')


def _positive_int(name: str, value) -> int:
  """Returns ``value`` as an int if it is a positive integer, else raises ImageError."""
  try:
    if isinstance(value, bool):
      raise TypeError
    result = operator.index(value)
  except TypeError:
    raise ImageError(f'{name} must be a positive integer, got {value!r}') from None
  if result <= 0:
    raise ImageError(f'{name} must be a positive integer, got {value!r}')
  return result


def _target_shape(h: int, w: int, size: Optional[int],
                  shape: Optional[Sequence[int]]) -> Tuple[int, int]:
  """Computes the output (H, W) for a source of (h, w) given ``size`` or ``shape``.

  Args:
    h: Source height.
    w: Source width.
    size: Longest output side in pixels (aspect ratio kept), or None.
    shape: Exact output (H, W), or None.

  Returns:
    The output (H, W); (h, w) if neither ``size`` nor ``shape`` is given.

  Raises:
    ImageError: If both are given or a value is not a positive integer.
  """
  if size is not None and shape is not None:
    raise ImageError(f'give at most one of size and shape, got size={size!r} and shape={shape!r}')
  if size is not None:
    size = _positive_int('size', size)
    scale = size / max(h, w)
    if h >= w:
      return size, max(1, round(w * scale))
    return max(1, round(h * scale)), size
  if shape is not None:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, '__len__') or len(shape) != 2:
      raise ImageError(f'shape must be a (height, width) pair of positive integers, got {shape!r}')
    return _positive_int('shape height', shape[0]), _positive_int('shape width', shape[1])
  return h, w


def _resize_rgb(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """Resizes a uint8 (H, W, 3) array: LANCZOS when shrinking, BICUBIC when enlarging."""
  h, w = image.shape[:2]
  if (out_h, out_w) == (h, w):
    return image
  resample = Image.LANCZOS if out_h <= h and out_w <= w else Image.BICUBIC
  pil = Image.fromarray(np.ascontiguousarray(image))
  return np.asarray(pil.resize((out_w, out_h), resample=resample), dtype=np.uint8)


@contextlib.contextmanager
def _pillow_limit(limit: Optional[int]) -> Iterator[None]:
  """Temporarily sets Pillow's decompression-bomb limit and makes its warning an error."""
  with _PILLOW_LIMIT_LOCK:
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        yield
    finally:
      Image.MAX_IMAGE_PIXELS = old


def _scale_high_bit(arr: np.ndarray, mode: str) -> np.ndarray:
  """Scales a 16/32-bit integer or float single-channel array to float32 in [0, 1].

  ``I;16*`` modes use 0..65535. Mode ``I`` (also what Pillow gives for many 16-bit PNGs) is treated
  as 8-bit if its maximum is at most 255, 16-bit if at most 65535, otherwise normalised by its
  maximum. Mode ``F`` is taken as 0..1 if its maximum is at most 1, otherwise 0..255.
  """
  arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
  peak = float(arr.max()) if arr.size else 0.0
  if mode.startswith('I;16'):
    scale = 65535.0
  elif mode == 'F':
    scale = 1.0 if peak <= 1.0 else 255.0
  elif peak <= 255:
    scale = 255.0
  elif peak <= 65535:
    scale = 65535.0
  else:
    scale = peak
  return np.clip(arr / scale, 0.0, 1.0).astype(np.float32)


def _decode(img: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Converts a loaded Pillow image to float colour and alpha arrays.

  Args:
    img: A fully loaded image of any Pillow mode.

  Returns:
    ``(color, alpha)``. For opaque 8-bit images ``color`` is uint8 (H, W, 3) and ``alpha`` is None
    (the fast path). Otherwise ``color`` is float32 (H, W, C) in [0, 1] with C = 1 for
    high-bit-depth grayscale and C = 3 for colour, and ``alpha`` is float32 (H, W) in [0, 1] or
    None if opaque.
  """
  mode = img.mode
  if mode in _HIGH_BIT_MODES:
    raw = np.asarray(img)
    color = _scale_high_bit(raw, mode)[..., None]
    alpha = None
    key = img.info.get('transparency')
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
      alpha = (raw != key).astype(np.float32)
    return color, alpha
  if 'A' in mode or 'a' in mode or 'transparency' in img.info:
    arr = np.asarray(img.convert('RGBA'), dtype=np.float32) / 255.0
    return arr[..., :3], arr[..., 3]
  return np.asarray(img.convert('RGB'), dtype=np.uint8), None


def _oriented(img: Image.Image) -> Image.Image:
  """Applies the EXIF orientation tag, if any (a corrupt EXIF block is ignored)."""
  try:
    if img.getexif().get(0x0112, 1) in (2, 3, 4, 5, 6, 7, 8):
      return ImageOps.exif_transpose(img)
  except Exception:  # A corrupt EXIF block should not stop the pixels from loading.
    pass
  return img


def _open_decoded(path: PathLike, max_pixels: Optional[int],
                  what: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Opens, size-checks, fully decodes and EXIF-orients an image file.

  Args:
    path: The file to read.
    max_pixels: Source pixel cap (None for no cap).
    what: 'image' or 'mask', for error messages.

  Returns:
    ``(color, alpha)`` as returned by :func:`_decode`.

  Raises:
    ImageError: On any problem reading or decoding the file.
  """
  max_pixels = _check_max_pixels(max_pixels)
  p = Path(path).expanduser()
  if not p.exists():
    raise ImageError(f'{what} file not found: {path} (check the path)')
  if p.is_dir():
    raise ImageError(f'{what} path is a directory, not a file: {path}')
  try:
    with _pillow_limit(None):  # Our own, clearer, header check below replaces Pillow's.
      img = Image.open(p)
  except PermissionError as err:
    raise ImageError(f'cannot read {what} {path}: permission denied (check file permissions)') \
      from err
  except Image.UnidentifiedImageError as err:
    raise ImageError(f'{what} file {path} is not a recognised image format '
                     f'(use PNG, JPEG, WebP, BMP or TIFF)') from err
  except Exception as err:  # Pillow plugins raise many exception types on malformed headers.
    raise ImageError(f'cannot open {what} {path}: {_one_line(err)}') from err
  with img:
    w, h = img.size
    _check_cap(path, what.capitalize(), h, w, max_pixels)
    try:
      with _pillow_limit(max_pixels):
        img.load()
        return _decode(_oriented(img))
    except ImageError:
      raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
      raise ImageError(f'{what} {path} decodes to more than max_pixels={max_pixels} pixels; '
                       f'raise max_pixels (config field `max_pixels`) if this is intended') from err
    except Exception as err:  # Truncated / corrupt data: OSError, SyntaxError, zlib.error, ...
      raise ImageError(f'cannot decode {what} {path}: {_one_line(err)} '
                       f'(is it a complete, valid image file?)') from err


def load_image(path: PathLike, size: Optional[int] = None,
               shape: Optional[Sequence[int]] = None,
               max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Loads an image file as an RGB uint8 array, optionally resized.

  Any Pillow mode is accepted; 16/32-bit and float images are scaled to 0..255, alpha is composited
  onto white, and the EXIF orientation is applied.

  Args:
    path: The image file.
    size: If given, the longest side of the output in pixels (aspect ratio kept).
    shape: If given, the exact output (height, width). At most one of ``size`` and ``shape``.
    max_pixels: Cap on source and output width * height (None for no cap).

  Returns:
    A uint8 array of shape (H, W, 3).

  Raises:
    ImageError: If the file cannot be read or decoded, is above the pixel cap, or the requested
      size is invalid.
  """
  max_pixels = _check_max_pixels(max_pixels)
  color, alpha = _open_decoded(path, max_pixels, 'image')
  h, w = color.shape[:2]
  out_h, out_w = _target_shape(h, w, size, shape)
  _check_cap(path, 'Requested output size for', out_h, out_w, max_pixels)
  if color.dtype == np.uint8:
    image = color
  else:
    if alpha is not None:
      color = color * alpha[..., None] + (1.0 - alpha[..., None])
    image = to_uint8(np.broadcast_to(color * 255.0, (h, w, 3)))
  return _resize_rgb(image, out_h, out_w)


def resize_image(image: np.ndarray, size: Optional[int] = None,
                 shape: Optional[Sequence[int]] = None,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Resizes an RGB image array with the same rules as :func:`load_image`.

  Args:
    image: A uint8 (H, W, 3) array (float arrays in 0..255 are clipped and rounded first).
    size: If given, the longest side of the output in pixels (aspect ratio kept).
    shape: If given, the exact output (height, width). At most one of ``size`` and ``shape``.
    max_pixels: Cap on the output width * height (None for no cap).

  Returns:
    A uint8 array of shape (H', W', 3); the input (as uint8) if no resizing is needed.

  Raises:
    ImageError: If the array is not (H, W, 3) or the requested size is invalid or too large.
  """
  max_pixels = _check_max_pixels(max_pixels)
  image = _as_rgb_uint8(image)
  out_h, out_w = _target_shape(image.shape[0], image.shape[1], size, shape)
  _check_cap(None, 'Requested output size', out_h, out_w, max_pixels)
  return _resize_rgb(image, out_h, out_w)


def load_mask(path: PathLike, shape: Optional[Sequence[int]] = None,
              max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Loads a mask image as float32 luminance in [0, 1].

  Colour images are reduced to luminance (ITU-R 601 weights, as Pillow's ``L``); an alpha channel
  multiplies the result, so transparent pixels are 0. 16-bit images are scaled properly and the EXIF
  orientation is applied.

  Args:
    path: The mask file.
    shape: If given, the exact output (height, width); resized with bilinear filtering.
    max_pixels: Cap on source and output width * height (None for no cap).

  Returns:
    A float32 array of shape (H, W) in [0, 1].

  Raises:
    ImageError: If the file cannot be read or decoded, is above the pixel cap, or ``shape`` is
      invalid.
  """
  max_pixels = _check_max_pixels(max_pixels)
  color, alpha = _open_decoded(path, max_pixels, 'mask')
  if color.dtype == np.uint8:
    color = color.astype(np.float32) / 255.0
  if color.shape[-1] == 3:
    mask = color @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
  else:
    mask = color[..., 0]
  if alpha is not None:
    mask = mask * alpha
  h, w = mask.shape
  out_h, out_w = _target_shape(h, w, None, shape)
  _check_cap(path, 'Requested output size for mask', out_h, out_w, max_pixels)
  if (out_h, out_w) != (h, w):
    pil = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32))
    mask = np.asarray(pil.resize((out_w, out_h), resample=Image.BILINEAR))
  return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Validates an (H, W, 3) array and returns it as uint8 (floats clipped and rounded)."""
  arr = np.asarray(image)
  if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
    raise ImageError(f'expected an image array of shape (H, W, 3), got shape {arr.shape}')
  if arr.dtype == np.uint8:
    return arr
  return to_uint8(arr)


def save_image(path: PathLike, image: np.ndarray) -> Path:
  """Atomically writes an RGB image; the format follows the extension.

  The image is written to a temporary file in the destination directory, flushed and fsynced, then
  moved over ``path`` with :func:`os.replace`, so readers never see a partial file. Missing parent
  directories are created.

  Args:
    path: Destination file; extension one of .png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff.
    image: A uint8 (H, W, 3) array, or a float array in 0..255 (clipped and rounded).

  Returns:
    The destination path.

  Raises:
    ImageError: If the extension is unsupported, the array has the wrong shape, or the file cannot
      be written.
  """
  dest = Path(path).expanduser()
  fmt = _FORMATS.get(dest.suffix.lower())
  if fmt is None:
    raise ImageError(f'cannot save {path}: unsupported extension {dest.suffix or "(none)"!r}; '
                     f'use one of {", ".join(sorted(_FORMATS))}')
  pil = Image.fromarray(np.ascontiguousarray(_as_rgb_uint8(image)))
  parent = dest.parent
  try:
    parent.mkdir(parents=True, exist_ok=True)
  except FileExistsError as err:
    raise ImageError(f'cannot save {path}: a parent path exists and is not a directory') from err
  except OSError as err:
    raise ImageError(f'cannot save {path}: cannot create directory {parent}: '
                     f'{_one_line(err)}') from err
  if dest.is_dir():
    raise ImageError(f'cannot save {path}: it is an existing directory')
  tmp_name = None
  try:
    with tempfile.NamedTemporaryFile(dir=parent, prefix=f'.{dest.name}.', suffix=dest.suffix,
                                     delete=False) as tmp:
      tmp_name = tmp.name
      pil.save(tmp, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
      tmp.flush()
      os.fsync(tmp.fileno())
    # NamedTemporaryFile creates files 0600; give the result ordinary permissions.
    mode = dest.stat().st_mode & 0o777 if dest.exists() else 0o644
    os.chmod(tmp_name, mode)
    os.replace(tmp_name, dest)
    tmp_name = None
  except OSError as err:
    raise ImageError(f'cannot write image {path}: {_one_line(err)} '
                     f'(check that the directory is writable and the disk is not full)') from err
  except Exception as err:  # Encoder failures (e.g. image too large for the format).
    raise ImageError(f'cannot encode image {path} as {fmt}: {_one_line(err)}') from err
  finally:
    if tmp_name is not None:
      with contextlib.suppress(OSError):
        os.unlink(tmp_name)
  return dest


def to_float(image: np.ndarray) -> np.ndarray:
  """Converts a uint8 image to float32 in 0..255."""
  return np.asarray(image, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Converts a float image in 0..255 to uint8 (NaN -> 0, clipped and rounded)."""
  arr = np.asarray(image)
  if not np.issubdtype(arr.dtype, np.floating):
    arr = arr.astype(np.float32)
  arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
  return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def list_images(folder: str | os.PathLike, what: str = 'photos') -> list[Path]:
  """The image files (:data:`nst_jax.io.files.IMAGE_SUFFIXES`) directly in ``folder``, sorted
  by name, hidden files skipped; ImageError if the folder is missing or has none."""
  p = Path(folder).expanduser()
  if not p.exists():
    raise ImageError(f'{what} folder not found: {folder} (check the path)')
  if not p.is_dir():
    raise ImageError(f'{what} path {folder} is not a folder; give a folder of images')
  files = sorted(f for f in p.iterdir() if f.suffix.lower() in fileio.IMAGE_SUFFIXES
                 and f.is_file() and not f.name.startswith('.'))
  if not files:
    raise ImageError(f'{what} folder {folder} has no images ({", ".join(fileio.IMAGE_SUFFIXES)})')
  return files


def is_fully_transparent(path: PathLike) -> bool:
  """Whether an image file has an alpha channel (or transparency) that is 0 everywhere; False
  for unreadable files (:func:`load_image` reports those)."""
  try:
    with Image.open(Path(path).expanduser()) as img:
      return ('A' in img.getbands() or 'transparency' in img.info) and (
          img.convert('RGBA').getchannel('A').getextrema()[1] == 0)
  except Exception:  # pylint: disable=broad-except
    return False
