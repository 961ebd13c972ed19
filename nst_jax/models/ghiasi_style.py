"""Style files: a Ghiasi style embedding saved on its own, used by the ``arbitrary`` job in place
of a painting (``--style=FILE.npz``, alone, mixed with paintings, with ``strength``).

A style file is a small plain ``.npz`` (:func:`nst_jax.io.files.write_npz`, written atomically,
read with ``allow_pickle=False``) holding one array, ``embedding``: the 100 float32 values the
transformer's conditional instance norms take (:data:`nst_jax.models.ghiasi.EMBEDDING_DIM`), and
a JSON metadata entry: ``format`` (:data:`FORMAT`), ``format_version``, ``name`` (the painting's),
``shape`` and ``dtype`` of the embedding, ``sha256`` (of its little-endian float32 bytes, so a
damaged or hand-edited file is refused) and free ``info`` (how it was made).
``configs/ghiasi_refine_cpu.py`` makes one by refining the predictor's embedding of a painting
(:mod:`nst_jax.training.tasks.ghiasi_embedding`).

:func:`predictor_input` is the style prediction network's input (the centre square of a
painting at 256x256), shared by the ``arbitrary`` job and the refinement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from nst_jax.errors import ImageError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.models import ghiasi

PathLike = Union[str, os.PathLike]

FORMAT = 'nst_jax.ghiasi_style'
FORMAT_VERSION = 1
SUFFIX = '.npz'
SHAPE = (ghiasi.EMBEDDING_DIM,)
DTYPE = np.dtype('<f4')
# Ours: a sanity bound, far beyond any embedding the predictor makes (its values on the 35 shared
# images of ../shared/images and images/styles lie within +-3.2, norms 7.0-11.6).
MAX_ABS = 1e4


@dataclasses.dataclass(frozen=True)
class StyleEmbedding:
  """A style given by its embedding: ``embedding`` float32 (100,), ``name`` (the painting's),
  ``source`` (the file it was read from, '' if none) and ``info`` (the file's ``info``)."""
  embedding: np.ndarray
  name: str
  source: str = ''
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def is_style_file(path: Any) -> bool:
  """Whether a ``--style`` entry names a style file (an ``.npz``) rather than a painting."""
  return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() == SUFFIX


def checksum(embedding: np.ndarray) -> str:
  """sha256 (hex) of the embedding's little-endian float32 bytes."""
  return hashlib.sha256(np.ascontiguousarray(embedding, DTYPE).tobytes()).hexdigest()


def _check_embedding(embedding: Any, what: str) -> np.ndarray:
  arr = np.asarray(embedding)
  if arr.shape != SHAPE:
    raise ImageError(f'{what} has an embedding of shape {tuple(arr.shape)}; a Ghiasi style '
                     f'embedding is {SHAPE} (re-create it with configs/ghiasi_refine_cpu.py)')
  if arr.dtype.kind != 'f':
    raise ImageError(f'{what} has a {arr.dtype} embedding; a Ghiasi style embedding is float32')
  arr = arr.astype(DTYPE)
  if not np.all(np.isfinite(arr)) or float(np.max(np.abs(arr))) > MAX_ABS:
    raise ImageError(f'{what} has NaN/Inf or out-of-range embedding values; re-create it')
  return arr


def save(path: PathLike, embedding: Any, name: str,
         info: Optional[Mapping[str, Any]] = None) -> Path:
  """Writes a style file atomically (the old file, if any, stays until the new one is complete).

  Raises:
    ImageError: an embedding of the wrong shape or with non-finite values, or a path that does
      not end in ``.npz``.
  """
  path = Path(path).expanduser()
  if path.suffix.lower() != SUFFIX:
    raise ImageError(f'a style file must end in {SUFFIX}, got {path}')
  arr = _check_embedding(np.asarray(embedding, np.float32), 'the style embedding')
  meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'name': str(name),
          'shape': list(arr.shape), 'dtype': arr.dtype.str, 'sha256': checksum(arr),
          'info': dict(info or {})}
  fileio.write_npz(path, {'embedding': arr}, meta)
  return path


def load(path: PathLike) -> StyleEmbedding:
  """Reads and checks a style file (never unpickling anything).

  Raises:
    ImageError: a missing, truncated or corrupt file, one that is not a style file (another
      ``.npz``), one of a newer format version, an embedding of the wrong shape or dtype, or one
      whose checksum does not match; one line naming the file.
  """
  p = Path(path).expanduser()
  what = f'style file {p}'
  if not p.is_file():
    raise ImageError(f'{what} does not exist (check --style)')
  try:
    arrays, meta = fileio.read_npz(p)
  except (OSError, ValueError) as e:
    raise ImageError(f'{what} is corrupt or truncated ({e}); re-create it with '
                     'configs/ghiasi_refine_cpu.py') from e
  if meta.get('format') != FORMAT:
    raise ImageError(f'{what} is not a Ghiasi style file (no {FORMAT!r} metadata); give a '
                     'painting or a file written by configs/ghiasi_refine_cpu.py')
  version = meta.get('format_version')
  if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
    raise ImageError(f'{what} has format version {version!r}; this version of nst_jax reads '
                     f'versions 1..{FORMAT_VERSION}')
  if 'embedding' not in arrays:
    raise ImageError(f'{what} has no embedding array; re-create it')
  raw = arrays['embedding']
  if list(raw.shape) != list(meta.get('shape', ())) or raw.dtype.str != meta.get('dtype'):
    raise ImageError(f'{what}: the embedding is {tuple(raw.shape)} {raw.dtype.str} but the '
                     f'metadata says {meta.get("shape")} {meta.get("dtype")}; the file is damaged')
  emb = _check_embedding(raw, what)
  if checksum(emb) != meta.get('sha256'):
    raise ImageError(f'{what}: the embedding does not match its checksum; the file is damaged '
                     '(re-create it)')
  info = meta.get('info')
  return StyleEmbedding(emb, str(meta.get('name', p.stem)), str(p),
                        dict(info) if isinstance(info, dict) else {})


def predictor_input(image: np.ndarray, size: int = ghiasi.STYLE_SIZE) -> np.ndarray:
  """The style predictor's input: the centre square of a uint8 image, resized to size^2, 0..1."""
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  return image_io.resize_image(square, shape=(size, size)).astype(np.float32) / 255.
