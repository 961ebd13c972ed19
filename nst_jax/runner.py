"""The importable runner behind ``run.py``: dispatches a config to its job; files in and out.

``run(config)`` looks up ``config.job`` in :data:`JOBS` (lazy imports, so a job's dependencies
load only when it runs) and calls that job's ``run(config, **kwargs) -> dict``. This module
owns the ``stylize`` job (:func:`run_stylize`): a grid when ``config.sweep.axes`` is set
(:mod:`nst_jax.sweep`), else one image (:func:`run_single`), which reads the images named in
the config, resolves the VGG19 weights, runs :func:`nst_jax.engine.run_stages` (the engine's one
stage loop) and does the files: progress and metrics (:mod:`nst_jax.metrics`), intermediate
images, a resumable checkpoint, Ctrl-C handling (:mod:`nst_jax.interrupt`), and finally the PNG
and a JSON beside it (resolved config, loss history, evaluations, timings). It works the same
from a notebook.
"""

from __future__ import annotations

import importlib
from pathlib import Path
import sys
import time
from typing import Any, Callable, Mapping, Optional

import jax
import ml_collections
import numpy as np

from nst_jax import config as config_lib
from nst_jax import compile_cache, controls, engine, fileio, image_io, interrupt, memory, metrics
from nst_jax import optim, profiling, spatial, vgg
from nst_jax.errors import ConfigError, NonFiniteLossError, NSTError

CHECKPOINT_VERSION = 1

# --- Jobs: config.job -> 'module:function'; the function takes (config, **kwargs) and returns
# the job's summary dict. Add one line per job; the module is imported only when it runs.
JOBS: dict[str, str] = {
    'stylize': 'nst_jax.runner:run_stylize',
    'fast': 'nst_jax.fast:run',
    'arbitrary': 'nst_jax.arbitrary:run',
    'train': 'nst_jax.train:run',
}


def job_function(job: str) -> Callable[..., dict]:
  """The function that runs ``job`` (ConfigError naming the known jobs if there is none)."""
  if job not in JOBS:
    raise ConfigError(f'unknown job {job!r}; choose one of {", ".join(sorted(JOBS))}')
  module, _, name = JOBS[job].partition(':')
  return getattr(importlib.import_module(module), name)


def run(config: ml_collections.ConfigDict, **kwargs: Any) -> dict:
  """Runs the job ``config.job`` (default ``stylize``); returns the summary it writes.

  ``kwargs`` go to the job (``stylize`` takes ``params=`` VGG19 params and ``quiet=``).
  Raises NSTError subclasses for user errors and :class:`nst_jax.interrupt.Interrupted` when a
  signal stopped the job after saving its work.
  """
  return job_function(str(config.get('job', 'stylize')))(config, **kwargs)


def run_stylize(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
                quiet: bool = False) -> dict:
  """The ``stylize`` job: a batched grid if ``config.sweep.axes`` is set, else one image."""
  if config.sweep.axes:
    from nst_jax import sweep  # pylint: disable=g-import-not-at-top
    return sweep.run_sweep(config, None, params, quiet)
  return run_single(config, params, quiet)


# File helpers live in nst_jax.fileio; these names stay importable from the runner.
atomic_write, write_json, check_writable = (fileio.atomic_write, fileio.write_json,
                                            fileio.check_writable)
split_paths = config_lib.split_list


# --- Checkpoints: plain npz of the optimiser state's leaves (no pickle), keyed by a hash of the
# fields that define the problem, so a checkpoint is never resumed into a different run.

_RESUME_IRRELEVANT = ('num_steps', 'log_every', 'save_every', 'resume', 'output', 'profile_dir',
                      'output_dir')


def problem_key(config: ml_collections.ConfigDict) -> str:
  """A hash of the fields that define the problem (a checkpoint resumes only into its own)."""
  return config_lib.config_key(config, _RESUME_IRRELEVANT)


def checkpoint_path(output: Path) -> Path:
  return output.with_name(output.stem + '.ckpt.npz')


def save_checkpoint(path: Path, state: Any, step: int, history: dict, key: str,
                    extra: Optional[dict] = None,
                    extra_arrays: Optional[Mapping[str, np.ndarray]] = None) -> None:
  """Writes the optimiser state's leaves, step and history atomically (plain npz); ``extra``
  joins the JSON metadata and ``extra_arrays`` are stored as ``x_NAME``."""
  leaves = optim.checkpoint_leaves(state)
  meta = {'version': CHECKPOINT_VERSION, 'step': step, 'key': key, 'history': history,
          **(extra or {})}
  arrays: dict[str, Any] = {f'leaf_{i:04d}': np.asarray(x) for i, x in enumerate(leaves)}
  arrays.update({f'x_{k}': np.asarray(v) for k, v in (extra_arrays or {}).items()})
  fileio.write_npz(path, arrays, meta)


