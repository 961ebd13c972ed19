"""No wasted compilation: JAX's persistent compilation cache, in-process reuse, compile counters.

* :func:`enable` turns on JAX's persistent compilation cache (compiled XLA programs on disk, keyed
  by the program, the compile options and the backend), so a second run of the same size and
  config skips compilation. Where (first match wins): the ``compile_cache`` config field
  (a directory, or ``off``), then ``$NST_JAX_COMPILE_CACHE`` (a directory, or ``off``), then
  ``$XDG_CACHE_HOME/nst_jax/jax_cache``, else ``~/.cache/nst_jax/jax_cache``. A directory that
  cannot be created or written turns the cache off with a warning; a corrupt entry is ignored
  with a warning, removed and rebuilt by the compilation that follows (never a crash).
* :func:`compiled` memoises ``jitted.lower(...).compile()`` per argument shapes and static
  arguments, so a process that runs the same problem twice (stages, notebooks, tests) compiles
  it once; with the persistent cache on it also stores the executable whole, so a later process
  loads it without tracing or lowering (the "Executables on disk" section below;
  ``$NST_JAX_STORE_EXECUTABLES=off`` turns that off).
* :class:`CompileStats` counts XLA compilations and their seconds (JAX's monitoring events) so
  runs report compile and run time separately and tests can assert "nothing compiled twice".
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
import threading
import time
from typing import Any, Optional
import warnings

import jax
from jax import monitoring

from nst_jax.errors import NSTError

ENV_VAR = 'NST_JAX_COMPILE_CACHE'
OFF = ('off', '0', 'false', 'no', 'none', 'disabled')
# Programs that compile faster than this are not written to disk (tiny op-by-op programs would
# cost more to read back than to compile).
MIN_COMPILE_S = 0.2
BACKEND_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'
EXE_LOADED_EVENT = 'nst_jax/executables_loaded'  # counted here, not a JAX event
_CORRUPT_MESSAGE = 'persistent compilation cache entry'

_lock = threading.Lock()
_counts: collections.Counter = collections.Counter()
_seconds: dict[str, float] = collections.defaultdict(float)


def _on_duration(event: str, duration_secs: float, **_: Any) -> None:
  with _lock:
    _counts[event] += 1
    _seconds[event] += duration_secs


def _on_event(event: str, **_: Any) -> None:
  with _lock:
    _counts[event] += 1


monitoring.register_event_duration_secs_listener(_on_duration)
monitoring.register_event_listener(_on_event)


def default_dir() -> Path:
  """``$XDG_CACHE_HOME/nst_jax/jax_cache``, else ``~/.cache/nst_jax/jax_cache``."""
  base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
  return Path(base).expanduser() / 'nst_jax' / 'jax_cache'


def resolve(setting: str = '') -> Optional[Path]:
  """The cache directory a ``compile_cache`` setting means, or None when the cache is off."""
  s = str(setting or '').strip() or os.environ.get(ENV_VAR, '').strip()
  if s.lower() in OFF:
    return None
  return Path(s).expanduser() if s else default_dir()


def current_dir() -> Optional[Path]:
  """The directory JAX's persistent cache uses now (None = off)."""
  d = getattr(jax.config, 'jax_compilation_cache_dir', None)
  return Path(d) if d else None


def _reset_jax_cache() -> None:
  """Makes a changed directory take effect (JAX initialises its cache object once)."""
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=g-import-not-at-top
  compilation_cache.reset_cache()


def disable() -> None:
  if current_dir() is not None:
    jax.config.update('jax_compilation_cache_dir', None)
    _reset_jax_cache()


def enable(setting: str = '') -> Optional[Path]:
  """Turns JAX's persistent compilation cache on (or off) per ``setting``; returns its directory.

  Never raises: an unusable directory warns and leaves the cache off.
  """
  path = resolve(setting)
  if path is None:
    disable()
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
      raise PermissionError(f'{path} is not writable')
  except OSError as e:
    warnings.warn(f'nst_jax: compilation cache {path} is unusable ({e}); running without it '
                  f'(set compile_cache or ${ENV_VAR} to another directory, or to off)',
                  stacklevel=2)
    disable()
    return None
  if current_dir() != path:
    jax.config.update('jax_compilation_cache_dir', str(path))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', MIN_COMPILE_S)
    _reset_jax_cache()
  return path


def _remove_entries(module_name: str) -> None:
  """Removes the persistent-cache entries of ``module_name`` (JAX names them
  ``<module>-<hash>-cache``): the next compilation of each writes it afresh."""
  d = current_dir()
  if d is None or not module_name or '/' in module_name:
    return
  for f in d.glob(f'{module_name}-*'):
    f.unlink(missing_ok=True)


