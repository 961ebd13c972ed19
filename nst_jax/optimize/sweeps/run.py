"""Batched sweeps: a grid of configurations as one jitted, vmapped, sharded program per group.

A sweep is a base config plus ``config.sweep`` (defaults in
:func:`nst_jax.config.stylize.base_config`):

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
  call ``jax.distributed.initialize()`` first (multi-host runs; only process 0 writes files):
  the cluster is detected, or ``coordinator`` / ``num_processes`` / ``process_id`` name it
  (``connect_timeout`` seconds to connect; docs/guide/distributed.md). The batch axis is then
  sharded over every process's devices.
``cell_size``
  longest side of a contact-sheet thumbnail (images are never upscaled).

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
``results.json`` into the output directory (``config.output_dir``, ``run.py --output_dir``;
default ``outputs/sweep``), plus ``config.json`` and ``metrics.jsonl`` (one record per chunk,
:mod:`nst_jax.io.metric_writers`). Ctrl-C stops after the current chunk, writes what ran so far and
``sweep.ckpt.npz`` (:func:`save_progress`: the finished configs' results, the stopped chunk's
stacked optimiser state); ``--config.resume=True`` skips the finished configs and continues
that chunk, to the outputs of an uninterrupted sweep.

The code is split along its seams: :mod:`nst_jax.optimize.sweeps.grid` (axes, expansion, grouping),
:mod:`nst_jax.optimize.sweeps.batch` (stacked engine problems run as one vmapped program),
:mod:`nst_jax.optimize.sweeps.report` (labels, contact sheet, CSV, JSON); this module runs a
whole sweep. From the command line (any preset becomes a sweep with ``--config.sweep.axes``)::

  python run.py --config=configs/sweep_loss_weights.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_loss_weights
  python run.py --config=configs/gatys2015.py --content=... --style=... --output_dir=out/lr \
      --config.sweep.axes='optimizer.learning_rate=0.5,1,2;seed=0,1' --config.size=256
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
import time
from typing import Callable, Mapping, Optional

import jax
import ml_collections
import numpy as np

from nst_jax.io import checkpoints, log
from nst_jax.io import files as fileio
from nst_jax.io import metric_writers as metrics
from nst_jax.optimize import loop
from nst_jax.optimize.sweeps.batch import (
  BatchResult,
  ImageCache,
  build_batch,
  run_batch,
)
from nst_jax.optimize.sweeps.grid import (
  BATCHABLE,
  describe_static,
  expand,
  get_field,
  group_indices,
  materialize,
)
from nst_jax.optimize.sweeps.report import (
  Outcome,
  SweepResult,
  slug,
  summary_of,
  write_report,
)
from nst_jax.runtime import compile_cache, distributed, interrupt


def execute(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
            images: Optional[Callable[[str], Optional[np.ndarray]]] = None, quiet: bool = True,
            cost_analysis: Optional[bool] = None,
            writer: Optional[metrics.MetricsWriter] = None,
            stop: Optional[Callable[[], bool]] = None,
            progress: Optional['Progress'] = None) -> SweepResult:
  """Expands, groups and runs a sweep; nothing is written but ``writer``'s metrics records.

  ``writer`` gets one record per chunk (with ``group``); ``stop()`` ends the sweep after the
  current chunk (the result then holds the configs that ran, ``stopped=True``).
  ``progress`` (a :class:`Progress`, e.g. from :func:`load_progress`) skips the configs it has
  finished and continues its stopped chunk; it is updated in place with what this call ran, so
  after a stop it is what :func:`save_progress` writes.
  """
  t0 = time.perf_counter()
  if cost_analysis is None:
    cost_analysis = bool(config.sweep.cost_analysis)
  axes, points = expand(config)
  configs = [materialize(config, p) for p in points]
  groups = group_indices(configs)
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19(config.weights or None)
  images = images or ImageCache(int(config.max_pixels))
  say: Optional[Callable[[str], None]] = None
  if writer is not None:
    say = writer.message
  elif not quiet:
    say = log.info
  outcomes: list[Optional[Outcome]] = [None] * len(configs)
  group_info = []
  prog = progress if progress is not None else Progress()
  res: Optional[BatchResult] = None
  for g, idxs in enumerate(groups):
    if g in prog.groups and all(i in prog.finished for i in idxs):  # Finished before.
      group_info.append(prog.groups[g])
      for i in idxs:
        outcomes[i] = prog.finished[i]
      continue
    cfgs = [configs[i] for i in idxs]
    base = cfgs[0]
    if say:
      say(f'group {g + 1}/{len(groups)}: {len(idxs)} configs ({describe_static(base, axes)})')
    batch = build_batch(cfgs, params, images)
    record: Optional[Callable[[dict], None]] = None
    if writer is not None:
      record = functools.partial(_record, writer, g + 1)
    res = run_batch(batch, params, int(base.num_steps), int(base.log_every),
                    int(config.sweep.max_batch), bool(config.sweep.shard),
                    config.profile_dir if g == 0 else '', cost_analysis,
                    None if writer is not None else say, record, stop,
                    sorted({prog.finished[i].chunk for i in idxs if i in prog.finished}),
                    prog.partial if prog.partial_group == g else None)
    info = {'index': g, 'configs': idxs, 'shape': list(batch.shape),
            'static': {a.name: get_field(base, a.name) for a in axes if a.name not in BATCHABLE},
            'content_layers': list(batch.spec.content_layers),
            'style_layers': list(batch.spec.style_layers), 'optimizer': batch.mspec.name,
            'n_devices': res.n_devices, 'flops_per_step': res.flops_per_step,
            'achieved_flops_per_s': res.flops_per_step * int(base.num_steps) * len(
                res.timings['chunks']) / max(res.timings['run_s'], 1e-9),
            'timings': res.timings}
    group_info.append(info)
    for j, i in enumerate(idxs):
      if i in prog.finished:
        outcomes[i] = prog.finished[i]
        continue
      if res.done is not None and not res.done[j]:
        continue  # Not started: the sweep was stopped.
      chunk = res.timings['chunks'][int(res.chunk[j])]
      outcomes[i] = Outcome(
          i, points[i], configs[i], g, int(res.chunk[j]), res.pixels[j],
          {k: float(v[j]) for k, v in res.terms.items()},
          res.losses[j] if res.steps is None else res.losses[j][:int(res.steps[j])],
          int(res.evals[j]),
          bool(res.finite[j]), int(res.bad_step[j]),
          {'group_compile_s': res.timings['compile_s'], 'chunk_run_s': chunk['run_s'],
           'run_s_per_config': chunk['run_s'] / chunk['configs']})
    partial = set() if res.resume is None else {idxs[j] for j in res.resume['configs']}
    prog.finished.update({i: o for i in idxs if (o := outcomes[i]) is not None
                          and i not in partial})
    prog.partial_group, prog.partial = (g, res.resume) if res.resume is not None else (-1, None)
    if res.stopped:
      break
    prog.groups[g] = info
  return SweepResult(axes, config.sweep.mode, [o for o in outcomes if o is not None],
                     group_info,
                     {'total_s': time.perf_counter() - t0,
                      'compile_s': sum(g['timings']['compile_s'] for g in group_info),
                      'run_s': sum(g['timings']['run_s'] for g in group_info)},
                     len(configs), res is not None and res.stopped)


@dataclasses.dataclass
class Progress:
  """What a sweep has done: its finished configs' outcomes, finished groups' info and the
  stopped chunk's state (:attr:`BatchResult.resume`) with its group."""
  finished: dict[int, Outcome] = dataclasses.field(default_factory=dict)
  groups: dict[int, dict] = dataclasses.field(default_factory=dict)
  partial_group: int = -1
  partial: Optional[dict] = None


