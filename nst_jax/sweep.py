"""Batched sweeps: a grid of configurations as one jitted, vmapped, sharded program per group.

A sweep is a base config plus ``config.sweep`` (defaults in :func:`nst_jax.config.base_config`):

``axes``
  ``'FIELD=V1,V2,...; FIELD2=W1,W2,...'``. ``FIELD`` is any config field path
  (``content_weight``, ``optimizer.learning_rate``, ``style_layers``, ``size``...); axes are
  separated by ``;`` and values by ``,``. Inside a value ``+`` stands for the comma of list-valued
  fields, so ``style_layers=conv1_1+conv2_1,conv1_2+conv2_2`` is two layer sets.
``mode``
  ``'product'`` (every combination, first axis slowest) or ``'zip'`` (the i-th values together;
  all axes equally long).
``rows``
  comma-separated axes indexing the contact sheet's rows (cells sharing their values form a row);
  the other axes index the columns. ``''``: the first axis for a product of several axes, else
  a near-square grid.
``max_batch``
  configurations per compiled batch; a larger group runs in equal chunks of at most this size.
``shard``
  shard the batch axis over every device (``Mesh(jax.devices(), ('batch',))``); the batch is
  padded to a multiple of the device count.
``distributed``
  call ``jax.distributed.initialize()`` first (multi-host runs; only process 0 writes files).
``cell_size``
  longest side of a contact-sheet thumbnail (images are never upscaled).
``output_dir``
  default output directory (``run.py --output_dir`` overrides it).

Numeric fields (:data:`BATCHABLE`: loss weights, layer choices, style images and blend weights,
seed and initialisation, optimiser hyperparameters) vary inside one program: layer choices become
per-layer weight vectors over the union of the group's layers (zero for unused layers, ``1/L``
per used layer unless ``*_layer_weights`` say otherwise), style images become per-config blend
vectors over the group's style Grams (computed once), and constant learning-rate schedules join
exponential ones as ``decay_rate = 1``. Every other field (optimiser kind, size, pooling, loss
normalisation, ``num_steps``...) splits the sweep into groups, one compiled program each.
Configs with perceptual controls (masks, colour control, scale mixing, Novak's chain) carry
per-config targets built by :func:`engine.build_problem`; ``stages`` are not supported.

:func:`run_sweep` writes one PNG per config, ``contact_sheet.png``, ``results.csv`` and
``results.json`` into the output directory. From the command line (any preset becomes a sweep
with ``--config.sweep.axes``)::

  python run.py --config=configs/sweep_loss_weights.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_loss_weights
  python run.py --config=configs/gatys2015.py --content=... --style=... --output_dir=out/lr \
      --config.sweep.axes='optimizer.learning_rate=0.5,1,2;seed=0,1' --config.size=256
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import itertools
import math
import os
from pathlib import Path
import re
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nst_jax import engine, image_io, objective, optim, profiling, vgg
from nst_jax.errors import ConfigError, ImageError

MODES = ('product', 'zip')
# Fields that vary inside one compiled program; every other field splits the sweep into groups.
BATCHABLE = frozenset({
    'content_weight', 'style_weight', 'tv_weight', 'loss_scale',
    'content_layers', 'style_layers', 'content_layer_weights', 'style_layer_weights',
    'style', 'style_blend_weights', 'seed', 'init', 'init_image', 'init_noise_ratio',
    'gram_shift',
    'optimizer.schedule', *(f'optimizer.{k}' for k in optim.HYPER_KEYS)})
# Fields that never matter to the optimisation (so never split groups).
_IGNORED = ('output', 'resume', 'save_every', 'profile_dir', 'max_pixels', 'weights')
# Short names for contact-sheet labels.
SHORT_NAMES = {
    'content_weight': 'content', 'style_weight': 'style', 'tv_weight': 'tv',
    'optimizer.name': 'opt', 'optimizer.learning_rate': 'lr', 'optimizer.schedule': 'sched',
    'optimizer.decay_rate': 'decay', 'content_layers': 'c_layers', 'style_layers': 's_layers',
    'style_blend_weights': 'blend', 'init_noise_ratio': 'noise', 'content_layer_weights':
    'c_weights', 'style_layer_weights': 's_weights'}


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
    name, sep, vals = part.partition('=')
    name = name.strip()
    values = tuple(v.strip() for v in vals.split(',') if v.strip())
    if not sep or not name or not values:
      raise ConfigError(f'sweep axis {part!r} must look like FIELD=V1,V2,... '
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
    _field(config, a.name)
  names = [a.name for a in axes]
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


def _field(config, path: str):
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


def _coerce(old, raw: str, path: str):
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
    node, leaf = _field(c, path)
    node[leaf] = _coerce(node[leaf], raw, path)
  c.sweep.axes = ''
  if c.get('stages'):
    raise ConfigError('coarse-to-fine stages are not supported in sweeps; sweep size instead')
  try:
    engine.validate(c)
  except ConfigError as e:
    raise ConfigError(f'sweep point {dict(point)}: {e}') from None
  return c


def _flat(d: Mapping, prefix: str = ''):
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
  if config.get('chain'):  # Chain links join neighbouring style layers: no union of layer sets.
    key += (('style_layers', config.style_layers), ('weights', config.style_layer_weights))
  return key


def group_indices(configs: Sequence[ml_collections.ConfigDict]) -> list[list[int]]:
  """Indices of configs sharing a :func:`static_key`, groups in order of first appearance."""
  groups: dict[tuple, list[int]] = {}
  for i, c in enumerate(configs):
    groups.setdefault(static_key(c), []).append(i)
  return list(groups.values())


# ---------------------------------------------------------------------------------------------
# One group as stacked arrays.


@dataclasses.dataclass
class Batch:
  """A group of configs as arrays with a leading batch axis, plus what they share.

  Standard configs share their targets: ``shared`` = (content targets, per-style targets stacked
  on a leading style axis), blended per config by ``blend`` inside the program. Configs with
  perceptual controls (masks, colour control, scale mixing, correlation chains) carry their own
  targets, built by :func:`engine.build_problem`, in ``targets`` (leading batch axis).
  """
  spec: objective.Spec
  mspec: optim.MethodSpec
  shape: tuple[int, int]
  shared: Any             # (content Targets or None, stacked per-style Targets or None) or None
  targets: Any            # per-config Targets (leading B) or None
  blend: np.ndarray       # (B, S) per-config style blend weights (sum to 1)
  z0: np.ndarray          # (B, H, W, 3) optimiser-domain initial images
  weights: objective.Weights  # leaves with a leading B axis
  hyper: dict             # optimiser hyperparameters, leaves (B,)
  problems: Optional[list] = None  # per-config engine.Problem (controls), for rendering

  @property
  def size(self) -> int:
    return int(self.z0.shape[0])

  def render(self, i: int, z: np.ndarray) -> np.ndarray:
    """Config ``i``'s optimiser-domain image as float32 RGB 0..255 (controls applied)."""
    if self.problems is not None and hasattr(engine, 'render'):
      return np.asarray(engine.render(self.problems[i], z), np.float32)
    return np.asarray(objective.to_image(z, self.spec), np.float32)