def _heal(caught: list) -> None:
  """Re-issues the warnings caught around a compilation, except JAX's warning about a corrupt
  persistent-cache entry: JAX ignores such an entry but never overwrites it, so every later run
  would warn and recompile again. Its module's entries are removed instead (rebuilt by the
  compilation of that program in a later process), with one warning that says so. Programs
  compiled here are the ones worth it (the optimisation and training chunks: seconds to minutes
  of XLA); a corrupt entry of a small op-by-op program only costs JAX's warning and a
  millisecond recompile."""
  for w in caught:
    text = str(w.message)
    if _CORRUPT_MESSAGE in text:
      module = text.split("'")[1] if text.count("'") >= 2 else ''
      _remove_entries(module)
      warnings.warn(f'nst_jax: ignored a corrupt compilation cache entry for {module} in '
                    f'{current_dir()}; removed it, the next compilation writes it afresh',
                    stacklevel=3)
    else:
      warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# --- In-process reuse of compiled programs ---------------------------------------------------

_MAX_COMPILED = 32
_compiled: 'collections.OrderedDict[Any, Any]' = collections.OrderedDict()


def _leaf_key(x) -> tuple:
  sharding = getattr(x, 'sharding', None)
  try:
    hash(sharding)
  except TypeError:
    sharding = None
  return (tuple(getattr(x, 'shape', ())), str(getattr(x, 'dtype', type(x).__name__)),
          bool(getattr(x, 'weak_type', False)), sharding)


def compiled(jitted, *args, **static) -> tuple[Any, float]:
  """``jitted.lower(*args, **static).compile()``, memoised on shapes, dtypes, shardings and the
  static arguments; returns (executable, seconds spent compiling now: 0 when reused).

  With the persistent cache on (and one device), the executable is also stored on disk
  (:func:`_exe_path`), so a later process loads it without tracing or lowering the program.
  """
  leaves, treedef = jax.tree.flatten(args)
  leaf_keys = tuple(_leaf_key(x) for x in leaves)
  key = (jitted, treedef, leaf_keys, tuple(sorted(static.items())))
  with _lock:
    hit = _compiled.get(key)
    if hit is not None:
      _compiled.move_to_end(key)
      return hit, 0.
  t = time.perf_counter()
  path = _exe_path(jitted, treedef, leaf_keys, static)
  exe = _load_exe(path) if path is not None else None
  if exe is not None and path is not None:
    specs = jax.tree.map(_abstract, args)  # not the arrays: a rebuild must not keep them alive
    exe = _FirstCallChecked(exe, path, lambda: jitted.lower(*specs, **static).compile())
  if exe is None:
    with _lock:
      hits = _counts[CACHE_HIT_EVENT]
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      exe = jitted.lower(*args, **static).compile()
    _heal(caught)
    with _lock:
      from_jax_cache = _counts[CACHE_HIT_EVENT] != hits
    # An executable JAX read back from its own cache is not stored: serialised again and loaded
    # by a later process, XLA:CPU misses some of its kernels ('Function wrapped_reverse not
    # found', a crash at the first call). Its next fresh compilation is stored instead.
    if path is not None and not from_jax_cache:
      _store_exe(path, exe)
  seconds = time.perf_counter() - t
  release_memory()
  with _lock:
    _compiled[key] = exe
    while len(_compiled) > _MAX_COMPILED:
      _compiled.popitem(last=False)
  return exe, seconds


def _abstract(x):
  if hasattr(x, 'shape') and hasattr(x, 'dtype'):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None))
  return x


class _FirstCallChecked:
  """A stored executable whose first call is checked before it is trusted.

  XLA:CPU can serialise an executable without a kernel that an earlier program of the storing
  process had already compiled under the same name; a later process then fails at the first call
  ('NOT_FOUND: Function wrapped_broadcast.1 not found', seen in a benchmark that compiles many
  programs). The first call therefore waits for its result; on that error the file is removed,
  the program compiled afresh and the call repeated. Where the failed call had already consumed
  a donated input, the run stops with one error saying to run it again (the file is gone).
  Later calls go straight to the executable.
  """

  def __init__(self, exe, path: Path, rebuild):
    self._exe, self._path, self._rebuild, self._checked = exe, path, rebuild, False

  def __call__(self, *args):
    if self._checked:
      return self._exe(*args)
    try:
      out = jax.block_until_ready(self._exe(*args))
    except jax.errors.JaxRuntimeError as e:
      if 'not found' not in str(e):
        raise
      self._path.unlink(missing_ok=True)
      warnings.warn(f'nst_jax: a stored executable ({self._path.name}) was incomplete '
                    f'({str(e).splitlines()[0][:120]}); removed it and compiled the program '
                    'afresh', stacklevel=2)
      if any(getattr(x, 'is_deleted', lambda: False)() for x in jax.tree.leaves(args)):
        raise NSTError(f'a stored executable in {self._path.parent} was incomplete and '
                                'has been removed; run the command again') from e
      self._exe = self._rebuild()
      out = self._exe(*args)
    self._checked = True
    return out

  def __getattr__(self, name):
    return getattr(self._exe, name)