CHECKPOINT = 'sweep.ckpt.npz'
_PARTIAL_ARRAYS = ('configs', 'last', 'losses', 'evals', 'finite', 'bad')


def sweep_key(config: ml_collections.ConfigDict) -> str:
  """The checkpoint key of a sweep: its problem key (the sweep config included) and steps."""
  return f'{checkpoints.resume_key(config)}-{int(config.num_steps)}'


def save_progress(path: Path, progress: Progress, key: str) -> None:
  """Writes a stopped sweep's checkpoint atomically: plain npz arrays plus JSON metadata."""
  done = [progress.finished[i] for i in sorted(progress.finished)]
  part = progress.partial
  meta = {'outcomes': [{'index': o.index, 'group': o.group, 'chunk': o.chunk, 'terms': o.terms,
                        'evals': o.evals, 'finite': o.finite, 'bad_step': o.bad_step,
                        'timings': o.timings} for o in done],
          'groups': {str(g): info for g, info in progress.groups.items()},
          'partial': None if part is None else {'group': progress.partial_group,
                                                'chunk': int(part['chunk'])}}
  arrays: dict[str, np.ndarray] = {}
  if done:
    arrays['pixels'] = np.stack([np.asarray(o.pixels, np.float32) for o in done])
    arrays['losses'] = np.stack([np.asarray(o.losses, np.float32) for o in done])
  if part is not None:
    arrays.update({f'p_{k}': np.asarray(part[k]) for k in _PARTIAL_ARRAYS})
  loop.save_checkpoint(path, [] if part is None else part['state'],
                       0 if part is None else int(part['step']), {}, key,
                       {'sweep': json.loads(json.dumps(meta, default=_json_default))}, arrays)