class ImageCache:
  """Loads each image file once per sweep."""

  def __init__(self, max_pixels: int = image_io.DEFAULT_MAX_PIXELS):
    self._images: dict[str, np.ndarray] = {}
    self.max_pixels = max_pixels

  def __call__(self, path: str) -> Optional[np.ndarray]:
    if path.lower() == 'none':  # An unstyled region (with masks).
      return None
    if path not in self._images:
      self._images[path] = image_io.load_image(path, max_pixels=self.max_pixels)
    return self._images[path]

  def put(self, name: str, image: np.ndarray) -> str:
    """Serves an in-memory uint8 image under ``name`` (used as a config path)."""
    self._images[name] = image_io.resize_image(image, max_pixels=None)
    return name


CONTROL_FIELDS = ('mask', 'masks', 'labels', 'style_masks', 'scale_mix_layer', 'chain')


def uses_controls(config) -> bool:
  """Whether a config needs per-config targets (perceptual controls, Novak's chain)."""
  return (any(config.get(f) for f in CONTROL_FIELDS)
          or config.get('color_control', 'none') != 'none')


def _by_depth(layers) -> tuple[str, ...]:
  return tuple(sorted(set(layers), key=vgg.LAYERS.index))


def _scatter(values, own: Sequence[str], union: Sequence[str]) -> np.ndarray:
  v = np.zeros(len(union), np.float32)
  w = np.full(len(own), 1. / max(len(own), 1), np.float32) if values is None else values
  for l, x in zip(own, w):
    v[union.index(l)] += np.float32(x)
  return v


def _same_schedules(configs):
  """Constant learning rates join exponential ones as ``decay_rate = 1`` (same program)."""
  if len({c.optimizer.schedule for c in configs}) < 2:
    return configs
  out = []
  for c in configs:
    if c.optimizer.schedule == 'constant':
      c = c.copy_and_resolve_references()
      c.optimizer.schedule, c.optimizer.decay_rate = 'exponential', 1.
    out.append(c)
  return out


def _stack(trees):
  return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)


