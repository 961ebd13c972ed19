"""VGG19 weights: find, download, verify and convert the Keras ImageNet file.

The Keras applications file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` is converted
once into a plain ``.npz`` (no pickle) holding the Flax ``params`` collection of our VGG19:
``{'block1_conv1': {'kernel': (3, 3, Cin, Cout), 'bias': (Cout,)}, ...}``. Kernels keep the Keras
HWIO layout and the Keras (BGR-input) channel order, so conversion is a pure re-packaging.

Resolution order of :func:`resolve_weights`: explicit path, ``$NST_VGG19_WEIGHTS``, the converted
cache ``<cache>/vgg19.npz``, a local ``.h5`` (shared dir, then cache dir), then a download of the
official file (md5-verified).
"""


import collections
import functools
import hashlib
import json
import os
from pathlib import Path
import re
from typing import Any, Dict, Optional, Tuple, Union
import urllib.error
import urllib.request

from absl import logging
import h5py
import numpy as np

from nst_jax.errors import WeightsError
from nst_jax.io import files as fileio

PathLike = Union[str, os.PathLike]
Params = Dict[str, Dict[str, Any]]


def _vgg19_conv_shapes() -> 'collections.OrderedDict[str, Tuple[int, int, int, int]]':
  shapes = collections.OrderedDict()
  cin = 3
  for block, (convs, cout) in enumerate(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)), 1):
    for conv in range(1, convs + 1):
      shapes[f'block{block}_conv{conv}'] = (3, 3, cin, cout)
      cin = cout
  return shapes


VGG19_CONV_SHAPES = _vgg19_conv_shapes()
KERAS_FILENAME = 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
KERAS_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/vgg19/'
             + KERAS_FILENAME)
KERAS_MD5 = '253f8cb515780f3b799900260a226db6'  # The file_hash keras.applications uses.
SHARED_SHA256 = '28e43121c4694f7f26c9ce7a2508e3c03fafec8e793aeb5843073edee72d492d'
ENV_VAR = 'NST_VGG19_WEIGHTS'
CACHE_ENV_VAR = 'NST_JAX_CACHE'
CACHE_NPZ = 'vgg19.npz'
FORMAT_VERSION = 1
META_KEY = fileio.META_KEY

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_HDF5_MAGIC = b'\x89HDF\r\n\x1a\n'
_ZIP_MAGIC = b'PK\x03\x04'
_KERNEL_RE = re.compile(r'(^|[/_])(kernel|W)(_\d+)?(:\d+)?$')
_BIAS_RE = re.compile(r'(^|[/_])(bias|b)(_\d+)?(:\d+)?$')
_HOW_TO = (f'download {KERAS_URL} by hand and pass --weights=PATH or set {ENV_VAR}=PATH '
           '(or run `python weights/convert.py --download`)')


def default_cache_dir() -> Path:
  """``$NST_JAX_CACHE``, else ``<project root>/weights`` in a checkout, else ~/.cache/nst_jax."""
  env = os.environ.get(CACHE_ENV_VAR)
  if env:
    return Path(env).expanduser()
  if (_PROJECT_ROOT / 'weights').is_dir():
    return _PROJECT_ROOT / 'weights'
  return Path.home() / '.cache' / 'nst_jax' / 'weights'


def default_shared_dir() -> Path:
  """``<project root>/../shared/weights`` (read-only development data)."""
  return _PROJECT_ROOT.parent / 'shared' / 'weights'


def _hash_file(path: PathLike, *names: str) -> Tuple[str, ...]:
  hashers = [hashlib.new(n) for n in names]
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      for h in hashers:
        h.update(chunk)
  return tuple(h.hexdigest() for h in hashers)


def sha256sum(path: PathLike) -> str:
  """Hex sha256 of a file, read in 1 MiB chunks."""
  return _hash_file(path, 'sha256')[0]


def md5sum(path: PathLike) -> str:
  """Hex md5 of a file, read in 1 MiB chunks."""
  return _hash_file(path, 'md5')[0]


_DIGESTS: Dict[Tuple[str, int, int], Tuple[str, str]] = {}


def _digests(path: Path) -> Tuple[str, str]:
  """(md5, sha256) of a file, memoised per (path, size, mtime) in-process."""
  st = path.stat()
  key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
  if key not in _DIGESTS:
    _DIGESTS[key] = _hash_file(path, 'md5', 'sha256')
  return _DIGESTS[key]


def _magic(path: Path) -> bytes:
  with open(path, 'rb') as f:
    return f.read(8)


