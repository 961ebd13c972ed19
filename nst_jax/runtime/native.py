"""Native CPU kernels as XLA custom calls (JAX's public FFI): compiled once per machine, cached.

Two kernels, each source's header saying why and how:

* :data:`SORT_SOURCE` (``cpu_sort.cc``): a row-wise float32 sort with its stable permutation,
  25-30x XLA:CPU's own sort on the style losses' rows (:func:`sort_targets`);
* :data:`CONV_SOURCE` (``cpu_conv.cc``): a direct NHWC float32 convolution with the padding,
  the previous layer's instance norm and the next one's statistics folded in, 2-9x XLA:CPU's
  convolution on the one-pass networks' few-channel layers (:func:`conv_targets`).

Each is compiled on first use with the machine's C++ compiler against the installed jaxlib's
FFI headers (``jax.ffi.include_dir()``), loaded, and its targets registered.

* Where: ``$NST_JAX_NATIVE_DIR``, else ``$XDG_CACHE_HOME/nst_jax/native``, else
  ``~/.cache/nst_jax/native``; one file per (source, jaxlib version, compiler, machine), written
  atomically (compiled to a temporary name, then renamed), so concurrent processes and an
  interrupted compile leave nothing half-written.
* ``$NST_JAX_NATIVE=off`` turns the kernels off; no compiler (``$CXX``, else ``c++`` or ``g++``
  on the PATH), a failed compile, or a library that does not load (a truncated file is removed
  and compiled once more) turn them off with one warning. Off means the callers' XLA paths,
  which compute the same values (their tests compare the two bit for bit): never an error.

No ``-march=native``: a library built for one CPU must not crash another that shares the cache
directory. The convolution's hot loop is compiled for several vector widths instead (GCC's
``target_clones``), the widest the running CPU has picked when the library loads.
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
CONV_SOURCE = Path(__file__).with_name('cpu_conv.cc')
CONV_TARGET = 'nst_conv_f32'
CONV_RESIDUAL_TARGET = 'nst_conv_residual_f32'
_SYMBOLS = {SORT_TARGET: 'NstSortF32', SORT_PERM_TARGET: 'NstSortPermF32',
            CONV_TARGET: 'NstConvF32', CONV_RESIDUAL_TARGET: 'NstConvResidualF32'}
# -ffp-contract=fast: multiply-adds as FMA instructions where the CPU has them (ISO C++ mode
# turns the contraction off by default).
CXX_FLAGS = ('-O3', '-std=c++17', '-ffp-contract=fast', '-shared', '-fPIC', '-w', '-pthread')
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
               _compiler_version(cxx).encode(), platform.machine().encode(),
               ' '.join(CXX_FLAGS).encode()):
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
    cmd = [cxx, *CXX_FLAGS, '-I', jax.ffi.include_dir(), str(source), '-o', tmp]
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


def _register(source: Path, names: tuple[str, ...], what: str, fallback: str,
              batch_partitionable: bool = False) -> bool:
  """Loads ``source`` and registers ``names``; False (with one warning) where it cannot.
  ``batch_partitionable``: every operand and result shares the leading (batch) axes."""
  if not enabled():
    return False
  try:
    lib = load(source)
    for name in names:
      capsule = jax.ffi.pycapsule(getattr(lib, _SYMBOLS[name]))
      if name in _registered:
        continue
      jax.ffi.register_ffi_target(name, capsule, platform='cpu')
      if batch_partitionable:
        # Shardings along vmapped (sweep) axes stay put instead of gathering onto every device.
        jax.ffi.register_ffi_target_as_batch_partitionable(name)
      _registered.add(name)
  except (OSError, subprocess.SubprocessError, AttributeError, RuntimeError, ValueError) as e:
    warnings.warn(f'nst_jax: the native CPU {what} is off ({e}); {fallback}. ${ENV_OFF}=off '
                  f'silences this.', RuntimeWarning, stacklevel=3)
    return False
  return True


@functools.lru_cache(maxsize=None)
def sort_targets() -> Optional[tuple[str, str]]:
  """The registered (sort, sort with permutation) targets, or None where the kernel is off.

  Compiles and registers on the first call in a process (a few seconds, once per machine while
  the cache keeps the library); never raises.
  """
  ok = _register(SORT_SOURCE, (SORT_TARGET, SORT_PERM_TARGET), 'sort',
                 "sorting with XLA:CPU's sort (same values, slower)", batch_partitionable=True)
  return (SORT_TARGET, SORT_PERM_TARGET) if ok else None


@functools.lru_cache(maxsize=None)
def conv_targets() -> Optional[tuple[str, str]]:
  """The registered (convolution, residual convolution) targets, or None where the kernel is
  off (as :func:`sort_targets`)."""
  ok = _register(CONV_SOURCE, (CONV_TARGET, CONV_RESIDUAL_TARGET), 'convolution',
                 "convolving with XLA:CPU's convolution (same values up to rounding, slower)")
  return (CONV_TARGET, CONV_RESIDUAL_TARGET) if ok else None