def build_batch(configs: Sequence[ml_collections.ConfigDict], params: Mapping,
                images: Callable[[str], Optional[np.ndarray]]) -> Batch:
  """Stacks one group's configs (equal :func:`static_key`) into a :class:`Batch`.

  Layer choices become weight vectors over the union of the group's layers (ordered by depth),
  zero for a config's unused layers.
  """
  from nst_jax import runner  # pylint: disable=g-import-not-at-top
  configs = _same_schedules(configs)
  base = configs[0]
  specs = [engine.make_spec(c) for c in configs]
  spec = specs[0]._replace(
      content_layers=_by_depth(l for s in specs for l in s.content_layers),
      style_layers=_by_depth(l for s in specs for l in s.style_layers),
      use_tv=any(s.use_tv for s in specs))
  methods = [optim.spec_and_hyper(c.optimizer, c.image_range) for c in configs]
  mspec = methods[0][0]
  if any(m != mspec for m, _ in methods):
    raise ConfigError('configs of one group have different optimiser programs')
  own_styles = [runner.split_paths(c.style) for c in configs]
  content = images(base.content) if base.content else None
  vectors = []
  for c, s in zip(configs, specs):
    cw, sw = engine.layer_weight_lists(c, s)
    vectors.append((_scatter(cw, s.content_layers, spec.content_layers),
                    _scatter(sw, s.style_layers, spec.style_layers)))
  init = lambda c: images(c.init_image) if c.init == 'image' and c.init_image else None
  if uses_controls(base):
    return _build_with_controls(configs, own_styles, vectors, spec, params, content, images, init)

  style_paths = tuple(dict.fromkeys(p for ps in own_styles for p in ps))
  raw_styles = {p: images(p) for p in style_paths}
  for c, s, ps in zip(configs, specs, own_styles):
    if (s.content_layers or c.init in ('content', 'blend')) and content is None:
      raise ConfigError(f'mode={c.mode} with init={c.init} needs a content image')
    if s.style_layers and not ps:
      raise ConfigError(f'mode={c.mode} needs at least one style image')
  shape = engine.output_shape(base, content, [raw_styles[p] for p in own_styles[0]])
  cap = int(base.max_pixels)  # the user's cap (issue 10)
  content_r = None if content is None else image_io.resize_image(content, shape=shape,
                                                                 max_pixels=cap)
  longest = max(1, round(max(shape) * float(base.style_scale)))
  styles_r = {p: image_io.resize_image(raw_styles[p], size=longest, max_pixels=cap)
              for p in style_paths}
  content_t = objective.compute_targets(params, spec._replace(style_layers=()), content_r, []
                                        ) if spec.content_layers else None
  style_t = _stack([objective.compute_targets(params, spec._replace(content_layers=()), None,
                                              [styles_r[p]]) for p in style_paths]
                   ) if spec.style_layers and style_paths else None

  z0, blend, weights, hyper = [], [], [], []
  for c, ps, (vc, vs), (_, h) in zip(configs, own_styles, vectors, methods):
    b = engine._floats(  # pylint: disable=protected-access
        c.style_blend_weights, 'style_blend_weights')
    if b is not None and len(b) != len(ps):
      raise ConfigError(f'{len(b)} style_blend_weights for {len(ps)} style images')
    b = np.ones(len(ps), np.float32) if b is None else np.asarray(b, np.float32)
    blend.append(_scatter(list(b / np.sum(b)) if len(ps) else [], ps, style_paths))
    w = objective.make_weights(spec, c.content_weight, c.style_weight, c.tv_weight, vc, vs,
                               c.loss_scale)
    if 'gram_shift' in w._fields:
      w = w._replace(gram_shift=np.float32(c.get('gram_shift', 0.)))
    weights.append(w)
    hyper.append(h)
    x0 = engine.initial_image(c, shape, content_r, [styles_r[p] for p in ps], init(c))
    z0.append(objective.from_image(x0, spec))
  return Batch(spec, mspec, shape, (content_t, style_t), None, np.stack(blend), _stack(z0),
               _stack(weights), _stack(hyper))


def _build_with_controls(configs, own_styles, vectors, spec, params, content, images, init
                         ) -> Batch:
  """Per-config problems (:func:`engine.build_problem`) over the group's union of layers."""
  from nst_jax import controls  # pylint: disable=g-import-not-at-top
  fmt = lambda v: ','.join(repr(float(x)) for x in v)
  problems = []
  for c, ps, (vc, vs) in zip(configs, own_styles, vectors):
    u = c.copy_and_resolve_references()
    if spec.content_layers:
      u.content_layers, u.content_layer_weights = ','.join(spec.content_layers), fmt(vc)
    if spec.style_layers:
      u.style_layers, u.style_layer_weights = ','.join(spec.style_layers), fmt(vs)
    if 'layer_weighting' in u:
      u.layer_weighting = 'uniform'
    styles = [images(p) for p in ps]
    masks, style_masks = controls.config_masks(u, len(styles))
    problems.append(engine.build_problem(u, params, content, styles, init(c), masks,
                                         style_masks))
  p0 = problems[0]
  if any(p.spec != p0.spec or p.shape != p0.shape for p in problems):
    raise ConfigError('configs of one group built different programs (masks or sizes differ)')
  n = len(problems)
  return Batch(p0.spec._replace(use_tv=spec.use_tv), p0.mspec, p0.shape, None,
               _stack([p.targets for p in problems]), np.zeros((n, 0), np.float32),
               _stack([p.z0 for p in problems]), _stack([p.weights for p in problems]),
               _stack([p.hyper for p in problems]), problems)


# ---------------------------------------------------------------------------------------------
# The batched programs. Shared inputs (params, shared targets) are not vmapped (in_axes=None).


def _targets(shared, own, blend) -> objective.Targets:
  """One config's targets: its own, or the shared ones with the styles blended by ``blend``."""
  if own is not None:
    return own
  content_t, style_t = shared
  if style_t is None:
    return content_t
  mixed = jax.tree.map(lambda g: jnp.tensordot(blend, g, axes=1, precision=lax.Precision.HIGHEST),
                       style_t)
  return mixed if content_t is None else mixed._replace(content=content_t.content)


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def batch_init(z0, params, shared, targets, blend, weights, hyper, spec, mspec):
  """Optimiser states of a batch of configs (leading axis B)."""
  def one(z, t, b, w, h):
    return engine.init_state(z, params, _targets(shared, t, b), w, h, spec=spec, mspec=mspec)
  return jax.vmap(one)(z0, targets, blend, weights, hyper)


