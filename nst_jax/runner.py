"""The importable runner behind ``run.py``: files in, PNG + JSON out.

``run(config)`` reads the images named in the config, resolves the VGG19 weights, runs the
optimisation in jitted chunks with a progress line per chunk, writes intermediate images and a
resumable checkpoint atomically, and finally writes the PNG and a JSON beside it (resolved
config, loss history, evaluations, timings). It works the same from a notebook.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import jax
import ml_collections
import numpy as np

from nst_jax import compile_cache, controls, engine, image_io, memory, profiling, spatial
from nst_jax.errors import ConfigError, ImageError, NonFiniteLossError, NSTError

CHECKPOINT_VERSION = 1


def split_paths(text: str) -> list[str]:
  return [p.strip() for p in str(text or '').split(',') if p.strip()]


def check_writable(path: Path) -> None:
  """Fails early (before minutes of optimisation) if ``path`` cannot be written."""
  parent = path.parent
  try:
    parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ImageError(f'cannot create the output directory {parent}: {e.strerror or e}') from e
  if path.is_dir():
    raise ImageError(f'output path {path} is a directory; give a file name such as {path}/out.png')
  if not os.access(parent, os.W_OK):
    raise ImageError(f'output directory {parent} is not writable; choose another --output')
  if path.suffix.lower() not in ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff'):
    raise ImageError(f'output {path} needs an image extension such as .png')


def atomic_write(path: Path, write: Callable[[str], None], suffix: str = '.tmp') -> None:
  """Calls ``write(tmp_path)`` on a temp file beside ``path``, then renames it into place."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix=suffix)
  os.close(fd)
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path: Path, data: Any) -> None:
  """Atomic JSON write."""
  def write(tmp):
    with open(tmp, 'w') as f:
      json.dump(data, f, indent=1, default=float)
  atomic_write(path, write)


# --- Checkpoints: plain npz of the optimiser state's leaves (no pickle), keyed by a hash of the
# fields that define the problem, so a checkpoint is never resumed into a different run.

_RESUME_IRRELEVANT = ('num_steps', 'log_every', 'save_every', 'resume', 'output', 'profile_dir')


def problem_key(config) -> str:
  d = {k: v for k, v in config.to_dict().items() if k not in _RESUME_IRRELEVANT}
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_path(output: Path) -> Path:
  return output.with_name(output.stem + '.ckpt.npz')


def save_checkpoint(path: Path, state, step: int, history: dict, key: str) -> None:
  leaves = jax.tree.leaves(state)
  arrays = {f'leaf_{i:04d}': np.asarray(x) for i, x in enumerate(leaves)}
  meta = json.dumps({'version': CHECKPOINT_VERSION, 'step': step, 'key': key,
                     'history': history})
  atomic_write(path, lambda tmp: np.savez(tmp, __meta__=np.array(meta), **arrays), '.npz')


def load_checkpoint(path: Path, template_state, key: str):
  """Returns (state, step, history) restored into the structure of ``template_state``."""
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z['__meta__']))
      leaves = [z[f'leaf_{i:04d}'] for i in range(len(z.files) - 1)]
  except Exception as e:  # pylint: disable=broad-except
    raise NSTError(f'checkpoint {path} is unreadable ({e}); delete it to start over') from e
  if meta.get('key') != key:
    raise ConfigError(f'checkpoint {path} belongs to a different configuration; delete it or '
                      'run without --config.resume')
  treedef = jax.tree.structure(template_state)
  ref = jax.tree.leaves(template_state)
  if len(ref) != len(leaves) or any(a.shape != np.shape(b) for a, b in zip(leaves, ref)):
    raise ConfigError(f'checkpoint {path} does not match this optimiser state; delete it')
  state = jax.tree.unflatten(treedef, [jax.numpy.asarray(a, b.dtype) for a, b in zip(leaves, ref)])
  return state, int(meta['step']), meta['history']


