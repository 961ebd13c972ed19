"""Native CPU kernels as XLA custom calls (JAX's public FFI): compiled once per machine, cached.

One kernel today, :data:`SORT_SOURCE` (``cpu_sort.cc``): a row-wise float32 sort with its stable
permutation, 25-30x XLA:CPU's own sort on the style losses' rows (the source's header says why
and how). :func:`sort_targets` compiles it with the machine's C++ compiler against the installed
jaxlib's FFI headers (``jax.ffi.include_dir()``), loads it and registers its two targets.

* Where: ``$NST_JAX_NATIVE_DIR``, else ``$XDG_CACHE_HOME/nst_jax/native``, else
  ``~/.cache/nst_jax/native``; one file per (source, jaxlib version, compiler, machine), written
  atomically (compiled to a temporary name, then renamed), so concurrent processes and an
  interrupted compile leave nothing half-written.
* ``$NST_JAX_NATIVE=off`` turns the kernels off; no compiler (``$CXX``, else ``c++`` or ``g++``
  on the PATH), a failed compile, or a library that does not load (a truncated file is removed
  and compiled once more) turn them off with one warning. Off means the callers' XLA paths,
  which compute the same values (their tests compare the two bit for bit): never an error.

No ``-march=native``: the kernel is scalar integer code, and a library built for one CPU must
not crash another that shares the cache directory.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
from pathlib import Path
import platform
import shutil
import subprocess
import tempfile
from typing import Optional
import warnings

import jax

ENV_OFF = 'NST_JAX_NATIVE'
ENV_DIR = 'NST_JAX_NATIVE_DIR'
OFF = ('off', '0', 'false', 'no', 'none', 'disabled')
SORT_SOURCE = Path(__file__).with_name('cpu_sort.cc')
SORT_TARGET = 'nst_sort_f32'
SORT_PERM_TARGET = 'nst_sort_perm_f32'
_SYMBOLS = {SORT_TARGET: 'NstSortF32', SORT_PERM_TARGET: 'NstSortPermF32'}
COMPILE_TIMEOUT_S = 300
# Target names this process has registered: XLA refuses a second registration of a name with
# another library's address (a second copy of the library loaded from another cache directory).
_registered: set[str] = set()


def enabled() -> bool:
  return os.environ.get(ENV_OFF, '').strip().lower() not in OFF


def cache_dir() -> Path:
  d = os.environ.get(ENV_DIR, '').strip()
  if d:
    return Path(d).expanduser()
  base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
  return Path(base).expanduser() / 'nst_jax' / 'native'


def compiler() -> Optional[str]:
  """The C++ compiler: ``$CXX``, else ``c++`` or ``g++`` on the PATH; None when there is none."""
  cxx = os.environ.get('CXX', '').strip()
  if cxx:
    return shutil.which(cxx)
  return shutil.which('c++') or shutil.which('g++')


def _compiler_version(cxx: str) -> str:
  try:
    out = subprocess.run([cxx, '--version'], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0] if out.stdout else ''
  except (OSError, subprocess.SubprocessError):
    return ''


def library_path(source: Path, cxx: str) -> Path:
  """Where ``source`` compiled by ``cxx`` for this jaxlib and machine lives in the cache."""
  import jaxlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for part in (source.read_bytes(), jaxlib.__version__.encode(), cxx.encode(),
               _compiler_version(cxx).encode(), platform.machine().encode()):
    h.update(part)
    h.update(b'\0')
  return cache_dir() / f'lib{source.stem}-{h.hexdigest()[:16]}.so'


def build(source: Path, out: Path, cxx: str) -> None:
  """Compiles ``source`` into the shared library ``out`` (atomically). Raises OSError or
  subprocess.SubprocessError with the compiler's message on failure."""
  out.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=out.stem + '.', suffix='.tmp.so', dir=out.parent)
  os.close(fd)
  try:
    cmd = [cxx, '-O3', '-std=c++17', '-shared', '-fPIC', '-w', '-pthread',
           '-I', jax.ffi.include_dir(), str(source), '-o', tmp]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    if r.returncode != 0:
      raise subprocess.SubprocessError(f'{" ".join(cmd)} exited {r.returncode}: '
                                       f'{r.stderr.strip()[-2000:]}')
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def load(source: Path) -> ctypes.CDLL:
  """``source``'s library, compiled first where the cache lacks it (or holds a broken copy)."""
  cxx = compiler()
  if cxx is None:
    raise OSError('no C++ compiler ($CXX, c++ or g++)')
  path = library_path(source, cxx)
  if path.exists():
    try:
      return ctypes.CDLL(str(path))
    except OSError:
      path.unlink(missing_ok=True)  # truncated or foreign: compile it again
  build(source, path, cxx)
  return ctypes.CDLL(str(path))


@functools.lru_cache(maxsize=None)
def sort_targets() -> Optional[tuple[str, str]]:
  """The registered (sort, sort with permutation) targets, or None where the kernel is off.

  Compiles and registers on the first call in a process (a few seconds, once per machine while
  the cache keeps the library); never raises.
  """
  if not enabled():
    return None
  try:
    lib = load(SORT_SOURCE)
    for name, symbol in _SYMBOLS.items():
      capsule = jax.ffi.pycapsule(getattr(lib, symbol))
      if name in _registered:
        continue
      jax.ffi.register_ffi_target(name, capsule, platform='cpu')
      # Shardings along vmapped (sweep) axes stay put instead of gathering onto every device.
      jax.ffi.register_ffi_target_as_batch_partitionable(name)
      _registered.add(name)
  except (OSError, subprocess.SubprocessError, AttributeError, RuntimeError, ValueError) as e:
    warnings.warn(f'nst_jax: the native CPU sort is off ({e}); sorting with XLA:CPU\'s sort '
                  f'(same values, slower). ${ENV_OFF}=off silences this.', RuntimeWarning,
                  stacklevel=2)
    return None
  return SORT_TARGET, SORT_PERM_TARGET