def batch_chunk_fn(state, params, shared, targets, blend, weights, spec, mspec, length):
  """``length`` steps of every config: a vmapped ``lax.scan``; returns (state, (losses, evals))."""
  def one(s, t, b, w):
    return engine.chunk_fn(s, params, _targets(shared, t, b), w, spec, mspec, length)
  return jax.vmap(one)(state, targets, blend, weights)


batch_chunk = jax.jit(batch_chunk_fn, static_argnames=('spec', 'mspec', 'length'),
                      donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def batch_terms(state, params, shared, targets, blend, weights, spec, mspec):
  """(optimiser-domain images (B, H, W, 3), loss terms {name: (B,)}) of a batch of states."""
  z = optim.make_method(mspec).image(state)
  def one(z, t, b, w):
    return objective.loss_terms(z, params, _targets(shared, t, b), w, spec)
  return z, jax.vmap(one)(z, targets, blend, weights)


def make_mesh(shard: bool = True) -> Optional[Mesh]:
  """A 1-D ``('batch',)`` mesh over every device, or None (no sharding)."""
  return Mesh(np.asarray(jax.devices()), ('batch',)) if shard else None


def _put(tree, sharding):
  if sharding is None:
    return jax.tree.map(jnp.asarray, tree)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda i, x=np.asarray(x): x[i]), tree)


def _host(x) -> np.ndarray:
  if jax.process_count() > 1 and not getattr(x, 'is_fully_addressable', True):
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def chunk_plan(n: int, max_batch: int, n_devices: int = 1) -> list[np.ndarray]:
  """Index arrays of equal-size chunks (at most ``max_batch``, rounded up to a multiple of the
  device count), the last padded by repeating its last index."""
  if max_batch < 1:
    raise ConfigError(f'sweep.max_batch must be >= 1, got {max_batch}')
  n_chunks = math.ceil(n / max_batch)
  per = math.ceil(math.ceil(n / n_chunks) / n_devices) * n_devices
  plan = []
  for start in range(0, n, per):
    idx = np.arange(start, min(start + per, n))
    plan.append(np.concatenate([idx, np.full(per - len(idx), idx[-1])]))
  return plan


@dataclasses.dataclass
class BatchResult:
  """Per-config outputs of :func:`run_batch` (leading axis = the batch's configs)."""
  pixels: np.ndarray      # (B, H, W, 3) float32 RGB 0..255 (last finite image)
  terms: dict             # {'content', 'style', 'tv', 'total'} -> (B,) final weighted terms
  losses: np.ndarray      # (B, num_steps) objective at every step
  evals: np.ndarray       # (B,) objective evaluations
  finite: np.ndarray      # (B,) bool
  bad_step: np.ndarray    # (B,) first chunk boundary with NaN/Inf (-1 if none)
  chunk: np.ndarray       # (B,) chunk index of each config
  timings: dict           # compile_s, run_s, chunks: [{configs, padded, run_s}]
  flops_per_step: float   # XLA cost analysis of one step of one padded chunk (nan if not asked)
  n_devices: int


