"""The accelerator suite's targets: one function each, built on the existing benchmarks.

Every function takes the :class:`~nst_jax.bench.accelerator.inputs.Inputs` and returns the
target's fields: ``value``, ``unit``, ``goal`` (a comparison with a number, in ``unit``),
``met`` (whether ``value`` reaches the goal), ``size`` and target-specific extras. The suite adds
``target``, ``device``, ``seconds`` (the target's wall time, compilation included) and
``smoke``. Goals and their sources: docs/guide/accelerator.md.
"""

from __future__ import annotations

import gc
import operator
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

from nst_jax.bench import arbitrary as bench_arbitrary
from nst_jax.bench import fast as bench_fast
from nst_jax.bench import memory as bench_memory
from nst_jax.bench import sweep as bench_sweep
from nst_jax.bench import train as bench_train
from nst_jax.bench.accelerator.inputs import Inputs
from nst_jax.config import fast as fast_schema
from nst_jax.config import schema
from nst_jax.config import train as train_schema
from nst_jax.io import log
from nst_jax.jobs import fast as fast_job
from nst_jax.optimize import memory

GOALS: dict[str, tuple[str, float, str]] = {  # target: (comparison, number, source)
    'lbfgs_500': ('<', 3., 'ours (one H100); neural-style README: 22-45 s on a Pascal Titan X'),
    'max_image': ('>=', 0., 'ours: the size the memory estimate allows runs (goal: that size)'),
    'sweep_k8': ('>', 1., 'ours: the vmapped batch beats K sequential runs'),
    'sweep_k32': ('>', 1., 'ours: the vmapped batch beats K sequential runs'),
    'fast_1024': ('<', 5., 'ours: real-time stylization of 1024x1024 photos'),
    'ghiasi_1024': ('<', 5., 'ours: real-time stylization of 1024x1024 photos'),
    'video_1080p': ('>=', 30., 'faster than real time: the clip\'s frame rate (30 if unknown)'),
    'train_johnson2016': ('>=', 40_000 / (4 * 3600.),
                          'Johnson et al. 2016, Sec. 4.1: 40k steps in ~4 h on a GTX Titan X'),
}
NO_PIXEL_CAP = 10 ** 12  # the search is bounded by memory, not by the source-image guard
_OPS: dict[str, Callable[[float, float], bool]] = {
    '<': operator.lt, '>': operator.gt, '>=': operator.ge}


def goal_fields(target: str, value: Optional[float], number: Optional[float] = None) -> dict:
  """``goal`` (e.g. ``'< 3'``), ``goal_source`` and ``met`` (None without a value)."""
  op, default, source = GOALS[target]
  number = default if number is None else number
  met = None if value is None or not np.isfinite(value) else bool(_OPS[op](value, number))
  return {'goal': f'{op} {number:.4g}', 'goal_source': source, 'met': met}


def _hw(shape) -> str:
  return f'{int(shape[0])}x{int(shape[1])}'


def _jsonable(d: dict, drop: tuple[str, ...] = ()) -> dict:
  """The scalar and small fields of a benchmark's result (lists of per-repeat times dropped)."""
  out = {}
  for k, v in d.items():
    if k in drop or isinstance(v, (list, tuple)) and len(v) > 4:
      continue
    if isinstance(v, (np.floating, np.integer)):
      v = v.item()
    if isinstance(v, float):
      v = round(v, 6)
    out[k] = v
  return out


# --- Optimisation: the gatys2015 preset with L-BFGS -------------------------------------------

def lbfgs_500(inp: Inputs) -> dict:
  """500 L-BFGS evaluations of the gatys2015 objective at 512 px: a real run (memory check,
  targets, chunked ``lax.scan``) through :func:`nst_jax.bench.memory.bench_memory`."""
  p = inp.plan
  # The history the preset's 500 steps keep, also when --smoke runs fewer (its programs are then
  # the ones max_image runs at the same size).
  history_steps = max(int(_max_config(inp).num_steps), p.lbfgs_evals)
  r = bench_memory.bench_memory(inp.content(), inp.style(), p.lbfgs_size, p.lbfgs_evals,
                                'auto', inp.vgg(), overrides={'num_steps': history_steps})
  value = r['seconds_per_eval'] * p.lbfgs_evals
  return {'value': round(value, 4), 'unit': 's', **goal_fields('lbfgs_500', value),
          'size': r['HxW'], 'evals': p.lbfgs_evals, 'steps': r['steps'],
          'seconds_per_eval': r['seconds_per_eval'], 'compile_s': r['compile_s'],
          'history_size': r['history_size'], **inp.info('vgg', 'inputs')}


