"""The ONE training loop of every trained network: Johnson 2016 (one style), Dumoulin 2017 (N
styles, conditional instance normalisation) and the AdaIN decoder (Huang & Belongie 2017).

A network is trained through a :class:`Task`: its trainable params, a pure loss on a batch
``loss(params, batch, consts) -> (total, terms)`` (``consts``: the frozen VGG19 params and the
style targets, computed once, passed as arguments so they never become program constants), the
samplers that produce its batches, a sample stylization and how to save the model directory.
:func:`train` then runs the same loop for every task:

* ``chunk`` optimisation steps (optax Adam) per jitted call, as one ``lax.scan`` over a chunk of
  batches that a loader thread prepared while the previous chunk ran (:mod:`nst_jax.training.data`);
* data-parallel: the batch axis is sharded over every device (``Mesh(devices, ('batch',))``, as
  the sweeps shard theirs); params are replicated and XLA inserts the gradient all-reduce. With
  ``distributed`` (:mod:`nst_jax.runtime.distributed`) the devices are every process's: each
  process feeds its devices' slice of the global batch (every process samples the same batches,
  a function of the step), the all-reduce crosses hosts, and only process 0 writes files;
* after each chunk: NaN/Inf check, one metrics record (:mod:`nst_jax.io.metric_writers`: loss terms,
  images/s), every ``sample_every`` steps a sample stylization of a fixed photo, every
  ``save_every`` steps (and at the end) the model directory and a checkpoint, both atomic;
* SIGINT/SIGTERM (:mod:`nst_jax.runtime.interrupt`) stops after the current chunk, saves, prints one
  resume line; ``--config.resume=True`` continues exactly where the checkpoint left off (the
  batches are a function of the step, so a resumed run equals an uninterrupted one).

Files in the output directory: ``model.npz`` + ``model.json`` (the model), ``checkpoint.npz``
(params + optimiser state + step, plain arrays, no pickle), ``config.json`` and ``metrics.jsonl``
(one record per chunk), ``train.json`` (summary: final losses, timings) and ``samples/``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
import time
from typing import Any, Callable, Optional

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

from nst_jax.config.train import NETWORKS, style_paths
from nst_jax.errors import ConfigError, NonFiniteLossError
from nst_jax.io import checkpoints, log
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.io import metric_writers as metrics
from nst_jax.losses import terms as terms_lib
from nst_jax.models import vgg
from nst_jax.runtime import devices, distributed, interrupt
from nst_jax.runtime import mesh as mesh_lib
from nst_jax.training import data


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for any invalid field (before anything expensive happens)."""
  c = config
  if c.get('job', 'train') != 'train':
    raise ConfigError(f'this is the train job; got job={c.job!r}')
  if c.network not in NETWORKS:
    raise ConfigError(f'unknown network {c.network!r}; choose one of {", ".join(NETWORKS)}')
  if c.network != 'adain' and not style_paths(c):
    raise ConfigError('training a style network needs --style=PAINTING (several, comma '
                      'separated, for an N-style network)')
  if not c.output:
    raise ConfigError('give the model directory: --output=DIR')
  for f in ('crop_size', 'batch_size', 'num_steps', 'chunk', 'style_size', 'sample_size'):
    if int(c[f]) <= 0 and not (f == 'num_steps' and int(c[f]) == 0):
      raise ConfigError(f'{f} must be positive, got {c[f]}')
  if c.crop_size < 16 or c.crop_size % 8:
    raise ConfigError(f'crop_size must be a multiple of 8 and >= 16, got {c.crop_size}')
  if not 0 < c.scale_min <= c.scale_max:
    raise ConfigError(f'need 0 < scale_min <= scale_max, got {c.scale_min}, {c.scale_max}')
  if c.sample_every < 0 or c.save_every < 0 or c.num_images < 0 or c.prefetch < 1:
    raise ConfigError('sample_every, save_every and num_images must be >= 0, prefetch >= 1')
  if c.max_minutes < 0:
    raise ConfigError(f'max_minutes must be >= 0 (0 = no limit), got {c.max_minutes}')
  if c.learning_rate <= 0 or c.lr_decay < 0:
    raise ConfigError(f'learning_rate must be > 0 and lr_decay >= 0, got {c.learning_rate}, '
                      f'{c.lr_decay}')
  if c.net.impl not in ('direct', 'fast'):
    raise ConfigError(f'unknown net.impl {c.net.impl!r}; choose direct or fast')
  if c.progress not in ('bar', 'log', 'none'):
    raise ConfigError(f'unknown progress {c.progress!r}; choose bar, log or none')
  for what, allowed in (('pooling', vgg.POOLINGS), ('conv_impl', vgg.CONV_IMPLS),
                        ('conv_dtype', devices.CONV_DTYPE_CHOICES),
                        ('loss_norm', terms_lib.LOSS_NORMS), ('tv_type', terms_lib.TV_TYPES)):
    if c[what] not in allowed:
      raise ConfigError(f'unknown {what} {c[what]!r}; choose one of {", ".join(allowed)}')
  if c.network != 'adain':
    for l in vgg.parse_layers(c.content_layers) + vgg.parse_layers(c.style_layers):
      if l.endswith('_pool'):
        raise ConfigError(f'{l} is a pooling layer; content and style layers must be conv layers')