def run_batch(batch: Batch, params: Mapping, num_steps: int, log_every: int = 50,
              max_batch: int = 16, shard: bool = True, profile_dir: str = '',
              cost_analysis: bool = False, log: Optional[Callable[[str], None]] = None
              ) -> BatchResult:
  """Optimises every config of ``batch`` for ``num_steps`` steps, ``max_batch`` at a time.

  Each chunk runs as one program (``log_every`` steps per call), its batch axis sharded over
  every device when ``shard``. A config whose loss turns NaN/Inf keeps its last finite image.
  """
  mesh = make_mesh(shard)
  n_dev = mesh.size if mesh is not None else 1
  bsh, rsh = (NamedSharding(mesh, P('batch')), NamedSharding(mesh, P())) if mesh else (None, None)
  params, shared = _put((params, batch.shared), rsh)
  spec, mspec = batch.spec, batch.mspec
  static = {'spec': spec, 'mspec': mspec}
  n, (h, w) = batch.size, batch.shape
  pixels = np.zeros((n, h, w, 3), np.float32)
  losses = np.zeros((n, num_steps), np.float32)
  evals = np.full(n, optim.init_evals(mspec), np.int64)
  finite, bad = np.ones(n, bool), np.full(n, -1)
  chunk_of = np.zeros(n, np.int64)
  terms: dict[str, np.ndarray] = {}
  timings = {'compile_s': 0., 'run_s': 0., 'chunks': []}
  compiled: dict[Any, Any] = {}
  flops = float('nan')

  def compile_once(key, fn, *args, **kwargs):
    if key not in compiled:
      tc = time.perf_counter()
      compiled[key] = fn.lower(*args, **kwargs).compile()
      timings['compile_s'] += time.perf_counter() - tc
    return compiled[key]

  for k, idx in enumerate(chunk_plan(n, max_batch, n_dev)):
    real = len(np.unique(idx))
    take = lambda x, idx=idx: np.asarray(x)[idx]
    z0, own, blend, weights, hyper = _put(jax.tree.map(
        take, (batch.z0, batch.targets, batch.blend, batch.weights, batch.hyper)), bsh)
    per_config = (own, blend, weights)
    init = compile_once('init', batch_init, z0, params, shared, *per_config, hyper, **static)
    tr = time.perf_counter()
    state = init(z0, params, shared, *per_config, hyper)
    if bsh is not None:  # Constant-initialised leaves (optimiser moments) come out replicated.
      state = jax.device_put(state, bsh)
    jax.block_until_ready(state)
    run_s = time.perf_counter() - tr
    if cost_analysis and k == 0:
      flops = profiling.xla_flops(
          batch_chunk.lower(state, params, shared, *per_config, **static, length=1))
    step, last = 0, take(batch.z0)
    while step < num_steps:
      length = min(log_every, num_steps - step)
      run = compile_once(length, batch_chunk, state, params, shared, *per_config, **static,
                         length=length)
      tr = time.perf_counter()
      trace = profile_dir and k == 0 and step == 0
      with jax.profiler.trace(profile_dir) if trace else contextlib.nullcontext():
        with jax.profiler.StepTraceAnnotation('sweep_chunk', step_num=step):
          state, (chunk_losses, chunk_evals) = run(state, params, shared, *per_config)
          chunk_losses, z = _host(chunk_losses), _host(optim.make_method(mspec).image(state))
      run_s += time.perf_counter() - tr
      ok = np.all(np.isfinite(chunk_losses), 1) & np.all(np.isfinite(z), (1, 2, 3))
      for j, i in enumerate(idx[:real]):
        if finite[i] and not ok[j]:
          finite[i], bad[i] = False, step
        elif finite[i]:
          last[j] = z[j]
      losses[idx[:real], step:step + length] = chunk_losses[:real]
      evals[idx[:real]] += _host(chunk_evals).sum(1)[:real].astype(np.int64)
      step += length
      if log is not None:
        best = np.nanmin(chunk_losses[:real, -1]) if real else float('nan')
        log(f'  chunk {k + 1}: step {step}/{num_steps}, best loss {best:.4g}, '
            f'{real * step / max(run_s, 1e-9):.2f} config-steps/s')
    tr = time.perf_counter()
    _, chunk_terms = batch_terms(state, params, shared, *per_config, **static)
    chunk_terms = {t: _host(v) for t, v in chunk_terms.items()}
    run_s += time.perf_counter() - tr
    for j, i in enumerate(idx[:real]):
      pixels[i] = batch.render(i, last[j])
      for t, v in chunk_terms.items():
        terms.setdefault(t, np.zeros(n, np.float32))[i] = v[j] if finite[i] else np.nan
      chunk_of[i] = k
    timings['run_s'] += run_s
    timings['chunks'].append({'configs': real, 'padded': len(idx), 'run_s': run_s})
  return BatchResult(pixels, terms, losses, evals, finite, bad, chunk_of, timings, flops, n_dev)


# ---------------------------------------------------------------------------------------------
# A whole sweep in memory.


@dataclasses.dataclass
class Outcome:
  """One configuration's result."""
  index: int
  values: dict                       # {axis: raw value}
  config: ml_collections.ConfigDict  # the resolved single-run config
  group: int
  chunk: int
  pixels: np.ndarray                 # (H, W, 3) float32 RGB 0..255
  terms: dict                        # final weighted loss terms
  losses: np.ndarray                 # objective at every step
  evals: int
  finite: bool
  bad_step: int
  timings: dict                      # the group's compile_s, its chunk's run_s, run_s_per_config


@dataclasses.dataclass
class SweepResult:
  axes: list[SweepAxis]
  mode: str
  outcomes: list[Outcome]
  groups: list[dict]                 # per group: indices, static fields, shape, timings, flops
  timings: dict


