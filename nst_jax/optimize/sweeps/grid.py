"""Sweep grids: parse ``config.sweep.axes``, expand them into single-run configs, group the configs
that share one compiled program (see :mod:`nst_jax.optimize.sweeps.run` for the whole feature).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any, Iterable, Iterator, Mapping, Sequence

import ml_collections

from nst_jax.errors import ConfigError
from nst_jax.losses import controls
from nst_jax.optimize import method as method_lib
from nst_jax.optimize import problem as problem_lib

MODES = ('product', 'zip')
# Fields that vary inside one compiled program; every other field splits the sweep into groups.
BATCHABLE = frozenset({
    'content_weight', 'style_weight', 'tv_weight', 'loss_scale',
    'content_layers', 'style_layers', 'content_layer_weights', 'style_layer_weights',
    'style', 'style_blend_weights', 'seed', 'init', 'init_image', 'init_noise_ratio',
    'gram_shift',
    'optimizer.schedule',
    *(f'optimizer.{k}' for k in method_lib.HYPER_KEYS + method_lib.OTHER_NUMERIC_KEYS)})
# Fields that never matter to the optimisation (so never split groups).
_IGNORED = ('output', 'output_dir', 'resume', 'save_every', 'profile_dir', 'max_pixels', 'weights')


# ---------------------------------------------------------------------------------------------
# Expansion and grouping.


@dataclasses.dataclass(frozen=True)
class SweepAxis:
  """One named axis: a config field path and its raw (string) values."""
  name: str
  values: tuple[str, ...]


def parse_axes(text: str) -> list[SweepAxis]:
  """Parses ``'content_weight=1e-8,1e-6; style_weight=1e-2'`` into axes (order kept)."""
  axes, seen = [], set()
  for part in re.split(r'[;\n]', str(text or '')):
    part = part.strip()
    if not part:
      continue
    # FIELD=V1,V2 (or FIELD:V1,V2); values may hold ':' (mmd_kernel, stage lists) after '='.
    name, sep, vals = part.partition('=' if '=' in part else ':')
    name = name.strip()
    values = tuple(v.strip() for v in vals.split(',') if v.strip())
    if not sep or not name or not values:
      raise ConfigError(f'sweep axis {part!r} must look like FIELD=V1,V2,... (or FIELD:V1,...) '
                        "(axes separated by ';', values by ',')")
    if name in seen:
      raise ConfigError(f'sweep axis {name!r} appears twice')
    seen.add(name)
    axes.append(SweepAxis(name, values))
  return axes


def expand(config: ml_collections.ConfigDict) -> tuple[list[SweepAxis], list[dict[str, str]]]:
  """The sweep's axes and its points (``{field: raw value}``), in row-major order."""
  s = config.sweep
  axes = parse_axes(s.axes)
  if not axes:
    raise ConfigError('config.sweep.axes is empty: nothing to sweep')
  for a in axes:
    field_of(config, a.name)
  names = [a.name for a in axes]
  combos: Iterable[tuple[str, ...]]
  if s.mode == 'product':
    combos = itertools.product(*(a.values for a in axes))
  elif s.mode == 'zip':
    lengths = {a.name: len(a.values) for a in axes}
    if len(set(lengths.values())) > 1:
      raise ConfigError(f'sweep.mode=zip needs axes of equal length, got {lengths}')
    combos = zip(*(a.values for a in axes))
  else:
    raise ConfigError(f'unknown sweep.mode {s.mode!r}; choose one of {", ".join(MODES)}')
  return axes, [dict(zip(names, c)) for c in combos]


def field_of(config: ml_collections.ConfigDict, path: str) -> tuple[Any, str]:
  """(parent node, leaf name) of a dotted config path; ConfigError if it is not a field."""
  node = config
  *parents, leaf = path.split('.')
  try:
    for p in parents:
      node = node[p]
    value = node[leaf]
  except (KeyError, AttributeError, TypeError):
    value = None
    node = None
  if node is None or isinstance(value, ml_collections.ConfigDict) or path.startswith('sweep'):
    raise ConfigError(f'sweep axis {path!r} is not a config field (use paths such as '
                      'content_weight, optimizer.learning_rate, style_layers)')
  return node, leaf


def _coerce(old: Any, raw: str, path: str) -> Any:
  try:
    if isinstance(old, bool):
      if raw.lower() in ('true', '1', 'yes'):
        return True
      if raw.lower() in ('false', '0', 'no'):
        return False
      raise ValueError
    if isinstance(old, int):
      f = float(raw)
      if not f.is_integer():
        raise ValueError
      return int(f)
    if isinstance(old, float):
      return float(raw)
  except ValueError:
    raise ConfigError(f'sweep value {raw!r} is not a valid {type(old).__name__} for {path}'
                      ) from None
  return raw.replace('+', ',')


def materialize(config: ml_collections.ConfigDict, point: Mapping[str, str]
                ) -> ml_collections.ConfigDict:
  """The single-run config of one sweep point (validated)."""
  c = config.copy_and_resolve_references()
  for path, raw in point.items():
    node, leaf = field_of(c, path)
    node[leaf] = _coerce(node[leaf], raw, path)
  c.sweep.axes = ''
  if c.stages == controls.AUTO_STAGES:
    c.stages = ''  # a preset's default schedule: sweeps run one scale (one program per group)
  if c.stages:
    raise ConfigError('coarse-to-fine stages are not supported in sweeps; sweep size instead')
  try:
    problem_lib.validate(c)
  except ConfigError as e:
    raise ConfigError(f'sweep point {dict(point)}: {e}') from None
  return c


def _flat(d: Mapping, prefix: str = '') -> Iterator[tuple[str, Any]]:
  for k, v in d.items():
    if isinstance(v, Mapping):
      yield from _flat(v, f'{prefix}{k}.')
    else:
      yield f'{prefix}{k}', v


def static_key(config: ml_collections.ConfigDict) -> tuple:
  """The fields that change the compiled program (configs with equal keys batch together)."""
  key = tuple((k, repr(v)) for k, v in sorted(_flat(config.to_dict()))
              if k not in BATCHABLE and k not in _IGNORED and not k.startswith('sweep.'))
  if not config.content and not (config.height and config.width):
    key += (('shape_from_style', config.style.split(',')[0].strip()),)
  if config.chain:  # Chain links join neighbouring style layers: no union of layer sets.
    key += (('style_layers', config.style_layers), ('weights', config.style_layer_weights))
  if config.style_loss != 'gram':
    # One target per style image (its features' statistics, not a blendable Gram), stacked over
    # the group's configs: each group keeps its style images and their sizes.
    key += (('style', config.style), ('style_blend_weights', config.style_blend_weights))
  return key


def group_indices(configs: Sequence[ml_collections.ConfigDict]) -> list[list[int]]:
  """Indices of configs sharing a :func:`static_key`, groups in order of first appearance."""
  groups: dict[tuple, list[int]] = {}
  for i, c in enumerate(configs):
    groups.setdefault(static_key(c), []).append(i)
  return list(groups.values())


def get_field(config: ml_collections.ConfigDict, path: str) -> Any:
  """The value at a dotted config path."""
  node, leaf = field_of(config, path)
  return node[leaf]


def describe_static(config: ml_collections.ConfigDict, axes: Sequence[SweepAxis]) -> str:
  """The group-splitting axis values of a config, for progress lines."""
  parts = [f'{a.name}={get_field(config, a.name)}' for a in axes if a.name not in BATCHABLE]
  return ', '.join(parts) or 'one program'