def checkpoint_step(path: Path, key: str) -> int:
  """The step a checkpoint was saved at; raises if it is unreadable or of another config."""
  return int(_read_checkpoint(path, key, lambda name: False)[0]['step'])


def read_checkpoint_meta(path: Path, key: str) -> tuple[dict, dict[str, np.ndarray]]:
  """A checkpoint's metadata and its extra arrays (``extra_arrays`` of save_checkpoint)."""
  meta, extras = _read_checkpoint(path, key, lambda name: name.startswith('x_'))
  return meta, {k[2:]: v for k, v in extras.items()}


def read_checkpoint(path: Path, key: str) -> tuple[dict, list[np.ndarray]]:
  """A checkpoint's metadata and state leaves (ConfigError if it is another config's)."""
  meta, arrays = _read_checkpoint(path, key)
  try:
    return meta, [arrays[f'leaf_{i:04d}'] for i in range(len(arrays))]
  except KeyError as e:
    raise NSTError(f'checkpoint {path} is unreadable (no array {e}); delete it to start over'
                   ) from e


def _is_leaf(name: str) -> bool:
  return name.startswith('leaf_')


def _read_checkpoint(path: Path, key: str, names: Callable[[str], bool] = _is_leaf
                     ) -> tuple[dict, dict[str, np.ndarray]]:
  """The metadata and the arrays ``names`` selects (only those are read from the file)."""
  try:
    arrays, meta = fileio.read_npz(path, names)
    if 'key' not in meta:
      raise ValueError('no checkpoint metadata')
  except (OSError, ValueError) as e:
    raise NSTError(f'checkpoint {path} is unreadable ({e}); delete it to start over') from e
  if meta.get('key') != key:
    raise ConfigError(f'checkpoint {path} belongs to a different configuration; delete it or '
                      'run without --config.resume')
  return meta, arrays


def load_checkpoint(path: Path, template_state: Any, key: str) -> tuple[Any, int, dict]:
  """Returns (state, step, history) restored into the structure of ``template_state``."""
  meta, leaves = read_checkpoint(path, key)
  state = optim.state_from_leaves(leaves, template_state, f'checkpoint {path}')
  return state, int(meta['step']), meta['history']


def load_inputs(config: ml_collections.ConfigDict
                ) -> tuple[Optional[np.ndarray], list[Optional[np.ndarray]], Optional[np.ndarray]]:
  """Reads content, style(s) and init image named by the config (at full resolution)."""
  cap = int(config.max_pixels)
  content = image_io.load_image(config.content, max_pixels=cap) if config.content else None
  styles = [None if p.lower() == 'none' else image_io.load_image(p, max_pixels=cap)
            for p in config_lib.split_list(config.style)]  # 'none': an unstyled region (masks)
  init = (image_io.load_image(config.init_image, max_pixels=cap)
          if config.init == 'image' and config.init_image else None)
  return content, styles, init


# Progress shows these record fields (the loss terms and evaluations), as before.
PROGRESS_KEYS = ('total', 'content', 'style', 'tv', 'evals')