def execute(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
            images: Optional[Callable[[str], np.ndarray]] = None, quiet: bool = True,
            cost_analysis: Optional[bool] = None) -> SweepResult:
  """Expands, groups and runs a sweep; nothing is written."""
  t0 = time.perf_counter()
  if cost_analysis is None:
    cost_analysis = bool(config.sweep.cost_analysis)
  axes, points = expand(config)
  configs = [materialize(config, p) for p in points]
  groups = group_indices(configs)
  if params is None:
    from nst_jax import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19(config.weights or None)
  images = images or ImageCache(int(config.max_pixels))
  log = None if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
  outcomes: list[Optional[Outcome]] = [None] * len(configs)
  group_info = []
  for g, idxs in enumerate(groups):
    cfgs = [configs[i] for i in idxs]
    base = cfgs[0]
    if log:
      log(f'group {g + 1}/{len(groups)}: {len(idxs)} configs ({_describe_static(base, axes)})')
    batch = build_batch(cfgs, params, images)
    res = run_batch(batch, params, int(base.num_steps), int(base.log_every),
                    int(config.sweep.max_batch), bool(config.sweep.shard),
                    config.profile_dir if g == 0 else '', cost_analysis, log)
    info = {'index': g, 'configs': idxs, 'shape': list(batch.shape),
            'static': {a.name: _get(base, a.name) for a in axes if a.name not in BATCHABLE},
            'content_layers': list(batch.spec.content_layers),
            'style_layers': list(batch.spec.style_layers), 'optimizer': batch.mspec.name,
            'n_devices': res.n_devices, 'flops_per_step': res.flops_per_step,
            'achieved_flops_per_s': res.flops_per_step * int(base.num_steps) * len(
                res.timings['chunks']) / max(res.timings['run_s'], 1e-9),
            'timings': res.timings}
    group_info.append(info)
    for j, i in enumerate(idxs):
      chunk = res.timings['chunks'][int(res.chunk[j])]
      outcomes[i] = Outcome(
          i, points[i], configs[i], g, int(res.chunk[j]), res.pixels[j],
          {k: float(v[j]) for k, v in res.terms.items()}, res.losses[j], int(res.evals[j]),
          bool(res.finite[j]), int(res.bad_step[j]),
          {'group_compile_s': res.timings['compile_s'], 'chunk_run_s': chunk['run_s'],
           'run_s_per_config': chunk['run_s'] / chunk['configs']})
  return SweepResult(axes, config.sweep.mode, outcomes, group_info,
                     {'total_s': time.perf_counter() - t0,
                      'compile_s': sum(g['timings']['compile_s'] for g in group_info),
                      'run_s': sum(g['timings']['run_s'] for g in group_info)})


def _get(config, path: str):
  node, leaf = _field(config, path)
  return node[leaf]


def _describe_static(config, axes) -> str:
  parts = [f'{a.name}={_get(config, a.name)}' for a in axes if a.name not in BATCHABLE]
  return ', '.join(parts) or 'one program'


# ---------------------------------------------------------------------------------------------
# Labels, contact sheet, CSV and JSON.


def short_value(name: str, raw: str) -> str:
  """A compact label of one axis value (layer sets as ``conv1_1,2_1``; file paths as stems)."""
  leaf = name.rsplit('.', 1)[-1]
  if leaf in ('content_layers', 'style_layers'):
    layers = vgg.parse_layers(raw.replace('+', ','))
    return 'conv' + ','.join(f'{l[5]}_{l[-1]}' for l in layers) if layers else '-'
  if leaf in ('style', 'content', 'init_image'):
    return '+'.join(Path(p).stem for p in raw.split('+') if p)
  if leaf == 'schedule':
    return {'constant': 'const', 'exponential': 'exp'}.get(raw, raw)
  return raw


def label(name: str, raw: str) -> str:
  return f'{SHORT_NAMES.get(name, name.rsplit(".", 1)[-1])}={short_value(name, raw)}'