CHECKPOINT = 'checkpoint.npz'
SUMMARY = 'train.json'


@dataclasses.dataclass
class Task:
  """What :func:`train` needs to know about one kind of network.

  Attributes:
    name: for logs ('johnson', 'dumoulin', 'adain').
    params: initial trainable params (a pytree of float32 arrays).
    loss: pure ``loss(params, batch, consts) -> (total, {term: scalar})``; ``batch`` maps the
      sampler names to (B, ...) arrays (images uint8 0..255).
    consts: frozen arrays the loss needs (VGG19 params, style targets).
    samplers: ``{name: sampler}``; each has ``batch(step) -> (B, ...) array`` (deterministic).
    sample: ``sample(params, consts) -> uint8 (H, W, 3)``, a stylization of a fixed photo (or
      None).
    save_model: ``save_model(directory, params)`` writes the model files atomically.
    info: extra entries for the summary JSON.
    model_file: the file ``save_model`` writes, relative to the output directory (or absolute):
      what the interruption line names and the final save checks.
  """
  name: str
  params: Any
  loss: Callable
  consts: Any
  samplers: dict
  save_model: Callable[[Path, Any], None]
  sample: Optional[Callable] = None
  info: dict = dataclasses.field(default_factory=dict)
  model_file: str = 'model.npz'


# --- Optimiser and the jitted chunk.


def make_optimizer(config) -> optax.GradientTransformation:
  """optax Adam, constant or ``lr / (1 + lr_decay * step)`` (AdaIN's authors' schedule)."""
  lr, decay = float(config.learning_rate), float(config.lr_decay)
  schedule = lr if decay == 0 else (lambda count: lr / (1. + decay * count))
  return optax.adam(schedule, b1=float(config.b1), b2=float(config.b2))


def make_chunk_fn(loss: Callable, tx: optax.GradientTransformation) -> Any:
  """``chunk(carry, batches, consts) -> (carry, terms)``: one Adam step per batch in a scan.

  ``carry = (params, opt_state)``; ``batches`` maps names to (K, B, ...) arrays; ``terms`` maps
  names to (K,) per-step values.
  """
  def step(carry, batch, consts):
    params, opt_state = carry
    (_, terms), grads = jax.value_and_grad(loss, has_aux=True)(params, batch, consts)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), terms

  def chunk(carry, batches, consts):
    return lax.scan(lambda c, b: step(c, b, consts), carry, batches)

  return jax.jit(chunk, donate_argnums=(0,))


_CHUNK_FNS: dict = {}
_COMPILED: dict = {}


def chunk_fn_for(loss: Callable, config) -> tuple[Any, optax.GradientTransformation]:
  """The jitted chunk of ``loss`` with the config's optimiser, reused across runs in a process
  (tasks build their losses through cached factories, so an equal loss is the same object)."""
  key = (loss, float(config.learning_rate), float(config.lr_decay), float(config.b1),
         float(config.b2))
  if key not in _CHUNK_FNS:
    tx = make_optimizer(config)
    _CHUNK_FNS[key] = (make_chunk_fn(loss, tx), tx)
  return _CHUNK_FNS[key]


def _signature(tree) -> tuple:
  leaves = jax.tree.leaves(tree)
  return (jax.tree.structure(tree),
          tuple((np.shape(x), str(x.dtype), str(getattr(x, 'sharding', None))) for x in leaves))


def compile_chunk(chunk_fn: Any, carry, batches, consts):
  """AOT-compiles ``chunk_fn`` for these shapes once per process (returns (compiled, seconds))."""
  key = (chunk_fn, _signature((carry, batches, consts)))
  if key in _COMPILED:
    return _COMPILED[key], 0.
  t0 = time.perf_counter()
  _COMPILED[key] = chunk_fn.lower(carry, batches, consts).compile()
  return _COMPILED[key], time.perf_counter() - t0



