"""The one checkpoint format of the project: stylize runs, sweeps and training runs.

A checkpoint is a plain ``.npz`` (no pickle: :func:`nst_jax.io.files.write_npz`) holding a
state's leaves as ``leaf_0000``, ``leaf_0001``, ... (in ``jax.tree.leaves`` order), optional
extra arrays as ``x_NAME``, and one JSON metadata entry with at least ``version``, ``step`` and
``key``. It is written atomically, so a run stopped at any moment leaves either the previous
checkpoint or the new one.

``key`` is a hash of the config's fields that define what a step computes
(:func:`resume_key`): a checkpoint resumes only into a run with its own key, and fields that do
not change the computation (step counts, logging, output paths: :data:`RESUME_IRRELEVANT`) may
change between the stop and the resume. Callers turn their state into leaves and back; the
L-BFGS state's checkpoint form is :func:`nst_jax.optimize.lbfgs.checkpoint_leaves`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from nst_jax.errors import ConfigError, NSTError
from nst_jax.io import files as fileio

VERSION = 1

# Fields added after checkpoints were first written, with the value that means "as before": a
# config holding that value hashes as if the field did not exist, so checkpoints written before
# the field was added still resume (add new fields here).
ADDED_FIELDS: dict[str, Any] = {
    'conv_dtype': 'float32', 'style_loss': 'gram', 'content_loss': 'mse', 'mmd_kernel': 'poly',
    'mmd_c': 0.0, 'cmd_order': 5, 'sw_projections': -1, 'mrf_patch_size': 3, 'mrf_stride': 1,
    'style_samples': 1024,
    'finetune': {'model': '', 'train_all': False, 'init': 'mean'}, 'ghiasi_weights': '',
    'adain': {'pretrain_steps': 0, 'pixel_weight': 1.0, 'feature_weight': 1.0}}

# Added fields whose arrival also changed what older checkpoints of some configs mean: for a
# config with these values the field stays in the key, so those checkpoints do not resume.
# (The AdaIN decoder's output and loss units changed with its pre-training fields.)
MEANING_CHANGED: dict[str, dict[str, Any]] = {'adain': {'network': 'adain'}}

# Per job: the fields that do not change what a step computes, so a checkpoint resumes across
# changes of these.
# A dotted name is a nested field (``sweep.coordinator``).
RESUME_IRRELEVANT: dict[str, tuple[str, ...]] = {
    'stylize': ('num_steps', 'log_every', 'save_every', 'resume', 'output', 'profile_dir',
                'output_dir', 'sweep.coordinator', 'sweep.num_processes', 'sweep.process_id',
                'sweep.connect_timeout'),
    'train': ('num_steps', 'max_minutes', 'chunk', 'prefetch', 'sample_every', 'sample_image',
              'sample_size', 'save_every', 'resume', 'output', 'progress', 'shard',
              'distributed', 'coordinator', 'num_processes', 'process_id', 'connect_timeout'),
}


def config_key(config: ml_collections.ConfigDict, ignore: Sequence[str]) -> str:
  """A hash of the config's fields but ``ignore`` (and :data:`ADDED_FIELDS` at their old
  meaning): a checkpoint resumes only into a config with its own key."""
  d = config.to_dict()
  for name in ignore:
    _pop(d, name)
  for name, old in ADDED_FIELDS.items():
    if not any(d.get(k) == v for k, v in MEANING_CHANGED.get(name, {}).items()):
      _pop(d, name, old)
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _pop(d: dict, name: str, only_if: Any = ...) -> None:
  """Removes the (dotted) field ``name`` from the nested dict ``d`` (if it equals ``only_if``,
  when given)."""
  *parents, leaf = name.split('.')
  node: Any = d
  for p in parents:
    node = node.get(p)
    if not isinstance(node, dict):
      return
  if leaf in node and (only_if is ... or node[leaf] == only_if):
    del node[leaf]


def resume_key(config: ml_collections.ConfigDict, job: str = 'stylize') -> str:
  """The checkpoint key of a ``job`` config (:data:`RESUME_IRRELEVANT` left out)."""
  return config_key(config, RESUME_IRRELEVANT[job])


def path_for(output: Path) -> Path:
  """Where a stylize run writing ``output`` keeps its checkpoint (``NAME.ckpt.npz``)."""
  return output.with_name(output.stem + '.ckpt.npz')


def save(path: Path, leaves: Sequence[Any], step: int, key: str, meta: Optional[dict] = None,
         arrays: Optional[Mapping[str, np.ndarray]] = None) -> None:
  """Writes ``leaves``, ``step`` and ``key`` atomically; ``meta`` joins the JSON metadata and
  ``arrays`` are stored as ``x_NAME``."""
  meta = {'version': VERSION, 'step': int(step), 'key': key, **(meta or {})}
  out: dict[str, Any] = {f'leaf_{i:04d}': np.asarray(x) for i, x in enumerate(leaves)}
  out.update({f'x_{k}': np.asarray(v) for k, v in (arrays or {}).items()})
  fileio.write_npz(path, out, meta)


def _read(path: Path, key: str, names: Callable[[str], bool], what: str
          ) -> tuple[dict, dict[str, np.ndarray]]:
  """The metadata and the arrays ``names`` selects (only those are read from the file)."""
  try:
    arrays, meta = fileio.read_npz(path, names)
    if 'key' not in meta:
      raise ValueError('no checkpoint metadata')
  except (OSError, ValueError) as e:
    raise NSTError(f'checkpoint {path} is unreadable ({e}); delete it to start over') from e
  if meta.get('key') != key:
    raise ConfigError(f'checkpoint {path} belongs to a different {what}; delete it, use another '
                      'output or run without --config.resume')
  return meta, arrays


def read_step(path: Path, key: str, what: str = 'configuration') -> int:
  """The step a checkpoint was saved at; raises if it is unreadable or of another config."""
  return int(_read(path, key, lambda name: False, what)[0]['step'])


def read_meta(path: Path, key: str, what: str = 'configuration'
              ) -> tuple[dict, dict[str, np.ndarray]]:
  """A checkpoint's metadata and its extra arrays (``arrays`` of :func:`save`), no leaves."""
  meta, extras = _read(path, key, lambda name: name.startswith('x_'), what)
  return meta, {k[2:]: v for k, v in extras.items()}


def read(path: Path, key: str, what: str = 'configuration') -> tuple[dict, list[np.ndarray]]:
  """A checkpoint's metadata and leaves (ConfigError if it is another config's)."""
  meta, arrays = _read(path, key, lambda name: name.startswith('leaf_'), what)
  try:
    return meta, [arrays[f'leaf_{i:04d}'] for i in range(len(arrays))]
  except KeyError as e:
    raise NSTError(f'checkpoint {path} is unreadable (no array {e}); delete it to start over'
                   ) from e