# --- The largest image one device holds ---------------------------------------------------------

def _max_config(inp: Inputs, limit_gb: float = 0.):
  c = schema.load_preset('gatys2015')  # its num_steps sets the L-BFGS history kept
  c.max_pixels = NO_PIXEL_CAP
  c.memory_limit_gb = limit_gb
  return c


def _fits(c, inp: Inputs, size: int) -> bool:
  c.size = size
  try:
    memory.check_config(c, inp.content(), [inp.style()], quiet=True)
    return True
  except memory.InsufficientMemoryError:
    return False


def largest_size(inp: Inputs, limit_gb: float = 0.) -> int:
  """The largest longest side (a multiple of ``plan.max_step``) the memory estimate lets the
  gatys2015 preset run at (0 if not even ``plan.max_lo``): bisection over
  :func:`nst_jax.optimize.memory.check_config`, against the device's free memory (or
  ``limit_gb``)."""
  p = inp.plan
  c = _max_config(inp, limit_gb)
  lo, hi = p.max_lo // p.max_step, p.max_hi // p.max_step
  if not _fits(c, inp, lo * p.max_step):
    return 0
  while lo < hi:  # invariant: lo fits
    mid = (lo + hi + 1) // 2
    if _fits(c, inp, mid * p.max_step):
      lo = mid
    else:
      hi = mid - 1
  return lo * p.max_step


def estimated_peak_mb(inp: Inputs, size: int) -> float:
  """The memory estimate's peak (MiB) of the gatys2015 preset at ``size`` px."""
  c = _max_config(inp)
  c.size, c.memory_check = size, False
  return memory.check_config(c, inp.content(), [inp.style()], quiet=True)['estimated_peak_mb']


def _smoke_limit_gb(inp: Inputs) -> float:
  """A pretend memory size with which the estimate allows ``plan.lbfgs_size`` px (and the next
  size not): ``max_image`` then runs the programs ``lbfgs_500`` compiled."""
  p = inp.plan
  mb = (estimated_peak_mb(inp, p.lbfgs_size) + estimated_peak_mb(inp, p.lbfgs_size + p.max_step))
  return mb / 2. / 1024. / memory.SAFETY


def _out_of_memory(e: Exception) -> bool:
  text = str(e).lower()
  return 'resource_exhausted' in text or 'out of memory' in text or isinstance(e, MemoryError)


def max_image(inp: Inputs) -> dict:
  """The estimate's largest gatys2015 image, confirmed by ``plan.max_steps`` real L-BFGS steps
  (the history the preset's 500 steps keep); on an out-of-memory error 10% smaller sizes are
  tried, up to ``plan.max_retries`` times."""
  p = inp.plan
  gc.collect()
  limit_gb = _smoke_limit_gb(inp) if p.smoke else 0.
  estimated = largest_size(inp, limit_gb)
  free = memory.available_bytes() if not limit_gb else int(limit_gb * memory.GB)
  out: dict[str, Any] = {'estimated_size': estimated,
                         'free_mb': None if free is None else round(free / memory.MB)}
  if not estimated:
    raise memory.InsufficientMemoryError(
        f'not even {p.max_lo} px fits by the memory estimate ({out["free_mb"]} MB free)')
  preset_steps = int(_max_config(inp).num_steps)
  size, tries, r = estimated, 0, None
  while r is None:
    tries += 1
    try:
      r = bench_memory.bench_memory(
          inp.content(), inp.style(), size, p.max_steps, 'auto', inp.vgg(),
          overrides={'num_steps': preset_steps, 'max_pixels': NO_PIXEL_CAP,
                     'memory_check': False})
    except Exception as e:  # pylint: disable=broad-except  # XLA's RESOURCE_EXHAUSTED
      if not _out_of_memory(e) or tries > p.max_retries:
        raise
      log.warning(f'max_image: {size} px ran out of memory; trying {int(size * 0.9)} px')
      size = int(size * 0.9) // p.max_step * p.max_step
      gc.collect()
  h, w = (int(v) for v in r['HxW'].split('x'))
  est = r['estimate'] or {}
  out.update({'value': size, 'unit': 'px', **goal_fields('max_image', size, estimated),
              'size': r['HxW'], 'megapixels': round(h * w / 1e6, 3), 'tries': tries,
              'seconds_per_eval': r['seconds_per_eval'], 'compile_s': r['compile_s'],
              'estimated_peak_mb': est.get('estimated_peak_mb'),
              'history_size': r['history_size'], **inp.info('vgg', 'inputs')})
  if 'device_peak_mb' in r:
    out['device_peak_mb'] = r['device_peak_mb']
  return out


