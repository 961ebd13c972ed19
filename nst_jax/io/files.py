"""Small file helpers shared by every job: atomic writes, JSON, output-path checks.

Nothing here imports JAX, so the weights converter and tools can use it too. Every file a job
writes goes through :func:`atomic_write` (a temp file beside the target, then ``os.replace``),
so a crash or Ctrl-C never leaves a half-written PNG, JSON or checkpoint behind.

    check_writable(Path('outputs/x.png'))   # before minutes of work
  write_json(Path('outputs/x.json'), {'steps': 10})
  write_npz(Path('outputs/x.npz'), {'a': a})
  atomic_write(Path('outputs/x.bin'), lambda tmp: Path(tmp).write_bytes(data))
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import tempfile
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from nst_jax.errors import ImageError

PathLike = Union[str, 'os.PathLike[str]']
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')


def atomic_write(path: PathLike, write: Callable[[str], None], suffix: str = '.tmp') -> None:
  """Calls ``write(tmp_path)`` on a temp file beside ``path``, then renames it into place.

  ``suffix`` is the temp file's extension (``np.savez`` appends ``.npz`` unless it is there).
  On any error (KeyboardInterrupt included) the temp file is removed and ``path`` is untouched.
  """
  path = Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix=suffix)
  os.close(fd)
  try:
    write(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


META_KEY = '__meta__'  # the JSON metadata entry of every .npz the project writes


def write_npz(path: PathLike, arrays: Mapping[str, Any], meta: Optional[Mapping] = None) -> None:
  """Atomic ``np.savez`` of named arrays (uncompressed) to exactly ``path``; ``meta`` (a JSON
  object) is stored as the string array ``__meta__`` (read back by :func:`read_npz`)."""

  if meta is not None:
    if META_KEY in arrays:
      raise ValueError(f'array name {META_KEY!r} is reserved for the metadata')
    arrays = {META_KEY: np.array(json.dumps(dict(meta), sort_keys=True,
                                                  default=to_jsonable)), **arrays}

  def write(tmp: str) -> None:
    with open(tmp, 'wb') as f:  # a file object: np.savez keeps the temp name as it is
      np.savez(f, **arrays)
  atomic_write(path, write)


def read_npz(path: PathLike, names: Optional[Callable[[str], bool]] = None
             ) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(arrays, meta)`` of an ``.npz`` written by :func:`write_npz`, never unpickling anything.

  ``names`` selects which arrays are read (all by default); ``meta`` is ``{}`` when the file has
  none. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for anything that is
  not such an archive (corrupt, truncated, metadata that is not a JSON object); callers turn
  both into their one-line errors.
  """

  try:
    with np.load(path, allow_pickle=False) as z:
      if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError('not an .npz archive')
      arrays = {k: z[k] for k in z.files if k != META_KEY and (names is None or names(k))}
      raw = z[META_KEY] if META_KEY in z.files else None
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # BadZipFile, EOFError, zlib.error...
    raise ValueError(' '.join(str(e).split()) or type(e).__name__) from e
  if raw is None:
    return arrays, {}
  # A 0-d string array; files from before this helper stored a 1-element one.
  meta = json.loads(str(raw.reshape(-1)[0]))
  if not isinstance(meta, dict):
    raise ValueError('metadata is not a JSON object')
  return arrays, meta


def _read_umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


_UMASK = _read_umask()


def write_text(path: PathLike, text: str) -> None:
  """Atomic text write (UTF-8)."""
  def write(tmp: str) -> None:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
  atomic_write(path, write)


def to_jsonable(value: Any) -> Any:
  """``json.dump``'s ``default``: NumPy/JAX scalars and arrays become floats / lists."""
  if hasattr(value, 'tolist'):
    return value.tolist()
  if isinstance(value, Path):
    return str(value)
  return float(value)


def write_json(path: PathLike, data: Any, indent: Optional[int] = 1) -> None:
  """Atomic JSON write (NumPy scalars become floats)."""
  def write(tmp: str) -> None:
    with open(tmp, 'w') as f:
      json.dump(data, f, indent=indent, default=to_jsonable)
  atomic_write(path, write)


def check_writable(path: Path, suffixes: Optional[Sequence[str]] = IMAGE_SUFFIXES) -> None:
  """Fails early (before minutes of optimisation) if the file ``path`` cannot be written.

  Creates the parent directory. ``suffixes``: allowed extensions (default: image formats;
  ``None`` = any). Raises :class:`~nst_jax.errors.ImageError` with one actionable line.
  """
  path = Path(path)
  parent = path.parent
  try:
    parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ImageError(f'cannot create the output directory {parent}: {e.strerror or e}') from e
  if path.is_dir():
    raise ImageError(f'output path {path} is a directory; give a file name such as {path}/out.png')
  if not os.access(parent, os.W_OK):
    raise ImageError(f'output directory {parent} is not writable; choose another --output')
  if suffixes is not None and path.suffix.lower() not in suffixes:
    raise ImageError(f'output {path} needs an image extension such as .png')


def check_writable_dir(directory: Path, flag: str = '--output_dir') -> Path:
  """Creates ``directory`` (and parents) and checks it is writable; returns it."""
  directory = Path(directory).expanduser()
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ImageError(f'cannot create the output directory {directory}: {e.strerror or e}; '
                     f'choose another {flag}') from e
  if not os.access(directory, os.W_OK):
    raise ImageError(f'output directory {directory} is not writable; choose another {flag}')
  return directory