def grid(points: Sequence[Mapping[str, str]], axes: Sequence[str], rows: Sequence[str]):
  """Contact-sheet layout: (cells [(row, col)], row labels, column labels or None).

  Cells sharing the values of the ``rows`` axes form a row. When every row holds the same
  column keys (a product) they become labelled columns; otherwise each row is filled in order.
  Without row axes the cells fill a near-square grid.
  """
  if not rows:
    ncols = len(points) if len(points) <= 6 else math.ceil(math.sqrt(len(points)))
    return [(i // ncols, i % ncols) for i in range(len(points))], None, None
  cols = [a for a in axes if a not in rows]
  rkeys = [tuple(p[a] for a in rows) for p in points]
  ckeys = [tuple(p[a] for a in cols) for p in points]
  row_order = list(dict.fromkeys(rkeys))
  per_row = {r: [c for rk, c in zip(rkeys, ckeys) if rk == r] for r in row_order}
  col_order = list(dict.fromkeys(ckeys))
  regular = all(v == col_order for v in per_row.values()) and cols
  cells, seen = [], {r: 0 for r in row_order}
  for rk, ck in zip(rkeys, ckeys):
    col = col_order.index(ck) if regular else seen[rk]
    seen[rk] += 1
    cells.append((row_order.index(rk), col))
  row_labels = [' '.join(label(a, v) for a, v in zip(rows, r)) for r in row_order]
  col_labels = [' '.join(label(a, v) for a, v in zip(cols, c)) for c in col_order] if (
      regular) else None
  return cells, row_labels, col_labels


def _font():
  return ImageFont.load_default()


def _wrap(text: str, font, width: int) -> list[str]:
  """Greedy wrap at spaces, ',' and '+'; over-long words are cut anywhere."""
  measure = lambda s: font.getlength(s)
  lines = []
  for para in text.split('\n'):
    line = ''
    for piece in re.findall(r'[^ ,+]*[ ,+]?', para):
      if not piece:
        continue
      if measure(line + piece.rstrip()) <= width or not line:
        line += piece
      else:
        lines.append(line.rstrip())
        line = piece
      while measure(line.rstrip()) > width and len(line) > 1:
        cut = max(1, max(i for i in range(1, len(line) + 1) if measure(line[:i]) <= width)
                  if measure(line[:1]) <= width else 1)
        lines.append(line[:cut])
        line = line[cut:]
    lines.append(line.rstrip())
  return [l for l in lines if l] or ['']


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str],
                  cells: Sequence[tuple[int, int]], row_labels: Optional[Sequence[str]] = None,
                  col_labels: Optional[Sequence[str]] = None, title: str = '',
                  cell_size: int = 256, min_width: int = 120
                  ) -> tuple[Image.Image, list[tuple[int, int]]]:
  """Draws labelled thumbnails on a grid; returns (sheet, top-left corner of each thumbnail).

  Args:
    images: uint8 (H, W, 3) images, one per cell.
    labels: one text per cell, drawn under its thumbnail (wrapped to the cell width).
    cells: (row, column) of each image.
    row_labels / col_labels: header texts (left column / top row), or None.
    title: a line above everything.
    cell_size: longest side of a thumbnail (images are never upscaled).
    min_width: narrowest cell (room for labels of small images).
  """
  font, pad = _font(), 6
  line_h = font.getbbox('Ag')[3] + 3
  thumbs = []
  for im in images:
    pil = Image.fromarray(np.asarray(im, np.uint8))
    s = min(1., cell_size / max(pil.size))
    if s < 1.:
      pil = pil.resize((max(1, round(pil.width * s)), max(1, round(pil.height * s))),
                       Image.LANCZOS)
    thumbs.append(pil)
  cw = max(min_width, *(t.width for t in thumbs))
  ih = max(t.height for t in thumbs)
  wrapped = [_wrap(t, font, cw) for t in labels]
  lh = max(len(w) for w in wrapped) * line_h
  nrows, ncols = max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1
  row_w = max((font.getlength(l) for r in row_labels for l in _wrap(r, font, cw)), default=0
              ) + pad if row_labels else 0
  col_h = max(len(_wrap(c, font, cw)) for c in col_labels) * line_h + pad if col_labels else 0
  x0 = pad + math.ceil(row_w)
  width = x0 + ncols * (cw + pad)
  title_lines = _wrap(title, font, width - 2 * pad) if title else []
  title_h = len(title_lines) * line_h + pad if title else 0
  y0 = pad + title_h + col_h
  height = y0 + nrows * (ih + lh + pad)
  sheet = Image.new('RGB', (int(width), int(height)), 'white')
  draw = ImageDraw.Draw(sheet)
  for k, line in enumerate(title_lines):
    draw.text((pad, pad + k * line_h), line, fill='black', font=font)
  for c, text in enumerate(col_labels or []):
    for k, line in enumerate(_wrap(text, font, cw)):
      draw.text((x0 + c * (cw + pad), pad + title_h + k * line_h), line, fill='black', font=font)
  for r, text in enumerate(row_labels or []):
    for k, line in enumerate(_wrap(text, font, cw)):
      draw.text((pad, y0 + r * (ih + lh + pad) + k * line_h), line, fill='black', font=font)
  corners = []
  for thumb, lines, (r, c) in zip(thumbs, wrapped, cells):
    x, y = x0 + c * (cw + pad), y0 + r * (ih + lh + pad)
    sheet.paste(thumb, (x, y))
    for k, line in enumerate(lines):
      draw.text((x, y + ih + k * line_h), line, fill='black', font=font)
    corners.append((x, y))
  return sheet, corners


def cell_text(outcome: Outcome) -> str:
  vals = ' '.join(label(a, v) for a, v in outcome.values.items())
  loss = f'loss={outcome.terms["total"]:.4g}' if outcome.finite else (
      f'loss=NaN at step {outcome.bad_step}')
  return f'{vals}\n{loss}'


def default_rows(mode: str, axes: Sequence[str]) -> list[str]:
  return [axes[0]] if mode == 'product' and len(axes) > 1 else []


def sheet_of(result: SweepResult, rows: str = '', title: str = '', cell_size: int = 256):
  """The contact sheet of a sweep (rows: comma-separated axis names, '' = default)."""
  names = [a.name for a in result.axes]
  row_axes = [r.strip() for r in rows.split(',') if r.strip()] or default_rows(result.mode, names)
  unknown = [r for r in row_axes if r not in names]
  if unknown:
    raise ConfigError(f'sweep.rows names {unknown}, which are not sweep axes {names}')
  cells, rl, cl = grid([o.values for o in result.outcomes], names, row_axes)
  images = [image_io.to_uint8(o.pixels) for o in result.outcomes]
  return contact_sheet(images, [cell_text(o) for o in result.outcomes], cells, rl, cl, title,
                       cell_size)


def slug(index: int, values: Mapping[str, str]) -> str:
  text = '_'.join(label(a, v) for a, v in values.items())
  return f'{index:03d}_' + re.sub(r'[^A-Za-z0-9._=-]+', '-', text)[:80]


CSV_TERMS = ('content', 'style', 'tv', 'total')