# --- Sweeps: K configurations in one vmapped program against K sequential runs -----------------

def sweep(inp: Inputs, k: int, target: str) -> dict:
  p = inp.plan
  r = bench_sweep.run_sweep_bench(k, p.sweep_size, p.sweep_steps, inp.content(), inp.style(),
                                  inp.vgg(), 'adam', p.sweep_repeats)
  return {'value': round(r['speedup'], 3), 'unit': 'x', **goal_fields(target, r['speedup']),
          'size': _hw(r['shape']), 'k': k,
          **_jsonable(r, drop=('k', 'size', 'shape', 'devices', 'batch_s_all',
                               'sequential_s_all')),
          **inp.info('vgg', 'inputs')}


# --- One-pass networks at 1024x1024 ---------------------------------------------------------------

def fast_1024(inp: Inputs) -> dict:
  """The built-in 26-style network (the fast job's model) through
  :func:`nst_jax.bench.fast.bench_network` (warm, ``block_until_ready``, best of the repeats)."""
  p = inp.plan
  r = bench_fast.bench_network('model', p.net_size, 1, p.net_repeats, 'fast', inp.content_file(),
                               inp.fast_model(), style_index=7)
  ms = r['seconds_per_image'] * 1e3
  return {'value': round(ms, 3), 'unit': 'ms', **goal_fields('fast_1024', ms),
          'size': r['HxW'], 'median_ms': round(r['median_seconds_per_image'] * 1e3, 3),
          'images_per_s': r['images_per_s'], 'compile_s': r['compile_s'],
          'gflop_per_image': r['gflop_per_image'], 'network': 'multistyle26',
          'weights': inp.provenance.get('fast')}


def ghiasi_1024(inp: Inputs) -> dict:
  """Ghiasi et al. (the arbitrary job's network): style prediction at 256x256 plus the
  transform at 1024x1024, through :func:`nst_jax.bench.arbitrary.bench_ghiasi`."""
  p = inp.plan
  r = bench_arbitrary.bench_ghiasi(p.net_size, p.net_repeats, inp.content_file(),
                                   inp.style_file(), inp.ghiasi_weights(), inp.no_onnx_dir())
  ms = r['seconds_per_image'] * 1e3
  return {'value': round(ms, 3), 'unit': 'ms', **goal_fields('ghiasi_1024', ms),
          'size': r['HxW'], 'style_size': r['style_HxW'],
          'predict_ms': round(r['predict_s'] * 1e3, 3),
          'transform_ms': round(r['transform_s'] * 1e3, 3),
          'median_ms': round(r['median_seconds_per_image'] * 1e3, 3),
          'compile_s': r['compile_s'], 'weights': inp.provenance.get('ghiasi')}


# --- Video: the fast job on a clip at 1080p ---------------------------------------------------

def _device_fps(stylizer: fast_job.Stylizer, frames: np.ndarray, repeats: int) -> float:
  jax.block_until_ready(stylizer.dispatch(frames))
  best = min(_timed(lambda: jax.block_until_ready(stylizer.dispatch(frames)))
             for _ in range(max(repeats, 1)))
  return len(frames) / best


