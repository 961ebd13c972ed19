"""The ``stylize`` job: one optimisation run (or a sweep), with its files.

:func:`run` runs a batched grid when ``config.sweep.axes`` is set
(:mod:`nst_jax.optimize.sweeps.run`), else one image (:func:`run_single`): it reads the images
named in the config, resolves the VGG19 weights, checks the memory estimate, runs
:func:`nst_jax.optimize.stages.run_stages` (the one stage loop) and does the files: progress and
metrics (:mod:`nst_jax.io.metric_writers`), intermediate images, a resumable checkpoint
(:mod:`nst_jax.io.checkpoints`), Ctrl-C handling (:mod:`nst_jax.runtime.interrupt`), and finally
the PNG and a JSON beside it (resolved config, loss history, evaluations, timings). It works
the same from a notebook.
"""

from __future__ import annotations

from pathlib import Path
import time
from typing import Any, Mapping, Optional

import jax
import ml_collections
import numpy as np

from nst_jax.config import schema
from nst_jax.errors import ConfigError, NonFiniteLossError
from nst_jax.io import checkpoints, log
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.io import metric_writers as metrics
from nst_jax.losses import controls, objective
from nst_jax.models import vgg
from nst_jax.optimize import loop as loop_lib
from nst_jax.optimize import memory, spatial
from nst_jax.optimize import problem as problem_lib
from nst_jax.optimize import stages as stages_lib
from nst_jax.runtime import compile_cache, devices, interrupt, profiling


def run(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
        quiet: bool = False) -> dict:
  """The ``stylize`` job: a batched grid if ``config.sweep.axes`` is set, else one image."""
  if config.sweep.axes:
    from nst_jax.optimize.sweeps import run as sweep_run  # pylint: disable=g-import-not-at-top
    return sweep_run.run_sweep(config, None, params, quiet)
  return run_single(config, params, quiet)