def csv_rows(result: SweepResult, files: Sequence[str]) -> tuple[list[str], list[list]]:
  """Header and rows of ``results.csv`` (one row per config)."""
  names = [a.name for a in result.axes]
  extra = [t for t in (result.outcomes[0].terms if result.outcomes else {}) if t not in CSV_TERMS]
  header = (['index', 'group', 'chunk', *names, *(f'loss_{t}' for t in (*CSV_TERMS, *extra)),
             'loss_initial', 'steps', 'evals', 'finite', 'group_compile_s', 'chunk_run_s',
             'run_s_per_config', 'image'])
  rows = []
  for o, f in zip(result.outcomes, files):
    rows.append([o.index, o.group, o.chunk, *(o.values[n] for n in names),
                 *(f'{o.terms[t]:.7g}' for t in (*CSV_TERMS, *extra)),
                 f'{o.losses[0]:.7g}' if len(o.losses) else '', len(o.losses), o.evals,
                 int(o.finite), *(f'{o.timings[k]:.4f}' for k in (
                     'group_compile_s', 'chunk_run_s', 'run_s_per_config')), f])
  return header, rows


def run_sweep_bench(k: int, size: int = 128, steps: int = 10, content=None, style=None,
                    **kwargs) -> dict:
  """Batch of ``k`` configs vs ``k`` sequential runs; see :mod:`nst_jax.sweep_bench`.

  ``content`` / ``style`` are image paths or uint8 RGB arrays.
  """
  from nst_jax import sweep_bench  # pylint: disable=g-import-not-at-top
  return sweep_bench.run_sweep_bench(k, size, steps, content, style, **kwargs)


def _finite_or_none(obj):
  """NaN/Inf -> None, so results.json stays strict JSON."""
  if isinstance(obj, dict):
    return {k: _finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite_or_none(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  return obj


def init_distributed() -> None:
  """``jax.distributed.initialize()`` once (cluster auto-detection: SLURM, MPI, TPU pods)."""
  if not getattr(init_distributed, 'done', False):
    jax.distributed.initialize()
    init_distributed.done = True


def run_sweep(config: ml_collections.ConfigDict, output_dir: Optional[str] = None,
              params: Optional[Mapping] = None, quiet: bool = False) -> dict:
  """Runs a sweep and writes PNGs, ``contact_sheet.png``, ``results.csv`` and ``results.json``.

  Returns the summary written as ``results.json``.
  """
  from nst_jax import compile_cache, runner  # pylint: disable=g-import-not-at-top
  compile_cache.enable(config.get('compile_cache', ''))  # issue 10: persistent XLA cache
  if config.sweep.distributed:
    init_distributed()
  out = Path(output_dir or config.sweep.output_dir or 'outputs/sweep').expanduser()
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ImageError(f'cannot create the output directory {out}: {e.strerror or e}') from e
  if not os.access(out, os.W_OK):
    raise ImageError(f'output directory {out} is not writable; choose another --output_dir')
  result = execute(config, params, quiet=quiet)
  writer = jax.process_index() == 0
  files = [f'{slug(o.index, o.values)}.png' for o in result.outcomes]
  c0 = result.outcomes[0].config
  title = ' | '.join(x for x in (
      Path(c0.content).stem if c0.content else '',
      '+'.join(Path(p).stem for p in runner.split_paths(c0.style)),
      f'{c0.num_steps} steps', f'{config.sweep.mode} of '
      + ' x '.join(SHORT_NAMES.get(a.name, a.name) for a in result.axes)) if x)
  sheet, _ = sheet_of(result, config.sweep.rows, title, int(config.sweep.cell_size))
  names = [a.name for a in result.axes]
  summary = {
      'axes': {a.name: list(a.values) for a in result.axes}, 'mode': config.sweep.mode,
      'sweep': config.sweep.to_dict(), 'base_config': config.to_dict(),
      'devices': [str(d) for d in jax.devices()], 'contact_sheet': 'contact_sheet.png',
      'groups': result.groups, 'timings': result.timings,
      'results': [{
          'index': o.index, 'values': o.values, 'label': ' '.join(
              label(n, o.values[n]) for n in names), 'group': o.group, 'chunk': o.chunk,
          'image': f, 'terms': o.terms, 'finite': o.finite, 'nonfinite_at_step':
          None if o.finite else o.bad_step, 'steps': len(o.losses), 'evals': o.evals,
          'loss_history': [float(v) for v in o.losses], 'timings': o.timings,
          'config': o.config.to_dict()} for o, f in zip(result.outcomes, files)]}
  if writer:
    for o, f in zip(result.outcomes, files):
      image_io.save_image(out / f, image_io.to_uint8(o.pixels))
    image_io.save_image(out / 'contact_sheet.png', np.asarray(sheet))
    header, rows = csv_rows(result, files)
    with open(out / 'results.csv', 'w', newline='') as fh:
      w = csv.writer(fh)
      w.writerow(header)
      w.writerows(rows)
    runner.write_json(out / 'results.json', _finite_or_none(summary))
  if not quiet:
    n, t = len(result.outcomes), result.timings
    print(f'wrote {out}/contact_sheet.png, results.csv, results.json and {n} images '
          f'({len(result.groups)} programs, compile {t["compile_s"]:.1f} s, run '
          f'{t["run_s"]:.1f} s, {n / max(t["run_s"], 1e-9):.2f} configs/s)', file=sys.stderr)
  return summary