def _json_default(x: object) -> object:
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  return str(x)


def load_progress(path: Path, config: ml_collections.ConfigDict, key: str) -> Progress:
  """Reads :func:`save_progress`'s checkpoint (ConfigError if it is another sweep's)."""
  meta, leaves = checkpoints.read(path, key)
  _, extras = checkpoints.read_meta(path, key)
  m = meta['sweep']
  _, points = expand(config)
  configs = [materialize(config, p) for p in points]
  prog = Progress()
  for j, o in enumerate(m['outcomes']):
    i = int(o['index'])
    prog.finished[i] = Outcome(i, points[i], configs[i], int(o['group']), int(o['chunk']),
                               extras['pixels'][j], o['terms'], extras['losses'][j],
                               int(o['evals']), bool(o['finite']), int(o['bad_step']),
                               o['timings'])
  prog.groups = {int(g): info for g, info in m['groups'].items()}
  if m['partial'] is not None:
    prog.partial_group = int(m['partial']['group'])
    prog.partial = {k: extras[f'p_{k}'] for k in _PARTIAL_ARRAYS}
    prog.partial.update(chunk=int(m['partial']['chunk']), step=int(meta['step']), state=leaves)
  return prog


def _record(writer: metrics.MetricsWriter, group: int, rec: dict) -> None:
  writer.write(rec.pop('step'), dict(rec, group=group))


def run_sweep(config: ml_collections.ConfigDict, output_dir: Optional[str] = None,
              params: Optional[Mapping] = None, quiet: bool = False) -> dict:
  """Runs a sweep and writes PNGs, ``contact_sheet.png``, ``results.csv`` and ``results.json``
  (plus ``config.json`` and ``metrics.jsonl``) into ``output_dir`` (default:
  ``config.output_dir``, else ``outputs/sweep``).

  Returns the summary written as ``results.json``. On SIGINT / SIGTERM it stops after the
  current chunk, writes the report of the configs that ran (the running chunk's at their
  current step) and the checkpoint ``sweep.ckpt.npz``, and raises
  :class:`~nst_jax.runtime.interrupt.Interrupted` saying how to resume (``config.resume``: continue
  from that checkpoint; a finished sweep deletes it).
  """
  compile_cache.enable(config.compile_cache)  # persistent XLA cache
  if config.sweep.distributed:
    distributed.initialize_from(config.sweep)
  out = fileio.check_writable_dir(Path(output_dir or config.output_dir or 'outputs/sweep'))
  writes = jax.process_index() == 0
  writer = metrics.MetricsWriter(out if writes else None, config,
                                 total_steps=int(config.num_steps), quiet=quiet,
                                 progress_keys=('group', 'chunk', 'best_loss', 'configs'))
  key, ckpt = sweep_key(config), out / CHECKPOINT
  progress = (load_progress(ckpt, config, key) if config.resume and ckpt.exists()
              else Progress())
  if progress.finished or progress.partial is not None:
    writer.message(f'resuming from {ckpt}: {len(progress.finished)} configs done')
  with writer, interrupt.StopOnSignal(quiet=quiet) as stop:
    result = execute(config, params, quiet=quiet, writer=writer,
                     stop=lambda: distributed.any_process(stop.requested), progress=progress)
  summary = {}
  if writes and result.outcomes:
    summary = write_report(result, config, out)
  elif result.outcomes:
    summary = summary_of(result, config, [f'{slug(o.index, o.values)}.png'
                                          for o in result.outcomes])
  n, t = len(result.outcomes), result.timings
  if result.stopped:
    if writes:
      save_progress(ckpt, progress, key)
    raise interrupt.Interrupted(interrupt.resume_line(
        len(progress.finished), [f'{out}/contact_sheet.png, results.csv, results.json, {n} of '
                                 f'{result.total} images (the last chunk at its current step)',
                                 ckpt], interrupt.resume_command(), what='config'),
        None, [out, ckpt])
  if writes and ckpt.exists():  # Finished: the checkpoint of a stopped run is spent.
    ckpt.unlink()
  if not quiet and writes:
    log.info(f'wrote {out}/contact_sheet.png, results.csv, results.json and {n} images '
          f'({len(result.groups)} programs, compile {t["compile_s"]:.1f} s, run '
          f'{t["run_s"]:.1f} s, {n / max(t["run_s"], 1e-9):.2f} configs/s)')
  return summary