def load_inputs(config: ml_collections.ConfigDict
                ) -> tuple[Optional[np.ndarray], list[Optional[np.ndarray]], Optional[np.ndarray]]:
  """Reads content, style(s) and init image named by the config (at full resolution)."""
  cap = int(config.max_pixels)
  content = image_io.load_image(config.content, max_pixels=cap) if config.content else None
  styles = [None if p.lower() == 'none' else image_io.load_image(p, max_pixels=cap)
            for p in schema.split_list(config.style)]  # 'none': an unstyled region (masks)
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
  :class:`~nst_jax.runtime.interrupt.Interrupted` whose message says how to resume. A staged run's
  checkpoint (written on a stop) holds the stopped stage's index, starting image and state.
  """
  t_start = time.perf_counter()
  problem_lib.validate(config)
  compile_dir = compile_cache.enable(config.compile_cache)  # persistent XLA cache
  compile_stats = compile_cache.CompileStats.start()  # compilations and their seconds
  output = Path(config.output).expanduser()
  fileio.check_writable(output)
  if config.mode != 'texture_synthesis' and not config.content:
    raise ConfigError(f'mode={config.mode} needs a content image: pass --content=PATH')
  if config.mode != 'content_reconstruction' and not config.style:
    raise ConfigError(f'mode={config.mode} needs a style image: pass --style=PATH')
  staged = bool(controls.parse_stages(config.stages, config.size, config.num_steps))
  content, styles, init = load_inputs(config)
  masks, style_masks = controls.config_masks(config, len(styles))
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    content_layers, style_layers, _ = objective.layer_choice(config)
    deepest = max(content_layers + style_layers, key=vgg.layer_index)  # no deeper
    params = weights.load_vgg19(config.weights or None, upto=deepest)   # weights in memory
  t_loaded = time.perf_counter()
  # Estimate every stage's memory first; refuse (one line) rather than run out of it.
  mem = [memory.check_config(c, content, styles, quiet)
         for c in stages_lib.stage_configs(config)][-1]

  key = checkpoints.resume_key(config)
  ckpt = checkpoints.path_for(output)
  resume_step = checkpoints.read_step(ckpt, key) if config.resume and ckpt.exists() else None
  # Coarse-to-fine: the checkpoint (written on Ctrl-C) holds the stage index, the image that
  # stage started from and the summaries of the stages before it.
  first_stage, stage_init, prev_stages = 0, init, []
  if staged and resume_step is not None:
    meta, extras = checkpoints.read_meta(ckpt, key)
    first_stage, prev_stages = int(meta.get('stage', 0)), list(meta.get('stages', []))
    if 'stage_init' in extras:
      stage_init = extras['stage_init']
  save_every = int(config.save_every)
  stem = output.with_suffix('')
  summary: dict[str, Any] = {'config': config.to_dict(), 'output': str(output)}
  if not staged:
    summary['shape'] = None
  summary['devices'] = [str(d) for d in jax.devices()]
  summary['conv_dtype'] = devices.resolve_conv_dtype(config.conv_dtype)  # what 'auto' ran as
  if not staged:
    summary.update(compile_cache=str(compile_dir or 'off'), memory=mem)
  writer = metrics.MetricsWriter(output, config, total_steps=int(config.num_steps), quiet=quiet,
                                 progress_keys=PROGRESS_KEYS,
                                 resume_step=resume_step if not staged or resume_step is None
                                 else 2**62)  # Staged: keep every record (written at a stop).
  stop = interrupt.StopOnSignal(quiet=quiet)
  done: list[tuple[ml_collections.ConfigDict, problem_lib.Problem, loop_lib.Result]] = []
  failed: dict[str, Any] = {}
  t_built = [t_loaded]

  def run_stage(i: int, c: ml_collections.ConfigDict,
                problem: problem_lib.Problem) -> loop_lib.Result:
    # Split the rows over devices (every stage: the big last stage is what needs it).
    problem, params_i = spatial.from_config(problem, params, config)
    summary['spatial_shards'] = spatial.split_count(problem.z0)  # the last stage's
    summary['conv_dtype'] = problem.spec.conv_dtype  # what 'auto' ran as (the last stage)
    if not staged:
      t_built[0] = time.perf_counter()
    state, start, history = None, 0, None
    if resume_step is not None and i == first_stage:
      template = loop_lib.init_state(problem.z0, params_i, problem.targets, problem.weights,
                                   problem.hyper, spec=problem.spec, mspec=problem.mspec)
      state, start, history = loop_lib.load_checkpoint(ckpt, template, key)
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
        z = loop_lib.state_image(st, problem)
        image_io.save_image(f'{stem}_step{step:05d}{output.suffix}', loop_lib.render(problem, z))
        loop_lib.save_checkpoint(ckpt, st, step, info['history'], key)

    chunk = min(c.log_every, save_every) if save_every and not staged else int(c.log_every)
    try:
      result = loop_lib.optimize(problem, params_i, c.num_steps, chunk, on_chunk, state, start,
                               history, config.profile_dir if i == 0 else '',
                               stop=lambda: stop.requested)
    except NonFiniteLossError:
      failed.update(stage=i, shape=list(problem.shape))
      raise
    done.append((c, problem, result))
    return result

  try:
    with writer, stop:
      stages = stages_lib.run_stages(config, params, content, styles, stage_init, masks,
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
    loop_lib.save_checkpoint(ckpt, last.state, last.steps,
                    {'losses': last.losses, 'evals': last.evals, 'terms': last.terms}, key)
    written.append(ckpt)
  elif staged and last.stopped:  # The stopped stage's state, index and starting image.
    idx = first_stage + len(stages) - 1
    start_img = stages[-2][2].image if len(stages) > 1 else stage_init
    loop_lib.save_checkpoint(ckpt, last.state, last.steps,
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
    log.info(f'wrote {output} ({shape[0]}x{shape[1]}, {what}{summary["steps"]} steps{extra}, '
          f'{timings["wall_s"]:.1f} s)')
  return summary


def _terms_history(records: list[dict], result: loop_lib.Result) -> list[dict]:
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