def _layer_group(f: h5py.File, layer: str) -> Optional[h5py.Group]:
  for prefix in ('', 'model_weights/', 'layers/', '_layer_checkpoint_dependencies/'):
    obj = f.get(prefix + layer)
    if isinstance(obj, h5py.Group):
      return obj
  return None


def _layer_dataset_names(group: h5py.Group) -> Tuple[str, str]:
  """Names (relative to ``group``) of the kernel and bias datasets of one conv layer."""
  names = [n.decode() if isinstance(n, bytes) else str(n)
           for n in group.attrs.get('weight_names', [])]
  if not names:
    group.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
  kernels = [n for n in names if _KERNEL_RE.search(n)]
  biases = [n for n in names if _BIAS_RE.search(n)]
  if len(kernels) == 1 and len(biases) == 1:
    return kernels[0], biases[0]
  if len(names) == 2:  # Unnamed weights (e.g. Keras 3 `vars/0`, `vars/1`): kernel, then bias.
    return names[0], names[1]
  raise ValueError(f'cannot identify kernel and bias among datasets {names}')


def _check_array(arr: np.ndarray, shape: Tuple[int, ...], what: str) -> np.ndarray:
  if not np.issubdtype(arr.dtype, np.floating):
    raise ValueError(f'{what} has dtype {arr.dtype}, expected float')
  if tuple(arr.shape) != tuple(shape):
    raise ValueError(f'{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}')
  if not np.all(np.isfinite(arr)):
    raise ValueError(f'{what} contains NaN or Inf')
  return np.ascontiguousarray(arr, dtype=np.float32)


def validate_params(params: Params) -> Params:
  """Checks the 16 VGG19 conv layers' shapes and values; returns float32 numpy copies.

  Raises:
    ValueError: a layer is missing or has a wrong shape, dtype or non-finite values.
  """
  missing = [layer for layer in VGG19_CONV_SHAPES if layer not in params]
  if missing:
    raise ValueError(f'missing layers {", ".join(missing)}')
  return {layer: {'kernel': _check_array(np.asarray(params[layer]['kernel']), shape,
                                         f'{layer} kernel'),
                  'bias': _check_array(np.asarray(params[layer]['bias']), shape[-1:],
                                       f'{layer} bias')}
          for layer, shape in VGG19_CONV_SHAPES.items()}