def run_single(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
               quiet: bool = False) -> dict:
  """Runs one style-transfer image (coarse-to-fine stages included); returns the summary
  written as JSON beside the output.

  Writes ``OUT.png``, ``OUT.json`` (summary), ``OUT.config.json`` and ``OUT.metrics.jsonl`` (one
  record per chunk), and with ``save_every`` intermediate PNGs and ``OUT.ckpt.npz``. On SIGINT /
  SIGTERM it finishes the chunk, writes the image, the checkpoint and the JSON, and raises
  :class:`~nst_jax.interrupt.Interrupted` whose message says how to resume. A staged run's
  checkpoint (written on a stop) holds the stopped stage's index, starting image and state.
  """
  t_start = time.perf_counter()
  engine.validate(config)
  compile_dir = compile_cache.enable(config.compile_cache)  # issue 10: disk cache
  compile_stats = compile_cache.CompileStats.start()  # compilations and their seconds
  output = Path(config.output).expanduser()
  fileio.check_writable(output)
  if config.mode != 'texture_synthesis' and not config.content:
    raise ConfigError(f'mode={config.mode} needs a content image: pass --content=PATH')
  if config.mode != 'content_reconstruction' and not config.style:
    raise ConfigError(f'mode={config.mode} needs a style image: pass --style=PATH')
  staged = bool(config.stages)
  content, styles, init = load_inputs(config)
  masks, style_masks = controls.config_masks(config, len(styles))
  if params is None:
    from nst_jax import weights  # pylint: disable=g-import-not-at-top
    content_layers, style_layers, _ = config_lib.layer_choice(config)
    deepest = max(content_layers + style_layers, key=vgg.layer_index)  # issue 10: no deeper
    params = weights.load_vgg19(config.weights or None, upto=deepest)   # weights in memory
  t_loaded = time.perf_counter()
  # issue 10: estimate every stage's memory first; refuse (one line) rather than run out of it.
  mem = [memory.check_config(c, content, styles, quiet) for c in engine.stage_configs(config)][-1]

  key = problem_key(config)
  ckpt = checkpoint_path(output)
  resume_step = checkpoint_step(ckpt, key) if config.resume and ckpt.exists() else None
  # Coarse-to-fine: the checkpoint (written on Ctrl-C) holds the stage index, the image that
  # stage started from and the summaries of the stages before it.
  first_stage, stage_init, prev_stages = 0, init, []
  if staged and resume_step is not None:
    meta, extras = read_checkpoint_meta(ckpt, key)
    first_stage, prev_stages = int(meta.get('stage', 0)), list(meta.get('stages', []))
    if 'stage_init' in extras:
      stage_init = extras['stage_init']
  save_every = int(config.save_every)
  stem = output.with_suffix('')
  summary: dict[str, Any] = {'config': config.to_dict(), 'output': str(output)}
  if not staged:
    summary['shape'] = None
  summary['devices'] = [str(d) for d in jax.devices()]
  if not staged:
    summary.update(compile_cache=str(compile_dir or 'off'), memory=mem)
  writer = metrics.MetricsWriter(output, config, total_steps=int(config.num_steps), quiet=quiet,
                                 progress_keys=PROGRESS_KEYS,
                                 resume_step=resume_step if not staged or resume_step is None
                                 else 2**62)  # Staged: keep every record (written at a stop).
  stop = interrupt.StopOnSignal(quiet=quiet)
  done: list[tuple[ml_collections.ConfigDict, engine.Problem, engine.Result]] = []
  failed: dict[str, Any] = {}
  t_built = [t_loaded]

  def run_stage(i: int, c: ml_collections.ConfigDict, problem: engine.Problem) -> engine.Result:
    # issue 10: split the rows over devices (every stage: the big last stage is what needs it).
    problem, params_i = spatial.from_config(problem, params, config)
    summary['spatial_shards'] = spatial.split_count(problem.z0)  # the last stage's
    if not staged:
      t_built[0] = time.perf_counter()
    state, start, history = None, 0, None
    if resume_step is not None and i == first_stage:
      template = engine.init_state(problem.z0, params_i, problem.targets, problem.weights,
                                   problem.hyper, spec=problem.spec, mspec=problem.mspec)
      state, start, history = load_checkpoint(ckpt, template, key)
      writer.message(f'resuming from {ckpt} at step {start}')
      summary['resumed_from'] = start  # the step this process started at
    if staged:
      writer.total_steps = int(c.num_steps)
      writer.message(f'stage {i + 1}: {problem.shape[0]}x{problem.shape[1]}, {c.num_steps} steps')
    last_saved = [start // save_every if save_every and not staged else 0]

    def on_chunk(step: int, st: Any, info: dict) -> None:
      record = dict(info['terms'], evals=info['evals'])
      record.pop('step', None)
      if staged:
        record['stage'] = i + 1
      writer.write(step, record, chunk_s=info['chunk_s'])
      if save_every and not staged and step // save_every > last_saved[0]:
        last_saved[0] = step // save_every
        z = engine.state_image(st, problem)
        image_io.save_image(f'{stem}_step{step:05d}{output.suffix}', engine.render(problem, z))
        save_checkpoint(ckpt, st, step, info['history'], key)

    chunk = min(c.log_every, save_every) if save_every and not staged else int(c.log_every)
    try:
      result = engine.optimize(problem, params_i, c.num_steps, chunk, on_chunk, state, start,
                               history, config.profile_dir if i == 0 else '',
                               stop=lambda: stop.requested)
    except NonFiniteLossError:
      failed.update(stage=i, shape=list(problem.shape))
      raise
    done.append((c, problem, result))
    return result

  try:
    with writer, stop:
      stages = engine.run_stages(config, params, content, styles, stage_init, masks,
                                 style_masks, run_stage, first_stage)
  except NonFiniteLossError as e:  # Keep the last finite image and say what happened.
    image_io.save_image(output, e.image)
    if staged:
      summary['stages'] = prev_stages + _stage_summaries(done, writer, first_stage)
      summary.update(error=f'stage {failed["stage"] + 1}: {e}',
                     steps=sum(r.steps for _, _, r in done) + e.step)
    else:
      summary.update(shape=failed['shape'], error=str(e), steps=e.step)
    fileio.write_json(output.with_suffix('.json'), summary)
    raise
  _, _, last = stages[-1]
  image_io.save_image(output, last.image)
  timings = {'load_s': t_loaded - t_start, 'wall_s': time.perf_counter() - t_start,
             **compile_stats.stats()}
  if staged:
    summary['stages'] = prev_stages + _stage_summaries(stages, writer, first_stage)
    lst = summary['stages'][-1]
    summary.update(shape=lst['shape'], steps=sum(st['steps'] for st in summary['stages']),
                   evals=sum(st['evals'] for st in summary['stages']), final=lst['final'],
                   timings=timings)
  else:
    _, problem, result = stages[0]
    terms = _terms_history(writer.records, result)
    summary.update(shape=list(problem.shape), steps=result.steps, evals=result.evals,
                   loss_history=result.losses, terms_history=terms,
                   final=terms[-1] if terms else None,
                   timings=dict(result.timings, load_s=timings['load_s'],
                                build_s=t_built[0] - t_loaded, **{
                                    k: v for k, v in timings.items() if k != 'load_s'}))
    mem['peak_rss_mb'] = round(profiling.peak_rss_mb())
  summary['metrics'] = str(writer.path)
  if last.stopped:
    summary['interrupted'] = True
  fileio.write_json(output.with_suffix('.json'), summary)
  written = [output]
  if not staged and (save_every or last.stopped):  # Resumable: extend or continue the run.
    save_checkpoint(ckpt, last.state, last.steps,
                    {'losses': last.losses, 'evals': last.evals, 'terms': last.terms}, key)
    written.append(ckpt)
  elif staged and last.stopped:  # The stopped stage's state, index and starting image.
    idx = first_stage + len(stages) - 1
    start_img = stages[-2][2].image if len(stages) > 1 else stage_init
    save_checkpoint(ckpt, last.state, last.steps,
                    {'losses': last.losses, 'evals': last.evals, 'terms': last.terms}, key,
                    {'stage': idx, 'stages': summary['stages'][:-1]},
                    {} if start_img is None else {'stage_init': start_img})
    written.append(ckpt)
  elif staged and resume_step is not None:  # Finished: the stopped stage's checkpoint is spent.
    ckpt.unlink(missing_ok=True)
  if last.stopped:
    if staged:
      raise interrupt.Interrupted(interrupt.resume_line(
          last.steps, written, interrupt.resume_command(),
          f'stage {first_stage + len(stages)} step'), last.steps, written)
    raise interrupt.Interrupted(interrupt.resume_line(last.steps, written,
                                                      interrupt.resume_command()),
                                last.steps, written)
  if not quiet:
    shape = summary['shape']
    what = f'{len(stages)} stages, ' if staged else ''
    extra = '' if staged else f', {summary["evals"]} evaluations'
    print(f'wrote {output} ({shape[0]}x{shape[1]}, {what}{summary["steps"]} steps{extra}, '
          f'{timings["wall_s"]:.1f} s)', file=sys.stderr)
  return summary


def _terms_history(records: list[dict], result: engine.Result) -> list[dict]:
  """The loss terms per chunk (with their step), from the metrics records."""
  if not result.terms:
    return []
  keys = [k for k in result.terms[-1] if k != 'step']
  terms = [dict({k: r[k] for k in keys}, step=r['step']) for r in records]
  return terms if len(terms) == len(result.terms) else result.terms


def _stage_summaries(stages: list, writer: metrics.MetricsWriter, first: int = 0) -> list[dict]:
  """One summary per coarse-to-fine stage, its loss terms from the metrics records."""
  out = []
  for i, (c, problem, result) in enumerate(stages, first):
    terms = _terms_history([r for r in writer.records if r.get('stage') == i + 1], result)
    out.append({'size': c.size, 'shape': list(problem.shape), 'steps': result.steps,
                'evals': result.evals, 'loss_history': result.losses, 'terms_history': terms,
                'final': terms[-1] if terms else None, 'timings': result.timings})
  return out
