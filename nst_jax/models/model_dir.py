"""Trained feed-forward models on disk: a directory with ``model.npz`` + ``model.json``.

Format (version 1), written by training (:func:`save_model`) and read by ``configs/fast.py``:

  MODEL_DIR/model.npz   flat float32 arrays, no pickle: ``'<layer>/<name>'`` with layers
                        ``contract_i``, ``res_i_j``, ``expand_i`` and names ``kernel`` (HWIO),
                        ``bias`` (C,), ``gamma``/``beta`` (num_styles, C)
  MODEL_DIR/model.json  {"format": "nst_jax.transformer", "format_version": 1,
                         "network": NetworkConfig fields, "styles": [one name per style],
                         "npz_sha256": sha256 of model.npz, "info": {free-form: training config,
                         steps, losses...}}

Both files are written atomically, ``model.npz`` first; ``npz_sha256`` ties the pair together,
so a crash between the two writes is detected instead of loading mismatched files. Built-in
networks (:data:`BUILTINS`, e.g. ``multistyle26``) load from converted ONNX weights
(:mod:`nst_jax.models.onnx_import`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from nst_jax.errors import ConfigError, NSTError
from nst_jax.io import files as fileio
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params

PathLike = Union[str, os.PathLike]
FORMAT = 'nst_jax.transformer'
FORMAT_VERSION = 1
NPZ, JSON = 'model.npz', 'model.json'
BUILTINS = ('multistyle26',)


class ModelError(NSTError):
  """A model directory or file is missing, corrupt or of the wrong kind."""


@dataclasses.dataclass
class Model:
  """A loaded transformer: architecture, nested float32 params, style names, provenance."""
  config: networks.NetworkConfig
  params: dict[str, dict[str, np.ndarray]]
  styles: list[str]
  source: str = ''
  info: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_styles(self) -> int:
    return self.config.num_styles


def _atomic_bytes(path: Path, data: bytes) -> None:
  def write(tmp: str) -> None:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  fileio.atomic_write(path, write)


def save_model(model_dir: PathLike, config: networks.NetworkConfig, params: Mapping[str, Any],
               styles: Optional[Sequence[str]] = None, info: Optional[Mapping[str, Any]] = None
               ) -> Path:
  """Writes ``model.npz`` + ``model.json`` into ``model_dir`` (created); returns the directory.

  Args:
    model_dir: the output directory (existing model files are replaced atomically).
    config: the architecture.
    params: nested ``{layer: {name: array}}``, Flax variables ``{'params': {'layer.name': ..}}``
      or the flat ``{'layer/name': array}`` form.
    styles: one name per style (default ``style0``...).
    info: free-form JSON-able provenance (training config, steps, losses...).

  Raises:
    ConfigError: params do not match the config or ``styles`` has the wrong length.
    ModelError: the directory cannot be written.
  """
  model_dir = Path(model_dir).expanduser()
  if 'params' in params and isinstance(params['params'], Mapping):
    params = params['params']
  nested = network_params.check_params(config, network_params.unflatten_params(
      network_params.flatten_params(params)))
  styles = list(styles) if styles is not None else [f'style{i}' for i in range(config.num_styles)]
  if len(styles) != config.num_styles:
    raise ConfigError(f'{len(styles)} style names for a network with {config.num_styles} styles')
  buf = io.BytesIO()
  flat: dict[str, Any] = network_params.flatten_params(nested)
  np.savez(buf, **flat)
  data = buf.getvalue()
  meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'network': config.to_dict(),
          'styles': [str(s) for s in styles], 'npz_sha256': hashlib.sha256(data).hexdigest(),
          'info': dict(info or {})}
  try:
    model_dir.mkdir(parents=True, exist_ok=True)
    _atomic_bytes(model_dir / NPZ, data)
    _atomic_bytes(model_dir / JSON, json.dumps(meta, indent=1, default=str).encode())
  except OSError as e:
    raise ModelError(f'cannot write the model to {model_dir} ({e.strerror or e}); choose a '
                     'writable --output directory') from e
  return model_dir


def _resolve_dir(path: PathLike) -> Path:
  p = Path(path).expanduser()
  if p.name in (NPZ, JSON) and not p.is_dir():
    p = p.parent
  if not p.exists():
    raise ModelError(f'model {path} does not exist; pass --model=DIR (a training output '
                     f'directory with {JSON} and {NPZ}) or a built-in style with '
                     '--config.style_index=N')
  if not p.is_dir():
    raise ModelError(f'model {path} is not a directory; pass the training output directory '
                     f'(the one holding {JSON} and {NPZ})')
  for name in (JSON, NPZ):
    if not (p / name).is_file():
      raise ModelError(f'model directory {p} has no {name}; it is not a trained model (or its '
                       'training did not finish)')
  return p


def load_model(path: PathLike) -> Model:
  """Loads a model directory (or its ``model.json``/``model.npz``) written by :func:`save_model`.

  Raises:
    ModelError: missing, corrupt, mismatched or unknown-format files (one line each).
  """
  d = _resolve_dir(path)
  try:
    meta = json.loads((d / JSON).read_text())
    if not isinstance(meta, dict):
      raise ValueError('not a JSON object')
  except (OSError, ValueError, UnicodeDecodeError) as e:
    raise ModelError(f'{d / JSON} is corrupt ({" ".join(str(e).split())}); retrain or restore '
                     'the model') from e
  if meta.get('format') != FORMAT:
    raise ModelError(f'{d / JSON} is not an nst_jax transformer model (format '
                     f'{meta.get("format")!r}, expected {FORMAT!r})')
  if meta.get('format_version', 0) > FORMAT_VERSION:
    raise ModelError(f'{d} was written by a newer nst_jax (format version '
                     f'{meta["format_version"]}); upgrade nst_jax')
  try:
    data = (d / NPZ).read_bytes()
  except OSError as e:
    raise ModelError(f'cannot read {d / NPZ} ({e.strerror or e})') from e
  if meta.get('npz_sha256') and hashlib.sha256(data).hexdigest() != meta['npz_sha256']:
    raise ModelError(f'{d / NPZ} does not match {d / JSON} (checksum differs: truncated, '
                     'corrupt or from another run); retrain or restore the model')
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except Exception as e:  # pylint: disable=broad-except  # BadZipFile, ValueError, EOFError
    raise ModelError(f'{d / NPZ} is corrupt ({" ".join(str(e).split())}); retrain or restore the '
                     'model') from e
  try:
    config = networks.NetworkConfig.from_dict(meta.get('network') or {})
    params = network_params.check_params(config, network_params.unflatten_params(flat),
                                         str(d / NPZ))
  except ConfigError as e:
    raise ModelError(str(e)) from e
  styles = [str(s) for s in meta.get('styles') or []]
  if len(styles) != config.num_styles:
    styles = [f'style{i}' for i in range(config.num_styles)]
  return Model(config, params, styles, str(d), dict(meta.get('info') or {}))


def load_builtin(name: str = 'multistyle26', cache_dir: Optional[PathLike] = None) -> Model:
  """A built-in pretrained network from converted ONNX weights (converted on first use)."""
  if name not in BUILTINS:
    raise ModelError(f'unknown built-in model {name!r}; choose one of {", ".join(BUILTINS)}')
  from nst_jax.models import onnx_import as onnx_convert  # pylint: disable=g-import-not-at-top
  arrays = onnx_convert.load_converted(name, cache_dir=cache_dir)
  try:
    config, params = network_params.from_onnx_arrays(arrays)
  except ConfigError as e:
    raise ModelError(f'converted {name} weights do not match the network ({e}); delete '
                     f'{onnx_convert.cached_path(name, cache_dir)} to convert again') from e
  return Model(config, params, [f'style{i}' for i in range(config.num_styles)], name,
               {'builtin': name})