def read_keras_h5(path: PathLike) -> Params:
  """Reads the VGG19 conv weights from a Keras ``.h5`` file.

  Accepts the old ``/<layer>/<layer>_W_1:0`` naming, the newer ``/<layer>/kernel:0`` (flat or
  nested ``/<layer>/<layer>/kernel:0``) and ``vars/0``/``vars/1`` layouts, using each layer
  group's ``weight_names`` attribute when present.

  Args:
    path: the ``.h5`` file.

  Returns:
    The params dict of float32 numpy arrays, kernels HWIO in Keras (BGR) channel order.

  Raises:
    WeightsError: the file is missing, not HDF5, truncated, or lacks a layer / has a wrong shape.
  """
  path = Path(path)
  if not path.is_file():
    raise WeightsError(f'weights file {path} does not exist; {_HOW_TO}')
  try:
    f = h5py.File(path, 'r')
  except OSError as e:
    raise WeightsError(f'{path} is truncated or not an HDF5 file ({e}); delete it and re-run if '
                       'it is a cached download, or pass --weights=PATH to a good copy') from e
  with f:
    missing = [layer for layer in VGG19_CONV_SHAPES if _layer_group(f, layer) is None]
    if missing:
      raise WeightsError(f'{path} is not a VGG19 weights file: missing layers '
                         f'{", ".join(missing)}; pass --weights=PATH to {KERAS_FILENAME}')
    params = {}
    for layer in VGG19_CONV_SHAPES:
      group = _layer_group(f, layer)
      try:
        kname, bname = _layer_dataset_names(group)
        params[layer] = {'kernel': np.asarray(group[kname][()]),
                         'bias': np.asarray(group[bname][()])}
      except (OSError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(f'{path}: cannot read layer {layer} ({e}); the file is truncated or '
                           'not a Keras VGG19 file; delete it and re-run, or pass --weights=PATH '
                           'to a good copy') from e
  try:
    return validate_params(params)
  except ValueError as e:
    raise WeightsError(f'{path} is not a VGG19 "notop" weights file: {e}; pass --weights=PATH '
                       f'to {KERAS_FILENAME}') from e


def save_params(params: Params, path: PathLike, metadata: Optional[Dict[str, Any]] = None
                ) -> Path:
  """Atomically writes validated params (+ JSON metadata under ``__meta__``) to an ``.npz``.

  Raises:
    WeightsError: invalid params, or the file cannot be written.
  """
  path = Path(path)
  try:
    params = validate_params(params)
  except ValueError as e:
    raise WeightsError(f'refusing to save invalid VGG19 params to {path}: {e}') from e
  meta = {'format_version': FORMAT_VERSION, **(metadata or {})}
  arrays = {f'{layer}/{name}': arr for layer, p in params.items() for name, arr in p.items()}
  return write_cached(path, arrays, meta)


def write_cached(path: Path, arrays: dict, meta: dict) -> Path:
  """Writes converted weights (plain npz + JSON metadata) atomically into the weights cache;
  WeightsError naming ``$NST_JAX_CACHE`` when the directory cannot be written."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_npz(path, arrays, meta)
  except OSError as e:
    raise WeightsError(f'cannot write {path} ({e}); set {CACHE_ENV_VAR} to a writable '
                       'directory') from e
  return path


def _open_npz(path: Path):
  try:
    z = np.load(path, allow_pickle=False)
    if not isinstance(z, np.lib.npyio.NpzFile):
      raise ValueError('not an .npz archive')
    return z
  except FileNotFoundError as e:
    raise WeightsError(f'weights file {path} does not exist; {_HOW_TO}') from e
  except Exception as e:  # pylint: disable=broad-except  # BadZipFile, ValueError, OSError...
    raise WeightsError(f'{path} is corrupt or not a converted weights .npz ({e}); delete it and '
                       're-run to re-convert') from e


def load_params(path: PathLike) -> Params:
  """Loads and validates a converted ``.npz``; returns float32 numpy params.

  Raises:
    WeightsError: the file is missing, corrupt, or has missing layers / wrong shapes.
  """
  path = Path(path)
  with _open_npz(path) as z:
    try:
      params = {layer: {'kernel': z[f'{layer}/kernel'], 'bias': z[f'{layer}/bias']}
                for layer in VGG19_CONV_SHAPES}
      return validate_params(params)
    except Exception as e:  # pylint: disable=broad-except
      raise WeightsError(f'{path} is corrupt or not a converted VGG19 .npz ({e}); delete it and '
                         're-run to re-convert') from e


def load_metadata(path: PathLike) -> Dict[str, Any]:
  """The JSON metadata dict stored in a converted ``.npz`` (empty if none)."""
  path = Path(path)
  with _open_npz(path) as z:
    if META_KEY not in z.files:
      return {}
    try:
      return json.loads(str(z[META_KEY].reshape(-1)[0]))  # 0-d (1-element before 2026-12)
    except Exception as e:  # pylint: disable=broad-except
      raise WeightsError(f'{path} has corrupt metadata ({e}); delete it and re-run') from e


def convert(h5_path: PathLike, out_path: PathLike) -> Path:
  """Converts a Keras VGG19 ``.h5`` into our ``.npz``; returns ``out_path``.

  Files matching neither known checksum are accepted if their structure validates, with a
  warning.
  """
  h5_path, out_path = Path(h5_path), Path(out_path)
  params = read_keras_h5(h5_path)
  md5, sha = _digests(h5_path)
  if md5 == KERAS_MD5:
    kind = 'keras-official'
  elif sha == SHARED_SHA256:
    kind = 'shared-quantized'
    logging.info('%s is the k-means-quantized shared copy of the VGG19 weights', h5_path)
  else:
    kind = 'unknown'
    logging.warning('%s (sha256 %s) matches no known VGG19 weights checksum; using it because its '
                    'structure is valid', h5_path, sha)
  save_params(params, out_path, {'source': str(h5_path.resolve()), 'source_sha256': sha,
                                 'source_md5': md5, 'source_kind': kind, 'layout': 'HWIO, BGR'})
  logging.info('converted %s -> %s', h5_path, out_path)
  return out_path


def download(url: str, dest: PathLike, md5: Optional[str] = None,
             sha256: Optional[str] = None) -> Path:
  """Downloads ``url`` to ``dest`` via a temp file, verifying checksums before the rename.

  Raises:
    WeightsError: network failure, or a checksum mismatch (no file is left behind).
  """
  dest = Path(dest)
  dest.parent.mkdir(parents=True, exist_ok=True)

  def fetch(tmp: str) -> None:  # A mismatch raises: atomic_write removes the temp file.
    hashers = {'md5': hashlib.md5(), 'sha256': hashlib.sha256()}
    try:
      logging.info('downloading %s -> %s', url, dest)
      with open(tmp, 'wb') as out, urllib.request.urlopen(url, timeout=60) as resp:
        for chunk in iter(lambda: resp.read(1 << 20), b''):
          out.write(chunk)
          for h in hashers.values():
            h.update(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
      raise WeightsError(f'cannot download {url} ({e}); {_HOW_TO}') from e
    for name, expected in (('md5', md5), ('sha256', sha256)):
      actual = hashers[name].hexdigest()
      if expected and actual != expected.lower():
        raise WeightsError(f'{name} mismatch for {url}: expected {expected}, got {actual}; '
                           f'retry, or {_HOW_TO}')

  fileio.atomic_write(dest, fetch, suffix='.part')
  return dest


def resolve_weights(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                    shared_dir: Optional[PathLike] = None, allow_download: bool = True) -> Path:
  """Returns the path of a converted VGG19 ``.npz``, converting or downloading as needed.

  Order: (1) ``path``, else ``$NST_VGG19_WEIGHTS`` (an ``.npz`` is used as is; an ``.h5`` is
  converted to ``<cache>/vgg19_<sha12>.npz``); (2) ``<cache>/vgg19.npz``; (3) ``KERAS_FILENAME``
  in ``shared_dir`` then ``cache_dir``, converted to ``<cache>/vgg19.npz``; (4) download of
  ``KERAS_URL`` into ``cache_dir`` (md5-verified), then conversion.

  Args:
    path: explicit weights file (``.h5`` or ``.npz``); missing is an error, never skipped.
    cache_dir: where converted files go; default :func:`default_cache_dir`.
    shared_dir: where to look for a local ``.h5``; default :func:`default_shared_dir`.
    allow_download: whether step (4) may run.

  Raises:
    WeightsError: nothing usable found, a bad explicit file, or a failed download.
  """
  cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
  shared_dir = Path(shared_dir) if shared_dir is not None else default_shared_dir()
  origin = 'the weights argument'
  if path is None and os.environ.get(ENV_VAR):
    path, origin = os.environ[ENV_VAR], f'${ENV_VAR}'
  if path is not None:
    path = Path(path).expanduser()
    if not path.is_file():
      raise WeightsError(f'weights file {path} (from {origin}) does not exist; fix the path, or '
                         f'{_HOW_TO}')
    magic = _magic(path)
    if magic.startswith(_ZIP_MAGIC):
      return path
    if magic.startswith(_HDF5_MAGIC):
      out = cache_dir / f'vgg19_{_digests(path)[1][:12]}.npz'
      return out if out.is_file() else convert(path, out)
    raise WeightsError(f'{path} (from {origin}) is neither a Keras .h5 nor a converted .npz; '
                       f'pass --weights=PATH to {KERAS_FILENAME}')

  cached = cache_dir / CACHE_NPZ
  if cached.is_file():
    return cached
  local = [shared_dir / KERAS_FILENAME, cache_dir / KERAS_FILENAME]
  for h5 in local:
    if h5.is_file():
      return convert(h5, cached)
  searched = ', '.join(str(p) for p in [cached, *local])
  if not allow_download:
    raise WeightsError(f'no VGG19 weights found (searched {ENV_VAR}, {searched}) and download is '
                       f'disabled; {_HOW_TO}')
  try:
    h5 = download(KERAS_URL, cache_dir / KERAS_FILENAME, md5=KERAS_MD5)
  except WeightsError as e:
    raise WeightsError(f'no VGG19 weights found (searched {ENV_VAR}, {searched}) and the download '
                       f'failed: {e}') from e
  return convert(h5, cached)


@functools.lru_cache(maxsize=4)
def _load_jax(path: str, mtime_ns: int, upto: Optional[str] = None) -> Params:
  del mtime_ns  # Only part of the cache key, so a rewritten file is re-read.
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top  # Keep the converter jax-free.
  order = list(VGG19_CONV_SHAPES)
  last = order.index(upto) if upto in order else len(order) - 1
  return {layer: {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}
          for layer, p in load_params(path).items() if order.index(layer) <= last}


def load_vgg19(path: Optional[PathLike] = None, upto: Optional[str] = None,
               **kwargs: Any) -> Params:
  """The VGG19 params as jnp float32 arrays; cached in-process per resolved file.

  Args:
    path: explicit weights file; see :func:`resolve_weights`.
    upto: keep only the conv layers up to this one (canonical ``blockB_convC`` name; a run
      needs none deeper, e.g. 28 MB of conv5_2..conv5_4 for the usual conv5_1). Default: all.
    **kwargs: ``cache_dir``, ``shared_dir``, ``allow_download`` for :func:`resolve_weights`.
  """
  resolved = resolve_weights(path, **kwargs).resolve()
  params = _load_jax(str(resolved), resolved.stat().st_mtime_ns, upto)
  return {layer: dict(p) for layer, p in params.items()}