# --- Checkpoints (nst_jax.io.checkpoints): the carry's leaves, with their pytree paths.


def _paths(tree) -> list[str]:
  return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def save_checkpoint(path: Path, carry, step: int, key: str) -> None:
  checkpoints.save(path, jax.tree.leaves(carry), step, key, {'paths': _paths(carry)})


def load_checkpoint(path: Path, template, key: str) -> tuple[Any, int]:
  """(carry, step) restored into the structure of ``template``."""
  meta, leaves = checkpoints.read(path, key, 'training configuration')
  ref = jax.tree.leaves(template)
  if meta.get('paths') != _paths(template) or any(
      np.shape(a) != np.shape(b) for a, b in zip(leaves, ref)):
    raise ConfigError(f'checkpoint {path} does not match this network; delete it')
  carry = jax.tree.unflatten(jax.tree.structure(template),
                             [np.asarray(a, np.asarray(b).dtype) for a, b in zip(leaves, ref)])
  return carry, int(meta['step'])


# --- The loop.


def _host_terms(terms) -> dict[str, np.ndarray]:
  return {k: np.asarray(v, np.float64) for k, v in terms.items()}


def train(config: ml_collections.ConfigDict, task: Task, quiet: bool = False) -> dict:
  """Trains ``task`` as configured; writes the model directory; returns the summary dict."""
  t_start = time.perf_counter()
  out = fileio.check_writable_dir(Path(config.output).expanduser(), '--output')
  ckpt = out / CHECKPOINT
  key = checkpoints.resume_key(config, 'train')
  num_steps, chunk = int(config.num_steps), int(config.chunk)
  chunk_fn, tx = chunk_fn_for(task.loss, config)
  carry = (task.params, tx.init(task.params))
  start = 0
  if config.resume and ckpt.exists():
    carry, start = load_checkpoint(ckpt, carry, key)
  elif config.resume and not quiet:
    log.info(f'no checkpoint at {ckpt}; starting from step 0')

  mesh = mesh_lib.batch_mesh(bool(config.shard), int(config.batch_size))
  if mesh is not None:  # Global arrays: with several processes each puts its devices' slices.
    rep, bsh = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, 'batch'))
    put = lambda tree, sh: jax.tree.map(lambda x: distributed.global_array(x, sh), tree)
    put_batches = lambda b: put(b, bsh)
    carry = put(jax.tree.map(np.array, carry), rep)  # a copy: the carry is donated
    consts = put(task.consts, rep)
  else:
    put_batches = lambda b: jax.tree.map(jnp.asarray, b)
    carry, consts = jax.tree.map(jnp.array, carry), jax.tree.map(jnp.asarray, task.consts)

  main = distributed.is_main()  # Only process 0 writes files.
  writer = metrics.MetricsWriter(
      out if main else None, config, total_steps=num_steps, images_per_step=int(config.batch_size),
      progress='none' if quiet else config.progress,
      progress_keys=('total', 'content', 'style', 'tv', 'images_per_s'),
      resume_step=start if config.resume else None)
  summary: dict = {'job': 'train', 'task': task.name, 'output': str(out),
                   'devices': [str(d) for d in jax.devices()], 'processes': jax.process_count(),
                   'conv_dtype': devices.resolve_conv_dtype(config.conv_dtype),  # 'auto' resolved
                   'start_step': start, **task.info}
  timings = {'compile_s': 0., 'run_s': 0., 'wait_s': 0., 'sample_s': 0., 'save_s': 0.}
  samples_dir = out / 'samples'
  step = start
  save_every, sample_every = int(config.save_every), int(config.sample_every)
  limit_s = float(config.max_minutes) * 60.

  def save(s: int, c) -> list[Path]:
    ts = time.perf_counter()
    if main:
      task.save_model(out, jax.device_get(c[0]))
      save_checkpoint(ckpt, jax.device_get(c), s, key)
    timings['save_s'] += time.perf_counter() - ts
    return [out / task.model_file, ckpt]

  def sample(s: int, c) -> None:
    if task.sample is None:
      return
    ts = time.perf_counter()
    image = task.sample(c[0], consts)  # On every process: the params are global arrays.
    if main:
      samples_dir.mkdir(exist_ok=True)
      image_io.save_image(samples_dir / f'step_{s:06d}.png', image)
    timings['sample_s'] += time.perf_counter() - ts

  prefetcher: Optional[data.Prefetcher] = None
  try:
    with writer, interrupt.StopOnSignal(quiet=quiet) as stop:
      # The loader thread starts once the signal handler is in place, so a Ctrl-C while it
      # prepares the first chunks also stops at a chunk boundary.
      prefetcher = data.Prefetcher(task.samplers, start, num_steps, chunk, int(config.prefetch))
      if start == 0 and sample_every and num_steps:
        sample(0, carry)
      while step < num_steps:
        tw = time.perf_counter()
        first, batches = next(prefetcher)
        assert first == step, (first, step)
        n = next(iter(batches.values())).shape[0]
        batches = put_batches(batches)
        timings['wait_s'] += time.perf_counter() - tw
        compiled, dt_compile = compile_chunk(chunk_fn, carry, batches, consts)
        timings['compile_s'] += dt_compile
        tr = time.perf_counter()
        new_carry, terms = compiled(carry, batches, consts)
        terms = _host_terms(terms)  # Syncs: the chunk is done.
        dt = time.perf_counter() - tr
        timings['run_s'] += dt
        if not all(np.all(np.isfinite(v)) for v in terms.values()):
          bad = min(int(np.argmin(np.isfinite(v))) for v in terms.values()
                    if not np.all(np.isfinite(v)))
          where = (f'{ckpt} (step {checkpoints.read_step(ckpt, key)})' if ckpt.exists()
                   else 'no checkpoint yet')
          raise NonFiniteLossError(
              f'the training loss became NaN/Inf at step {step + bad + 1}; stopped without saving '
              f'(last good checkpoint: {where}). Lower learning_rate or the loss weights.')
        carry = new_carry
        prev, step = step, step + n
        record: dict[str, Any] = {k: float(np.mean(v)) for k, v in terms.items()}
        record['step_totals'] = [float(v) for v in terms['total']]
        writer.write(step, record, chunk_s=dt)
        if sample_every and step // sample_every > prev // sample_every:
          sample(step, carry)
        if save_every and step // save_every > prev // save_every and step < num_steps:
          save(step, carry)
        elapsed = time.perf_counter() - t_start
        if limit_s and step < num_steps and distributed.any_process(
            elapsed + dt * 1.5 > limit_s):
          summary['stopped_early'] = (f'max_minutes={config.max_minutes} reached after {step} of '
                                      f'{num_steps} steps')
          if not quiet:
            log.info(f'{summary["stopped_early"]}: saving and stopping (resume with '
                  '--config.resume=True and a larger max_minutes to continue)')
          break
        if step < num_steps and distributed.any_process(stop.requested):
          paths = save(step, carry)
          _write_summary(out, summary, writer, timings, step, num_steps, t_start,
                         interrupted=True)
          raise interrupt.Interrupted(interrupt.resume_line(
              step, paths, interrupt.resume_command()), step, paths)
      if num_steps and step > start or distributed.any_process(
          not (out / task.model_file).exists()):
        save(step, carry)
        if sample_every and step % sample_every:
          sample(step, carry)
  except NonFiniteLossError as e:
    summary['error'] = str(e)
    _write_summary(out, summary, writer, timings, step, num_steps, t_start)
    raise
  finally:
    if prefetcher is not None:
      prefetcher.close()
  result = _write_summary(out, summary, writer, timings, step, num_steps, t_start)
  result['params'] = jax.device_get(carry[0])
  if not quiet and main:
    wrote = out / task.model_file if Path(task.model_file).is_absolute() else out
    log.info(f'wrote {wrote} ({step} steps, {result["timings"]["wall_s"]:.1f} s)')
  return result


def _write_summary(out: Path, summary: dict, writer, timings: dict, step: int, num_steps: int,
                   t_start: float, interrupted: bool = False) -> dict:
  run_steps = step - summary['start_step']
  t = dict(timings, wall_s=time.perf_counter() - t_start)
  if run_steps:
    t['s_per_step'] = t['run_s'] / run_steps
  recs = writer.records
  rates = [r['images_per_s'] for r in recs[1:]] or [r['images_per_s'] for r in recs]
  t['images_per_s'] = float(np.median(rates)) if rates else 0.
  summary.update(steps=step, num_steps=num_steps, interrupted=interrupted, timings=t,
                 final=writer.last(), history=[{k: r[k] for k in r if k in (
                     'step', 'total', 'content', 'style', 'tv', 'images_per_s')} for r in recs])
  if distributed.is_main():
    fileio.write_json(out / SUMMARY, metrics.finite_or_none(summary))
  return dict(summary)
