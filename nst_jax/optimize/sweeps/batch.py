"""Batched sweep execution: one group of configs as stacked engine problems, run as one jitted,
vmapped ``lax.scan`` per chunk, its batch axis sharded over every device.

:func:`build_batch` prepares each config with :func:`nst_jax.optimize.problem.prepare` (the
single-run problem builder) and stacks them; :func:`run_batch` optimises the batch. Sharing targets
across a group is an internal optimisation: a batch equals the single runs of its configs
(``tests/unit/optimize/test_sweeps.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.losses import controls, objective
from nst_jax.losses import objective as objective_lib
from nst_jax.models import vgg
from nst_jax.optimize import lbfgs, loop, method, optimizers
from nst_jax.optimize import problem as problem_lib
from nst_jax.runtime import mesh as mesh_lib
from nst_jax.runtime import profiling


@dataclasses.dataclass
class Batch:
  """A group of configs as arrays with a leading batch axis, plus what they share.

  Standard configs share their targets: ``shared`` = (content targets, per-style targets stacked
  on a leading style axis), blended per config by ``blend`` inside the program. Configs with
  perceptual controls (masks, colour control, scale mixing, correlation chains) carry their own
  targets, built by :func:`problem_lib.build_problem`, in ``targets`` (leading batch axis).
  """
  spec: objective.Spec
  mspec: method.MethodSpec
  shape: tuple[int, int]
  shared: Any             # (content Targets or None, stacked per-style Targets or None) or None
  targets: Any            # per-config Targets (leading B) or None
  blend: np.ndarray       # (B, S) per-config style blend weights (sum to 1)
  z0: np.ndarray          # (B, H, W, 3) optimiser-domain initial images
  weights: objective.Weights  # leaves with a leading B axis
  hyper: dict             # optimiser hyperparameters, leaves (B,)
  problems: Optional[list] = None  # per-config problem_lib.Problem (controls), for rendering

  @property
  def size(self) -> int:
    return int(self.z0.shape[0])

  def render(self, i: int, z: Any) -> np.ndarray:
    """Config ``i``'s optimiser-domain image as float32 RGB 0..255 (controls applied)."""
    if self.problems is not None:
      return np.asarray(loop.render(self.problems[i], z), np.float32)
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


def uses_controls(config: ml_collections.ConfigDict) -> bool:
  """Whether a config needs per-config targets (perceptual controls, Novak's chain, a style loss
  whose targets are not blendable Grams)."""
  return (any(config[f] for f in CONTROL_FIELDS) or config.color_control != 'none'
          or config.style_loss != 'gram')


def _by_depth(layers: Iterable[str]) -> tuple[str, ...]:
  return tuple(sorted(set(layers), key=vgg.LAYERS.index))


def _scatter(values: Any, own: Sequence[str], union: Sequence[str]) -> np.ndarray:
  v = np.zeros(len(union), np.float32)
  w = np.full(len(own), 1. / max(len(own), 1), np.float32) if values is None else values
  for l, x in zip(own, w):
    v[union.index(l)] += np.float32(x)
  return v


def same_schedules(configs: Sequence[ml_collections.ConfigDict]
                   ) -> Sequence[ml_collections.ConfigDict]:
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


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)


def _on_union(config: ml_collections.ConfigDict, spec: objective.Spec, content_w: np.ndarray,
              style_w: np.ndarray) -> ml_collections.ConfigDict:
  """``config`` over the group's union of layers, its own layer weights scattered onto it."""
  fmt = lambda v: ','.join(repr(float(x)) for x in v)
  u = config.copy_and_resolve_references()
  if spec.content_layers:
    u.content_layers, u.content_layer_weights = ','.join(spec.content_layers), fmt(content_w)
  if spec.style_layers:
    u.style_layers, u.style_layer_weights = ','.join(spec.style_layers), fmt(style_w)
  u.layer_weighting = 'uniform'
  return u