def _progress(step: int, total: int, info: dict, t0: float, stream=sys.stderr) -> None:
  width = 24
  filled = int(width * step / max(total, 1))
  t = info['terms']
  rate = step / max(time.perf_counter() - t0, 1e-9)
  stream.write(f'[{"#" * filled}{"." * (width - filled)}] {step}/{total} '
               f'total {t["total"]:.4g} | content {t["content"]:.4g} | style {t["style"]:.4g} '
               f'| tv {t["tv"]:.4g} | evals {info["evals"]} | {rate:.2f} step/s\n')
  stream.flush()


def load_inputs(config) -> tuple[Optional[np.ndarray], list[np.ndarray], Optional[np.ndarray]]:
  """Reads content, style(s) and init image named by the config (at full resolution)."""
  cap = int(config.max_pixels)
  content = image_io.load_image(config.content, max_pixels=cap) if config.content else None
  styles = [None if p.lower() == 'none' else image_io.load_image(p, max_pixels=cap)
            for p in split_paths(config.style)]  # 'none': an unstyled region (with masks)
  init = (image_io.load_image(config.init_image, max_pixels=cap)
          if config.init == 'image' and config.init_image else None)
  return content, styles, init


def run(config: ml_collections.ConfigDict, params=None, quiet: bool = False) -> dict:
  """Runs one style-transfer job described by ``config``; returns the summary written as JSON."""
  t_start = time.perf_counter()
  engine.validate(config)
  compile_dir = compile_cache.enable(config.get('compile_cache', ''))  # issue 10: disk cache
  compile_stats = compile_cache.CompileStats.start()  # compilations and their seconds
  output = Path(config.output).expanduser()
  check_writable(output)
  if config.mode != 'texture_synthesis' and not config.content:
    raise ConfigError(f'mode={config.mode} needs a content image: pass --content=PATH')
  if config.mode != 'content_reconstruction' and not config.style:
    raise ConfigError(f'mode={config.mode} needs a style image: pass --style=PATH')
  content, styles, init = load_inputs(config)
  masks, style_masks = controls.config_masks(config, len(styles))
  if params is None:
    from nst_jax import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19(config.weights or None)
  t_loaded = time.perf_counter()
  if config.get('stages'):
    return _run_stages(config, params, content, styles, init, masks, style_masks, output, quiet,
                       t_start, t_loaded, compile_stats)
  mem = memory.check_config(config, content, styles, quiet)  # issue 10: refuse, don't OOM
  problem = engine.build_problem(config, params, content, styles, init, masks, style_masks)
  problem, params = spatial.from_config(problem, params, config)  # issue 10: split rows
  t_built = time.perf_counter()

  key = problem_key(config)
  ckpt = checkpoint_path(output)
  state, start, history = None, 0, None
  if config.resume and ckpt.exists():
    template = engine.init_state(problem.z0, params, problem.targets, problem.weights,
                                 problem.hyper, spec=problem.spec, mspec=problem.mspec)
    state, start, history = load_checkpoint(ckpt, template, key)
    if not quiet:
      print(f'resuming from {ckpt} at step {start}', file=sys.stderr)

  save_every = int(config.save_every)
  chunk = min(config.log_every, save_every) if save_every else int(config.log_every)
  stem = output.with_suffix('')
  last_saved = [start // save_every if save_every else 0]
  t0 = time.perf_counter()

  def on_chunk(step, st, info):
    if not quiet:
      _progress(step, config.num_steps, info, t0)
    if save_every and step // save_every > last_saved[0]:
      last_saved[0] = step // save_every
      z = engine.state_image(st, problem)
      image_io.save_image(f'{stem}_step{step:05d}{output.suffix}', engine.render(problem, z))
      save_checkpoint(ckpt, st, step, info['history'], key)

  summary = {'config': config.to_dict(), 'output': str(output),
             'shape': list(problem.shape), 'devices': [str(d) for d in jax.devices()],
             'compile_cache': str(compile_dir or 'off'), 'memory': mem}
  try:
    result = engine.optimize(problem, params, config.num_steps, chunk, on_chunk, state, start,
                             history, config.profile_dir)
  except NonFiniteLossError as e:
    image_io.save_image(output, e.image)
    summary.update(error=str(e), steps=e.step)
    write_json(output.with_suffix('.json'), summary)
    raise
  image_io.save_image(output, result.image)
  timings = dict(result.timings, load_s=t_loaded - t_start, build_s=t_built - t_loaded,
                 wall_s=time.perf_counter() - t_start, **compile_stats.stats())
  mem['peak_rss_mb'] = round(profiling.peak_rss_mb())
  summary.update(steps=result.steps, evals=result.evals, loss_history=result.losses,
                 terms_history=result.terms, final=result.terms[-1] if result.terms else None,
                 timings=timings)
  write_json(output.with_suffix('.json'), summary)
  if save_every:  # Keep a final checkpoint so the run can be extended with more num_steps.
    save_checkpoint(ckpt, result.state, result.steps,
                    {'losses': result.losses, 'evals': result.evals, 'terms': result.terms}, key)
  if not quiet:
    print(f'wrote {output} ({problem.shape[0]}x{problem.shape[1]}, {result.steps} steps, '
          f'{result.evals} evaluations, {timings["wall_s"]:.1f} s)', file=sys.stderr)
  return summary


def _run_stages(config, params, content, styles, init, masks, style_masks, output: Path,
                quiet: bool, t_start: float, t_loaded: float, compile_stats=None) -> dict:
  """Coarse-to-fine (``config.stages``): each stage starts from the previous result, upsampled.

  Writes the final PNG and one JSON with a summary per stage (no checkpoints).
  """
  if config.resume:
    raise ConfigError('resume is not supported with stages; run without --config.resume')
  summary = {'config': config.to_dict(), 'output': str(output),
             'devices': [str(d) for d in jax.devices()], 'stages': []}
  image, steps, evals = init, 0, 0
  for i, c in enumerate(engine.stage_configs(config)):
    memory.check_config(c, content, styles, quiet)  # issue 10: refuse, don't OOM
    problem = engine.build_problem(c, params, content, styles, image if i else init, masks,
                                   style_masks)
    t0 = time.perf_counter()
    on_chunk = None if quiet else (
        lambda step, st, info, n=c.num_steps, t0=t0: _progress(step, n, info, t0))
    if not quiet:
      print(f'stage {i + 1}: {problem.shape[0]}x{problem.shape[1]}, {c.num_steps} steps',
            file=sys.stderr)
    try:
      result = engine.optimize(problem, params, c.num_steps, int(c.log_every), on_chunk)
    except NonFiniteLossError as e:
      image_io.save_image(output, e.image)
      summary.update(error=f'stage {i + 1}: {e}', steps=steps + e.step)
      write_json(output.with_suffix('.json'), summary)
      raise
    image, steps, evals = result.image, steps + result.steps, evals + result.evals
    summary['stages'].append({
        'size': c.size, 'shape': list(problem.shape), 'steps': result.steps,
        'evals': result.evals, 'loss_history': result.losses, 'terms_history': result.terms,
        'final': result.terms[-1] if result.terms else None, 'timings': result.timings})
  image_io.save_image(output, image)
  last = summary['stages'][-1]
  timings = {'load_s': t_loaded - t_start, 'wall_s': time.perf_counter() - t_start,
             **(compile_stats.stats() if compile_stats else {})}
  summary.update(shape=last['shape'], steps=steps, evals=evals, final=last['final'],
                 timings=timings)
  write_json(output.with_suffix('.json'), summary)
  if not quiet:
    print(f'wrote {output} ({last["shape"][0]}x{last["shape"][1]}, {len(summary["stages"])} '
          f'stages, {steps} steps, {timings["wall_s"]:.1f} s)', file=sys.stderr)
  return summary
