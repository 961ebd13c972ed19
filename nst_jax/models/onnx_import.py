"""ONNX initializers -> a plain ``.npz`` (no pickle) that nst_jax loads at run time.

The pretrained feed-forward networks in ``../shared/weights/magenta/`` ship as ONNX graphs. Their
weights are the graph's initializers; this module reads them once (with the optional ``onnx``
package: ``pip install nst_jax[onnx]``) and writes them as float32 arrays, so running a network
never needs ``onnx``:

* float initializers are stored as they are (float16/float64 cast to float32);
* an integer initializer (int8/uint8/int32) consumed by a ``DequantizeLinear`` node is dequantized,
  ``(q - zero_point) * scale``, per tensor or per channel along the node's ``axis`` attribute
  (default 1), and stored once as float32 under the initializer's name; the node's output name is
  recorded as an alias (``__meta__['aliases']``), so :func:`load_arrays` finds the array under
  either name;
* other initializers (scales, zero points, shape constants) are stored unchanged.

A JSON entry ``__meta__`` records the converter version, the source file's name, size and sha256
and the dequantized names. Files are written atomically (temp file + ``os.replace``).

Run time (:func:`load_converted`): ``<cache>/<stem>.npz`` (``<cache>`` as for the VGG19 weights,
``$NST_JAX_CACHE`` or ``weights/`` in a checkout); if it is missing or stale and ``onnx`` is
importable, it is converted from ``../shared/weights/magenta/<stem>.onnx``; otherwise one error line
names the command to run (``python weights/convert_onnx.py ...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from nst_jax.errors import WeightsError
from nst_jax.io import files as fileio
from nst_jax.models import weights as weights_lib

PathLike = Union[str, os.PathLike]
Arrays = Dict[str, np.ndarray]

CONVERTER_VERSION = 1
META_KEY = fileio.META_KEY
ONNX_MAGIC = b'\x08'  # ModelProto field 1 (ir_version, varint): every ONNX file starts with it.
_INSTALL = 'pip install "nst_jax[onnx]" (or pip install onnx)'


def default_onnx_dir() -> Path:
  """``<project root>/../shared/weights/magenta`` (the shipped pretrained ONNX files)."""
  return weights_lib.default_shared_dir() / 'magenta'


def onnx_available() -> bool:
  """Whether the optional ``onnx`` package can be imported."""
  try:
    import onnx  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    return False
  return True


def _import_onnx():
  try:
    import onnx  # pylint: disable=g-import-not-at-top
    from onnx import numpy_helper  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise WeightsError(f'converting ONNX weights needs the onnx package: {_INSTALL}') from e
  return onnx, numpy_helper


def load_onnx_model(path: PathLike):
  """Loads and sanity-checks an ONNX ``ModelProto``; WeightsError (one line) if unusable."""
  onnx, _ = _import_onnx()
  path = Path(path).expanduser()
  if not path.is_file():
    raise WeightsError(f'ONNX file {path} does not exist; check the path')
  try:
    model = onnx.load(str(path))
  except Exception as e:  # pylint: disable=broad-except  # DecodeError, OSError, ...
    msg = ' '.join(str(e).split()) or type(e).__name__
    raise WeightsError(f'{path} is not a readable ONNX model ({msg}); re-download or re-export '
                       'it') from e
  if not model.graph.node or not model.graph.initializer:
    raise WeightsError(f'{path} is not a usable ONNX model (no graph nodes or no initializers); '
                       're-download or re-export it')
  return model


def _attr(node, name: str, default: Any) -> Any:
  from onnx import helper  # pylint: disable=g-import-not-at-top
  for a in node.attribute:
    if a.name == name:
      return helper.get_attribute_value(a)
  return default


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray] = None,
               axis: int = 1) -> np.ndarray:
  """``(q - zero_point) * scale`` as float32: per tensor (scalar scale) or per channel.

  Per channel means ``scale`` (and ``zero_point``) is 1-D with one entry per index of ``q`` along
  ``axis`` (ONNX ``DequantizeLinear`` semantics; negative axes count from the end).
  """
  q = np.asarray(q)
  scale = np.asarray(scale, np.float32)
  zp = np.zeros((), np.float32) if zero_point is None else np.asarray(zero_point)
  x = q.astype(np.float64) - zp.astype(np.float64).reshape(_channel_shape(zp, q.ndim, axis))
  out = x * scale.astype(np.float64).reshape(_channel_shape(scale, q.ndim, axis))
  return out.astype(np.float32)


def _channel_shape(v: np.ndarray, ndim: int, axis: int) -> Tuple[int, ...]:
  if v.ndim == 0 or v.size == 1:
    return ()
  if v.ndim != 1:
    raise ValueError(f'per-channel quantization parameter must be 1-D, got shape {v.shape}')
  axis = axis % max(ndim, 1)
  shape = [1] * ndim
  shape[axis] = v.size
  return tuple(shape)


def read_onnx_arrays(path: PathLike) -> Tuple[Arrays, Dict[str, Any]]:
  """All initializers of an ONNX file as numpy arrays, quantized weights dequantized.

  Returns:
    ``(arrays, info)``: ``arrays`` maps initializer names to arrays; ``info`` has
    ``dequantized`` (initializer name -> DequantizeLinear output name(s)) and ``aliases``
    (DequantizeLinear output name -> the initializer name holding the same float array; stored
    once, resolved by :func:`load_arrays`).

  Raises:
    WeightsError: onnx is not installed, or the file is missing, corrupt or not usable.
  """
  _, numpy_helper = _import_onnx()
  path = Path(path).expanduser()
  model = load_onnx_model(path)
  graph = model.graph
  try:
    raw = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
  except Exception as e:  # pylint: disable=broad-except
    raise WeightsError(f'{path}: cannot read its initializers ({e}); the file is corrupt') from e
  # Small Constant nodes may also hold scales or zero points.
  consts = dict(raw)
  for node in graph.node:
    if node.op_type == 'Constant' and node.output:
      value = _attr(node, 'value', None)
      if value is not None:
        consts.setdefault(node.output[0], numpy_helper.to_array(value))
  arrays: Arrays = {}
  for name, a in raw.items():
    arrays[name] = a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a
  dequantized: Dict[str, list] = {}
  aliases: Dict[str, str] = {}  # DequantizeLinear output name -> initializer name (same array)
  for node in graph.node:
    if node.op_type != 'DequantizeLinear' or not node.input or node.input[0] not in raw:
      continue
    name = node.input[0]
    q = raw[name]
    if not np.issubdtype(q.dtype, np.integer):
      continue
    try:
      scale = consts[node.input[1]]
      zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
      w = dequantize(q, scale, zp, int(_attr(node, 'axis', 1)))
    except (KeyError, ValueError, IndexError) as e:
      raise WeightsError(f'{path}: cannot dequantize {name} (node {node.name}: {e}); the graph is '
                         'not a supported quantized ONNX file') from e
    if name not in dequantized:  # The first consumer defines the float value of the name.
      arrays[name] = w
      dequantized[name] = []
      aliases[node.output[0]] = name
    elif np.array_equal(arrays[name], w):
      aliases[node.output[0]] = name
    else:  # Another consumer with other scales: its own array.
      arrays[node.output[0]] = w
    dequantized[name].append(node.output[0])
  return arrays, {'dequantized': dequantized, 'aliases': aliases}


def convert(onnx_path: PathLike, out_path: PathLike) -> Path:
  """Converts an ONNX file's initializers into ``out_path`` (``.npz``, atomic); returns the path.

  Raises:
    WeightsError: see :func:`read_onnx_arrays`, or the output cannot be written.
  """
  onnx_path, out_path = Path(onnx_path).expanduser(), Path(out_path).expanduser()
  arrays, info = read_onnx_arrays(onnx_path)
  meta = {'converter_version': CONVERTER_VERSION, 'source': onnx_path.name,
          'source_size': onnx_path.stat().st_size,
          'source_sha256': weights_lib.sha256sum(onnx_path), **info}
  save_arrays(out_path, arrays, meta)
  return out_path


def save_arrays(path: PathLike, arrays: Arrays, meta: Optional[Dict[str, Any]] = None) -> Path:
  """Atomically writes flat ``arrays`` plus a JSON ``__meta__`` entry to an ``.npz``."""
  path = Path(path)
  if META_KEY in arrays:
    raise WeightsError(f'array name {META_KEY!r} is reserved')
  payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
  for k, v in payload.items():
    if v.dtype == object:
      raise WeightsError(f'array {k!r} has dtype object; only numeric arrays can be saved')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_npz(path, payload, meta or {})
  except OSError as e:
    raise WeightsError(f'cannot write {path} ({e.strerror or e}); set '
                       f'{weights_lib.CACHE_ENV_VAR} to a writable directory') from e
  return path


def load_arrays(path: PathLike) -> Tuple[Arrays, Dict[str, Any]]:
  """Reads an ``.npz`` written by :func:`save_arrays`: ``(arrays, meta)`` (no pickle).

  Raises:
    WeightsError: the file is missing, corrupt or has no readable metadata.
  """
  path = Path(path).expanduser()
  if not path.is_file():
    raise WeightsError(f'{path} does not exist')
  try:
    arrays, meta = fileio.read_npz(path)
    for alias, name in meta.get('aliases', {}).items():
      arrays.setdefault(alias, arrays[name])  # The same array under the other graph name.
  except Exception as e:  # pylint: disable=broad-except  # BadZipFile, ValueError, EOFError...
    msg = ' '.join(str(e).split()) or type(e).__name__
    raise WeightsError(f'{path} is corrupt or not a converted weights .npz ({msg}); delete it and '
                       're-run to convert again') from e
  return arrays, meta


def convert_command(onnx_path: PathLike, out_path: PathLike) -> str:
  return f'python weights/convert_onnx.py --onnx {onnx_path} --out {out_path}'


def cached_path(stem: str, cache_dir: Optional[PathLike] = None) -> Path:
  """Where the converted ``<stem>.onnx`` lives: ``<cache>/<stem>.npz``."""
  cache = Path(cache_dir).expanduser() if cache_dir is not None else weights_lib.default_cache_dir()
  return cache / f'{stem}.npz'


def load_converted(stem_or_path: PathLike, cache_dir: Optional[PathLike] = None,
                   onnx_dir: Optional[PathLike] = None) -> Arrays:
  """The converted arrays of a shipped ONNX network, converting on first use if possible.

  Args:
    stem_or_path: a network name (``'multistyle26'``, ``'arbitrary_transform'``...), an
      ``.onnx`` path or a converted ``.npz`` path (used as is).
    cache_dir: where converted files go (default: the VGG19 weights cache dir).
    onnx_dir: where ``<stem>.onnx`` is looked for (default ``../shared/weights/magenta``).

  Raises:
    WeightsError: one line; the npz is missing and cannot be converted here (names the command),
      or a file is corrupt.
  """
  p = Path(stem_or_path).expanduser()
  if p.suffix == '.npz':
    return load_arrays(p)[0]
  if p.suffix == '.onnx':
    onnx_path, stem = p, p.stem
  else:
    stem = str(stem_or_path)
    onnx_path = Path(onnx_dir).expanduser() / f'{stem}.onnx' if onnx_dir else (
        default_onnx_dir() / f'{stem}.onnx')
  out = cached_path(stem, cache_dir)
  if out.is_file():
    arrays, meta = load_arrays(out)
    fresh = meta.get('converter_version') == CONVERTER_VERSION
    if fresh and onnx_path.is_file():  # A changed source file invalidates the cache.
      st = onnx_path.stat()
      fresh = meta.get('source_size') == st.st_size and (
          meta.get('source_sha256') == weights_lib.sha256sum(onnx_path))
    if fresh or not (onnx_path.is_file() and onnx_available()):
      return arrays
  if not onnx_path.is_file():
    raise WeightsError(f'converted weights {out} not found and no {onnx_path} to convert from; '
                       f'run `{convert_command("PATH/TO/" + stem + ".onnx", out)}`')
  if not onnx_available():
    raise WeightsError(f'converted weights {out} not found; run `{convert_command(onnx_path, out)}`'
                       f' (needs {_INSTALL})')
  convert(onnx_path, out)
  return load_arrays(out)[0]
