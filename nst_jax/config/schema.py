"""The configuration schema of the ``stylize`` job, its validation, and config locking.

Presets call :func:`base_config` and override what their source specifies, so every field exists
in every config and ``--config.FIELD=VALUE`` works for all of them. Layer lists and per-layer
weights are comma-separated strings so they can be overridden on the command line
(``--config.style_layers=conv1_1,conv3_1``). Defaults live only in :func:`base_config`;
:func:`validate` (beside it) checks every field before anything expensive happens.

Configs are locked (:func:`lock`): setting a field that does not exist raises
:class:`~nst_jax.errors.ConfigError` naming the nearest valid field, whether the misspelling comes
from ``run.py --config.num_stpes=5``, ``run.py --modle=...`` or ``nst_jax.stylize(...,
num_stpes=5)``. Other jobs' schemas (``fast``, ``arbitrary``, ``train``) use the same helpers:
``lock(config)`` at the end of their ``*_config()`` and :func:`override` / :func:`apply_fields`
to set fields.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from pathlib import Path
import sys
from typing import Any, Iterable, Mapping, Optional, Union

import ml_collections

from nst_jax.errors import ConfigError


def split_list(text: Any) -> list[str]:
  """A comma-separated config string (paths, names) as a list, blanks dropped."""
  return [p.strip() for p in str(text or '').split(',') if p.strip()]


# ---------------------------------------------------------------------------------------------
# Locking and overriding (shared by every job's schema).


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks ``config`` (and its sub-configs) against new fields; returns it."""
  config.lock()
  return config


def field_names(config: Union[ml_collections.ConfigDict, Mapping]) -> list[str]:
  """Every leaf field as a dotted path (``'optimizer.learning_rate'``), sorted."""
  out = []
  for k, v in config.items():
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      out += [f'{k}.{sub}' for sub in field_names(v)]
    else:
      out.append(str(k))
  return sorted(out)


def nearest_field(config: Union[ml_collections.ConfigDict, Mapping], name: str) -> Optional[str]:
  """The field whose dotted path is closest to ``name`` (or None if nothing is close)."""
  names = field_names(config)
  match = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
  if not match:  # Compare leaves too: 'lerning_rate' -> 'optimizer.learning_rate'.
    leaves = {n.rsplit('.', 1)[-1]: n for n in names}
    leaf = difflib.get_close_matches(name.rsplit('.', 1)[-1], list(leaves), n=1, cutoff=0.6)
    match = [leaves[leaf[0]]] if leaf else []
  return match[0] if match else None


def did_you_mean(name: str, choices: Iterable[Any]) -> str:
  """``'; did you mean X?'`` for the choice nearest to ``name``, or ``''`` if none is close."""
  match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
  return f'; did you mean {match[0]!r}?' if match else ''


def unknown_field(config: ml_collections.ConfigDict, name: str, how: str = '') -> ConfigError:
  """The ConfigError for a field ``name`` the config lacks, naming the nearest valid field.

  ``how`` is appended after the name (e.g. ``' given to stylize()'``).
  """
  near = nearest_field(config, name)
  job = config.get('job', '') if hasattr(config, 'get') else ''
  where = f' (job={job})' if job else ''
  hint = f'; did you mean {near!r}?' if near else '; see the schemas in nst_jax/config/schema/'
  return ConfigError(f'unknown config field {name!r}{how}{where}{hint}')


def has_field(config: ml_collections.ConfigDict, path: str) -> bool:
  node: Any = config
  for part in path.split('.'):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return False
    node = node[part]
  return True


def override(config: ml_collections.ConfigDict, overrides: Mapping[str, Any],
             how: str = '') -> ml_collections.ConfigDict:
  """Sets dotted-path fields in place (``{'optimizer.name': 'adam', 'size': 256}``).

  A dict value for a sub-config sets its fields one by one. Unknown fields raise ConfigError
  naming the nearest valid field; a value of the wrong type raises ConfigError too. Returns
  ``config``.
  """
  for path, value in overrides.items():
    if not has_field(config, path):
      raise unknown_field(config, path, how)
    *parents, leaf = path.split('.')
    node = config
    for p in parents:
      node = node[p]
    if isinstance(node[leaf], ml_collections.ConfigDict) and isinstance(value, Mapping):
      override(config, {f'{path}.{k}': v for k, v in value.items()}, how)
      continue
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f'config field {path}={value!r}{how}: {e}') from None
  return config


def apply_fields(config: ml_collections.ConfigDict, values: Mapping[str, Any],
                 how: str = ' (flag --{name})') -> ml_collections.ConfigDict:
  """Sets the config field of the same name for every non-None value (run.py's --content,
  --style, --output, --model, ... flags). A name the config lacks raises ConfigError.
  """
  for name, value in values.items():
    if value is None:
      continue
    if not has_field(config, name):
      near = nearest_field(config, name)
      hint = f' (nearest field: {near!r})' if near else ''
      raise ConfigError(f'--{name} does not apply to this config (job='
                        f'{config.get("job", "?")}): it has no field {name!r}{hint}')
    override(config, {name: value}, how.format(name=name))
  return config


# ---------------------------------------------------------------------------------------------
# Presets (configs/ is a package: presets import each other; files load by path too).

CONFIGS_DIR = Path(__file__).resolve().parents[2] / 'configs'


def load_preset(name_or_path: Union[str, Path]) -> ml_collections.ConfigDict:
  """``get_config()`` of a preset: a name in ``configs/`` (``'gatys2015'``) or a file path.

  Presets are modules of the ``configs`` package (``from configs import gatys2015``); the
  project root is put on ``sys.path`` if needed so this works from any working directory.
  """
  path = Path(name_or_path)
  if path.suffix != '.py':
    path = CONFIGS_DIR / f'{name_or_path}.py'
  if not path.is_file():
    raise ConfigError(f'no preset {name_or_path!r}: expected a file {path}')
  root = str(path.resolve().parent.parent)
  if root not in sys.path:
    sys.path.insert(0, root)
  if path.resolve().parent == CONFIGS_DIR or (path.resolve().parent / '__init__.py').is_file():
    module = importlib.import_module(f'{path.resolve().parent.name}.{path.stem}')
  else:
    spec = importlib.util.spec_from_file_location(f'_nst_preset_{path.stem}', path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  return module.get_config()