def _timed(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def video_1080p(inp: Inputs) -> dict:
  """The fast job (:func:`nst_jax.jobs.fast.run`) on a video at 1080p with one style: decode,
  stylize in batches, encode H.264. A short run compiles first; the timed run's frames/s is the
  value. ``device_frames_per_s``: the network alone on a batch of frames already on the host."""
  p = inp.plan
  path, source = inp.video()
  from nst_jax.io import video  # pylint: disable=g-import-not-at-top
  info = video.probe(path)
  stylizer = fast_job.Stylizer(inp.fast_model(), 7)
  c = fast_schema.fast_config()
  c.content, c.size, c.batch_size, c.quiet = path, p.video_size, p.video_batch, True
  c.style_index = '7'
  out_dir = inp.dir / 'video_out'
  c.output, c.max_frames = str(out_dir / 'warmup.mp4'), p.video_batch
  t = time.perf_counter()
  fast_job.run(c, stylizer=stylizer)
  warmup_s = time.perf_counter() - t
  c.output, c.max_frames = str(out_dir / 'timed.mp4'), p.video_frames
  summary = fast_job.run(c, stylizer=stylizer)
  fps = summary['frames_per_s']
  h, w = summary['shape']
  frames = np.stack([np.asarray(f) for f in video.read_frames(path, p.video_size,
                                                              p.video_batch)])
  clip_fps = float(info.fps) or 30.
  return {'value': round(fps, 2), 'unit': 'frames/s',
          **goal_fields('video_1080p', fps, clip_fps), 'size': f'{h}x{w}',
          'frames': summary['count'], 'clip_fps': clip_fps, 'clip': source,
          'clip_source_size': f'{info.height}x{info.width}', 'batch': p.video_batch,
          'stylize_s': round(summary['stylize_s'], 3), 'warmup_s': round(warmup_s, 2),
          'device_frames_per_s': round(_device_fps(stylizer, frames, 3), 2),
          'weights': inp.provenance.get('fast')}


# --- Training: Johnson et al.'s recipe ------------------------------------------------------

def _preset_overrides(name: str) -> tuple[dict, int]:
  """The fields of a training preset that differ from the schema's defaults (run-control fields
  left out), and its num_steps."""
  preset = schema.load_preset(name).to_dict()
  default = train_schema.train_config().to_dict()
  skip = {'num_steps', 'sample_every', 'save_every', 'chunk', 'style', 'output', 'job'}
  out = {}
  for k, v in preset.items():
    if k in skip:
      continue
    if isinstance(v, dict):
      out.update({f'{k}.{kk}': vv for kk, vv in v.items() if default[k].get(kk) != vv})
    elif default.get(k) != v:
      out[k] = v
  return out, int(preset['num_steps'])


def train_johnson2016(inp: Inputs) -> dict:
  """Training steps/s of configs/johnson2016.py (Johnson's network, 256 px crops, batch 4, the
  preset's loss) through :func:`nst_jax.bench.train.bench_train` (the training loop's jitted
  chunk of ``lax.scan`` steps), and the minutes the preset's 40k steps would take."""
  p = inp.plan
  overrides, num_steps = _preset_overrides('johnson2016')
  overrides.update(inp.train_overrides())
  r = bench_train.bench_train('johnson2016', p.train_size, p.train_batch, (p.train_chunk,),
                              p.train_repeats, vgg_params=inp.vgg(), overrides=overrides)
  sps = r['steps_per_s']
  return {'value': round(sps, 3), 'unit': 'steps/s', **goal_fields('train_johnson2016', sps),
          'size': f'{p.train_size}x{p.train_size}', 'batch': p.train_batch,
          'minutes_for_40k_steps': round(num_steps / sps / 60., 1), 'preset_steps': num_steps,
          'images_per_s': r['images_per_s'], 'chunk': r['best_chunk'],
          'compile_s': r['compile_s'], 'style_layers': r['style_layers'],
          **inp.info('vgg', 'train_data')}


TARGETS: dict[str, Callable[[Inputs], dict]] = {
    'lbfgs_500': lbfgs_500,
    'sweep_k8': lambda inp: sweep(inp, inp.plan.sweep_ks[0], 'sweep_k8'),
    'sweep_k32': lambda inp: sweep(inp, inp.plan.sweep_ks[1], 'sweep_k32'),
    'fast_1024': fast_1024,
    'ghiasi_1024': ghiasi_1024,
    'video_1080p': video_1080p,
    'train_johnson2016': train_johnson2016,
    'max_image': max_image,  # last: an out-of-memory attempt cannot disturb the others
}
UNITS = {'lbfgs_500': 's', 'max_image': 'px', 'sweep_k8': 'x', 'sweep_k32': 'x',
         'fast_1024': 'ms', 'ghiasi_1024': 'ms', 'video_1080p': 'frames/s',
         'train_johnson2016': 'steps/s'}