# --- Executables on disk: a warm process skips tracing and lowering -------------------------
# JAX's persistent cache is keyed by the lowered program, so every process still traces and
# lowers each program to look it up (~2 s of a warm 1-step run at 256 px on 2 cores). Programs
# compiled through :func:`compiled` are also stored whole (``jax.experimental.
# serialize_executable``) under ``<cache dir>/executables``, keyed by the function, the argument
# shapes/dtypes, the static arguments and a fingerprint of everything else that shapes the
# program: nst_jax's source files, the versions of jax, jaxlib, flax and optax, JAX's tracing
# flags, ``XLA_FLAGS``, the device and the host CPU's features. Any change there is a different
# key (a miss, never a stale program). One-device processes only (a deserialised executable is
# bound to its devices). The files are pickles run on load, so they are written 0600 in a 0700
# directory and loaded only when this user owns them and no one else can write them or their
# directory (:func:`_private`); anything else is ignored with a warning and compiled afresh.

EXE_DIR = 'executables'
# ``off`` turns the store of whole executables off (JAX's persistent cache alone). Measured on
# a warm 1-step run at 256 px (2-core CPU, docs/results/2026-12-03-layout.md): 4.5-5.0 s with
# the store, 5.5-6.7 s without.
STORE_ENV_VAR = 'NST_JAX_STORE_EXECUTABLES'
MAX_EXES = 200  # Oldest entries beyond this many are removed after a write.
_fingerprint: list[str] = []


def _environment_fingerprint() -> str:
  """A hash of what, besides a function's arguments, decides the program it compiles to (the
  sources, versions, device and CPU, computed once; JAX's tracing flags, read at every call, as a
  process may change them: ``jax_enable_x64`` in a test)."""
  if not _fingerprint:
    import hashlib  # pylint: disable=g-import-not-at-top
    import importlib.metadata as md  # pylint: disable=g-import-not-at-top
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]  # all of nst_jax
    for f in sorted(package.rglob('*.py')):
      h.update(str(f.relative_to(package)).encode() + b'\0' + f.read_bytes() + b'\0')
    for dist in ('jax', 'jaxlib', 'flax', 'optax', 'numpy'):
      try:
        h.update(f'{dist}={md.version(dist)};'.encode())
      except md.PackageNotFoundError:
        h.update(f'{dist}=none;'.encode())
    device = jax.devices()[0]
    h.update(repr((os.environ.get('XLA_FLAGS', ''), device.platform, device.device_kind,
                   device.client.platform_version, jax.device_count(), _cpu_features())).encode())
    _fingerprint.append(h.hexdigest())
  # Every JAX option of a plain type (jax.config.values, public), as any of them may shape the
  # program: a changed option is a different key (a miss), never a stale program.
  flags = sorted((k, v) for k, v in jax.config.values.items()
                 if v is None or isinstance(v, (bool, int, float, str)))
  return f'{_fingerprint[0]}:{flags!r}'


def _cpu_features() -> str:
  """The host CPU's model and feature flags (XLA:CPU compiles for them; a cache directory shared
  between machines must not hand one's programs to another)."""
  import platform  # pylint: disable=g-import-not-at-top
  lines = []
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith(('model name', 'flags', 'Features')):
          lines.append(line.strip())
        elif not line.strip() and lines:
          break  # The first processor is enough.
  except OSError:
    pass
  return '\n'.join([platform.machine(), platform.processor(), *lines])


def _exe_path(jitted, treedef, leaf_keys: tuple, static: dict) -> Optional[Path]:
  """Where the executable of this call is stored (None: not stored, see above)."""
  d = current_dir()
  if (d is None or jax.device_count() != 1
      or os.environ.get(STORE_ENV_VAR, '').strip().lower() in OFF):
    return None
  import hashlib  # pylint: disable=g-import-not-at-top
  name = f'{getattr(jitted, "__module__", "")}.{getattr(jitted, "__qualname__", repr(jitted))}'
  # Two jit wrappers of one function (say, with and without donation) are different programs.
  info = getattr(jitted, '_jit_info', None)
  options = [repr(getattr(info, k, None)) for k in (
      'donate_argnums', 'donate_argnames', 'static_argnums', 'static_argnames', 'keep_unused')]
  text = repr((name, options, str(treedef), [k[:3] for k in leaf_keys], sorted(static.items()),
               _environment_fingerprint()))
  return d / EXE_DIR / f'{name.rsplit(".", 1)[-1]}-{hashlib.sha256(text.encode()).hexdigest()}'