def build_batch(configs: Sequence[ml_collections.ConfigDict], params: Mapping,
                images: Callable[[str], Optional[np.ndarray]]) -> Batch:
  """Stacks one group's configs (equal :func:`~nst_jax.optimize.sweeps.grid.static_key`) into a
  :class:`Batch` of :mod:`nst_jax.optimize.problem` problems.

  Each config is prepared by :func:`problem_lib.prepare` (the single runs' problem builder: the same
  checks, resizing, weights and initial image) over the union of the group's layers (ordered by
  depth), zero-weighted for a config's unused layers. Standard configs then share targets: the
  content's and one set per style image, computed once and blended per config inside the
  program. Configs with perceptual controls get their own targets
  (:func:`problem_lib.problem_targets`).
  """
  configs = same_schedules(configs)
  base = configs[0]
  specs = [objective_lib.make_spec(c) for c in configs]
  spec = specs[0]._replace(
      content_layers=_by_depth(l for s in specs for l in s.content_layers),
      style_layers=_by_depth(l for s in specs for l in s.style_layers),
      use_tv=any(s.use_tv for s in specs))
  own_styles = [schema.split_list(c.style) for c in configs]
  content = images(base.content) if base.content else None
  init = lambda c: images(c.init_image) if c.init == 'image' and c.init_image else None
  inputs = []
  for c, s, paths in zip(configs, specs, own_styles):
    cw, sw = objective_lib.layer_weight_lists(c, s)
    u = _on_union(c, spec, _scatter(cw, s.content_layers, spec.content_layers),
                  _scatter(sw, s.style_layers, spec.style_layers))
    styles = [images(p) for p in paths]
    masks, style_masks = controls.config_masks(u, len(styles))
    inputs.append(problem_lib.prepare(u, content, styles, init(c), masks, style_masks))
  i0 = inputs[0]
  if any(i.mspec != i0.mspec for i in inputs):
    raise ConfigError('configs of one group have different optimiser programs')
  if any(i.spec._replace(use_tv=False) != i0.spec._replace(use_tv=False) or i.shape != i0.shape
         for i in inputs):
    raise ConfigError('configs of one group built different programs (masks or sizes differ)')
  stack = lambda f: _stack([f(i) for i in inputs])
  if uses_controls(base):
    problems = [problem_lib.Problem(i.spec, i.mspec, i.weights, i.hyper,
                               problem_lib.problem_targets(params, i), i.z0, i.shape, i.content,
                               i.color_control) for i in inputs]
    return Batch(i0.spec._replace(use_tv=spec.use_tv), i0.mspec, i0.shape, None,
                 _stack([p.targets for p in problems]), np.zeros((len(inputs), 0), np.float32),
                 stack(lambda i: i.z0), stack(lambda i: i.weights), stack(lambda i: i.hyper),
                 problems)
  # Shared targets: the content's once, and each style image's once (blended per config).
  style_paths = tuple(dict.fromkeys(p for ps in own_styles for p in ps))
  styles_r = {p: s for i, ps in zip(inputs, own_styles) for p, s in zip(ps, i.styles_in)}
  spec = i0.spec._replace(use_tv=spec.use_tv)
  content_t = objective.compute_targets(params, spec._replace(style_layers=()), i0.content_in,
                                        []) if spec.content_layers else None
  style_t = _stack([objective.compute_targets(params, spec._replace(content_layers=()), None,
                                              [styles_r[p]]) for p in style_paths]
                   ) if spec.style_layers and style_paths else None
  blend = []
  for i, ps in zip(inputs, own_styles):
    b = np.ones(len(ps), np.float32) if i.blend is None else np.asarray(i.blend, np.float32)
    blend.append(_scatter(list(b / np.sum(b)) if len(ps) else [], ps, style_paths))
  return Batch(spec, i0.mspec, i0.shape, (content_t, style_t), None, np.stack(blend),
               stack(lambda i: i.z0), stack(lambda i: i.weights), stack(lambda i: i.hyper))


# ---------------------------------------------------------------------------------------------
# The batched programs. Shared inputs (params, shared targets) are not vmapped (in_axes=None).


def _targets(shared: Any, own: Any, blend: Any) -> objective.Targets:
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
def batch_init(z0: Any, params: Mapping, shared: Any, targets: Any, blend: Any, weights: Any,
               hyper: Any, spec: objective.Spec, mspec: method.MethodSpec) -> Any:
  """Optimiser states of a batch of configs (leading axis B)."""
  def one(z: Any, t: Any, b: Any, w: Any, h: Any) -> Any:
    return loop.init_state(z, params, _targets(shared, t, b), w, h, spec=spec, mspec=mspec)
  return jax.vmap(one)(z0, targets, blend, weights, hyper)


def batch_chunk_fn(state: Any, params: Mapping, shared: Any, targets: Any, blend: Any,
                   weights: Any, spec: objective.Spec, mspec: method.MethodSpec, length: int
                   ) -> Any:
  """``length`` steps of every config: a vmapped ``lax.scan``; returns (state, (losses, evals))."""
  def one(s: Any, t: Any, b: Any, w: Any) -> Any:
    return loop.chunk_fn(s, params, _targets(shared, t, b), w, spec, mspec, length)
  return jax.vmap(one)(state, targets, blend, weights)


batch_chunk = jax.jit(batch_chunk_fn, static_argnames=('spec', 'mspec', 'length'),
                      donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def batch_terms(state: Any, params: Mapping, shared: Any, targets: Any, blend: Any,
                weights: Any, spec: objective.Spec, mspec: method.MethodSpec) -> Any:
  """(optimiser-domain images (B, H, W, 3), loss terms {name: (B,)}) of a batch of states."""
  z = optimizers.make_method(mspec).image(state)
  def one(z: Any, t: Any, b: Any, w: Any) -> Any:
    return objective.loss_terms(z, params, _targets(shared, t, b), w, spec)
  return z, jax.vmap(one)(z, targets, blend, weights)


def _put(tree: Any, sharding: Any) -> Any:
  if sharding is None:
    return jax.tree.map(jnp.asarray, tree)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  def global_array(x: Any) -> jax.Array:
    host = np.asarray(x)
    return jax.make_array_from_callback(np.shape(x), sharding, lambda i: host[i])
  return jax.tree.map(global_array, tree)


def _host(x: Any) -> np.ndarray:
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
  done: Optional[np.ndarray] = None  # (B,) bool: the config ran (False: not started, Ctrl-C)
  steps: Optional[np.ndarray] = None  # (B,) steps run per config
  stopped: bool = False   # stopped early by ``stop()``
  resume: Optional[dict] = None  # the stopped chunk's state (see run_batch), to continue it


def run_batch(batch: Batch, params: Mapping, num_steps: int, log_every: int = 50,
              max_batch: int = 16, shard: bool = True, profile_dir: str = '',
              cost_analysis: bool = False, log: Optional[Callable[[str], None]] = None,
              on_chunk: Optional[Callable[[dict], None]] = None,
              stop: Optional[Callable[[], bool]] = None, skip_chunks: Sequence[int] = (),
              resume: Optional[dict] = None) -> BatchResult:
  """Optimises every config of ``batch`` for ``num_steps`` steps, ``max_batch`` at a time.

  Each chunk runs as one program (``log_every`` steps per call), its batch axis sharded over
  every device when ``shard``. A config whose loss turns NaN/Inf keeps its last finite image.
  After every call, ``on_chunk(record)`` gets a metrics record (``chunk``, ``step``,
  ``best_loss``, ``configs``, ``chunk_s``, ``images_per_s``: config-steps per second) and, if
  given, ``log`` a progress line. If ``stop()`` turns true the batch ends after that call: the
  configs of the running chunk keep their current images (``steps`` says how far they got),
  later chunks are not started (``done`` False) and ``stopped`` is set; if the running chunk
  was cut short, ``resume`` holds its ``chunk`` index, ``configs``, ``step``, stacked optimiser
  ``state`` leaves, last finite images ``last`` and its ``losses``, ``evals``, ``finite`` and
  ``bad`` so far (host arrays). Passing that dict back as ``resume`` continues the chunk from
  there; chunks in ``skip_chunks`` (finished before) are not run (``done`` False).
  """
  mesh = mesh_lib.batch_mesh(shard)
  n_dev = mesh.size if mesh is not None else 1
  bsh, rsh = (NamedSharding(mesh, P('batch')), NamedSharding(mesh, P())) if mesh else (None, None)
  params, shared = _put((params, batch.shared), rsh)
  spec, mspec = batch.spec, batch.mspec
  static = {'spec': spec, 'mspec': mspec}
  n, (h, w) = batch.size, batch.shape
  pixels = np.zeros((n, h, w, 3), np.float32)
  losses = np.zeros((n, num_steps), np.float32)
  evals = np.full(n, method.init_evals(mspec), np.int64)
  finite, bad = np.ones(n, bool), np.full(n, -1)
  chunk_of = np.zeros(n, np.int64)
  done, steps_of, stopped = np.zeros(n, bool), np.zeros(n, np.int64), False
  terms: dict[str, np.ndarray] = {}
  timings: dict[str, Any] = {'compile_s': 0., 'run_s': 0., 'chunks': []}
  compiled: dict[Any, Any] = {}
  flops = float('nan')
  resume_out: Optional[dict] = None

  def compile_once(key: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    if key not in compiled:
      tc = time.perf_counter()
      compiled[key] = fn.lower(*args, **kwargs).compile()
      timings['compile_s'] += time.perf_counter() - tc
    return compiled[key]

  for k, idx in enumerate(chunk_plan(n, max_batch, n_dev)):
    real = len(np.unique(idx))
    if k in skip_chunks:  # Finished before (a resumed sweep): its results are kept elsewhere.
      timings['chunks'].append({'configs': real, 'padded': len(idx), 'run_s': 0.,
                                'resumed': True})
      continue
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
    if resume is not None and int(resume['chunk']) == k:  # Continue a stopped chunk.
      state = _put(lbfgs.state_from_leaves(resume['state'], state, 'the sweep checkpoint'), bsh)
      step, last = int(resume['step']), np.array(resume['last'], np.float32)
      r = idx[:real]
      losses[r, :step] = resume['losses']
      evals[r], finite[r], bad[r] = resume['evals'], resume['finite'], resume['bad']
    while step < num_steps:
      length = min(log_every, num_steps - step)
      run = compile_once(length, batch_chunk, state, params, shared, *per_config, **static,
                         length=length)
      tr = time.perf_counter()
      trace = profile_dir and k == 0 and step == 0
      with jax.profiler.trace(profile_dir) if trace else contextlib.nullcontext():
        with jax.profiler.StepTraceAnnotation('sweep_chunk', step_num=step):
          state, (chunk_losses, chunk_evals) = run(state, params, shared, *per_config)
          chunk_losses, z = _host(chunk_losses), _host(optimizers.make_method(mspec).image(state))
      call_s = time.perf_counter() - tr
      run_s += call_s
      ok = np.all(np.isfinite(chunk_losses), 1) & np.all(np.isfinite(z), (1, 2, 3))
      for j, i in enumerate(idx[:real]):
        if finite[i] and not ok[j]:
          finite[i], bad[i] = False, step
        elif finite[i]:
          last[j] = z[j]
      losses[idx[:real], step:step + length] = chunk_losses[:real]
      evals[idx[:real]] += _host(chunk_evals).sum(1)[:real].astype(np.int64)
      step += length
      best = float(np.nanmin(chunk_losses[:real, -1])) if real else float('nan')
      if log is not None:
        log(f'  chunk {k + 1}: step {step}/{num_steps}, best loss {best:.4g}, '
            f'{real * step / max(run_s, 1e-9):.2f} config-steps/s')
      if on_chunk is not None:
        on_chunk({'chunk': k + 1, 'step': step, 'best_loss': best, 'configs': real,
                  'chunk_s': call_s, 'images_per_s': real * length / max(call_s, 1e-9)})
      if stop is not None and step < num_steps and stop():
        stopped = True
        r = idx[:real]
        resume_out = {'chunk': k, 'configs': r.copy(), 'step': step, 'last': last.copy(),
                      'state': [_host(x) for x in lbfgs.checkpoint_leaves(state)],
                      'losses': losses[r, :step].copy(), 'evals': evals[r].copy(),
                      'finite': finite[r].copy(), 'bad': bad[r].copy()}
        break
    tr = time.perf_counter()
    _, chunk_terms = batch_terms(state, params, shared, *per_config, **static)
    chunk_terms = {t: _host(v) for t, v in chunk_terms.items()}
    run_s += time.perf_counter() - tr
    for j, i in enumerate(idx[:real]):
      pixels[i] = batch.render(i, last[j])
      for t, v in chunk_terms.items():
        terms.setdefault(t, np.zeros(n, np.float32))[i] = v[j] if finite[i] else np.nan
      chunk_of[i], done[i], steps_of[i] = k, True, step
    timings['run_s'] += run_s
    timings['chunks'].append({'configs': real, 'padded': len(idx), 'run_s': run_s})
    if stopped or (stop is not None and stop()):
      stopped = True
      break
  return BatchResult(pixels, terms, losses, evals, finite, bad, chunk_of, timings, flops, n_dev,
                     done, steps_of, stopped, resume_out)