def _private(*paths: Path) -> bool:
  """Whether every one of ``paths`` is owned by this process's user and writable by no one
  else: only such files, in such a directory, are unpickled. Without POSIX owners: never."""
  if not hasattr(os, 'getuid'):
    return False
  try:
    return all(st.st_uid == os.getuid() and not st.st_mode & 0o022
               for st in (p.stat() for p in paths))
  except OSError:
    return False


_untrusted_warned: set[str] = set()


def _load_exe(path: Path) -> Any:
  """The executable stored at ``path``; None when there is none (or it is unreadable: then it
  is removed with a warning and rebuilt by the compilation that follows). A file that another
  user owns or could have written (or that sits in such a directory) is never unpickled: it is
  ignored, with one warning per directory, and the program is compiled as usual."""
  if not path.exists():
    return None
  if not _private(path, path.parent):
    if str(path.parent) not in _untrusted_warned:
      _untrusted_warned.add(str(path.parent))
      warnings.warn(f'nst_jax: not loading stored executables from {path.parent}: they must be '
                    'owned by you and writable by no one else (they are pickles, run on load)',
                    stacklevel=3)
    return None
  try:
    data = path.read_bytes()
  except OSError:
    return None
  try:
    import pickle  # pylint: disable=g-import-not-at-top

    from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
    payload, in_tree, out_tree = pickle.loads(data)
    exe = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    with _lock:
      _counts[EXE_LOADED_EVENT] += 1
    return exe
  except Exception as e:  # pylint: disable=broad-except
    warnings.warn(f'nst_jax: ignored an unreadable stored executable {path} ({type(e).__name__}); '
                  'removed it, it is rebuilt by this compilation', stacklevel=3)
    path.unlink(missing_ok=True)
    return None


def _store_exe(path: Path, exe: Any) -> None:
  """Stores ``exe`` at ``path`` (atomically; silently skipped where that is impossible).

  Programs with custom calls are not stored: their targets (LAPACK kernels for a triangular
  solve, say) are registered with XLA when such a program is lowered, which a process loading
  the executable never does, and running it then crashes (seen: a segfault). JAX's own cache
  still keeps their compilation.
  """
  try:
    if 'custom_call_target=' in exe.as_text():
      return
    import pickle  # pylint: disable=g-import-not-at-top

    from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
    data = pickle.dumps(serialize_executable.serialize(exe))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(path.parent):  # a directory others can write: store nothing there
      return
    tmp = path.with_name(f'{path.name}.{os.getpid()}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
    entries = sorted(path.parent.iterdir(), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_EXES]:
      old.unlink(missing_ok=True)
  except Exception:  # pylint: disable=broad-except
    pass


def release_memory() -> None:
  """Returns the heap pages freed by XLA's compiler to the OS (glibc ``malloc_trim``), so the
  compiler's transient memory does not add to the run's peak RSS. No-op elsewhere."""
  if os.environ.get('NST_JAX_NO_TRIM'):
    return
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass


def clear_compiled() -> None:
  with _lock:
    _compiled.clear()


class CompileStats:
  """Counts XLA compilations inside a ``with`` block (all threads of this process).

  ``stats()`` -> ``{'compilations': programs compiled by XLA, 'xla_compile_s': their seconds
  (persistent-cache reads included), 'cache_hits': programs read from the persistent cache,
  'executables_loaded': programs loaded whole from disk, neither traced nor compiled}``.
  """

  @classmethod
  def start(cls) -> 'CompileStats':
    return cls().__enter__()

  def __enter__(self) -> 'CompileStats':
    with _lock:
      self._counts, self._seconds = collections.Counter(_counts), collections.Counter(_seconds)
    self._end: Optional[tuple] = None
    return self

  def __exit__(self, *exc) -> None:
    self._end = self._snapshot()

  def _snapshot(self) -> tuple:
    with _lock:
      return collections.Counter(_counts), collections.Counter(_seconds)

  def stats(self) -> dict:
    counts, seconds = self._end or self._snapshot()
    n = counts[BACKEND_COMPILE_EVENT] - self._counts[BACKEND_COMPILE_EVENT]
    hits = counts[CACHE_HIT_EVENT] - self._counts[CACHE_HIT_EVENT]
    secs = seconds[BACKEND_COMPILE_EVENT] - self._seconds[BACKEND_COMPILE_EVENT]
    loaded = counts[EXE_LOADED_EVENT] - self._counts[EXE_LOADED_EVENT]
    return {'compilations': n - hits, 'cache_hits': hits, 'xla_compile_s': round(secs, 3),
            'executables_loaded': loaded}
