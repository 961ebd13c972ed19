"""Sweep throughput: a batch of K configs in one vmapped program against K sequential runs.

  python -m nst_jax.bench --sweep=8 --size=128 --steps=10
  python -m nst_jax.bench --sweep=8 --host_devices=2   # CPU: one XLA device per core

Both sides run the same K configurations (Adam, style weights spread over two decades) for the
same steps, compiled beforehand; each side is timed ``--repeats`` times, interleaved, and the
best time counts (the machine may be shared). The report gives configs/s of each side, the
speedup, XLA's cost-analysis FLOPs per step (one step of one config, and of the whole batch)
and the achieved FLOP/s. ``--profile_dir`` writes a ``jax.profiler`` trace of the batched run.

On a CPU, XLA makes one device of all cores; ``--host_devices=N`` (or
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) exposes N host devices instead, and the
batch is then sharded over them like over several GPUs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Mapping, Optional, Union

import jax
import numpy as np

from nst_jax.config import stylize as stylize_schema
from nst_jax.optimize import loop, problem
from nst_jax.optimize.sweeps import batch as batch_lib
from nst_jax.optimize.sweeps import grid
from nst_jax.runtime import profiling

DEFAULT_CONTENT = '../shared/images/tubingen.jpg'
DEFAULT_STYLE = '../shared/images/starry_night.jpg'


def _path(images: batch_lib.ImageCache, image, default: str, name: str) -> str:
  """A path for the config: the given one, or an in-memory array served by ``images``."""
  if image is None:
    return default
  return images.put(name, np.asarray(image)) if isinstance(image, np.ndarray) else str(image)


def bench_config(k: int, size: int, steps: int, content: str, style: str,
                 optimizer: str = 'adam'):
  """The base config of the benchmark: ``k`` style weights, one program."""
  c = stylize_schema.base_config()
  c.content, c.style, c.size, c.num_steps, c.log_every = content, style, size, steps, steps
  c.init = 'content'
  c.optimizer.name = optimizer
  c.optimizer.learning_rate = 2.
  c.sweep.axes = 'style_weight=' + ','.join(f'{w:.4g}' for w in np.geomspace(1e2, 1e4, k))
  c.sweep.max_batch = k
  return c


def run_sweep_bench(k: int, size: int = 128, steps: int = 10,
                    content: Union[str, np.ndarray, None] = None,
                    style: Union[str, np.ndarray, None] = None,
                    params: Optional[Mapping] = None, optimizer: str = 'adam',
                    repeats: int = 3, shard: bool = True, profile_dir: str = '',
                    quiet: bool = True) -> dict:
  """Times a batch of ``k`` configs against ``k`` sequential runs; returns the measurements.

  Args:
    k: configs in the batch (and sequential runs).
    size: longest image side (px).
    steps: optimisation steps per config.
    content, style: image paths or uint8 RGB arrays (default: the shared tubingen and
      starry_night images).
    params: VGG19 params (default: :func:`nst_jax.models.weights.load_vgg19`).
    optimizer: the optimiser of every config.
    repeats: timed repetitions of each side (the best counts).
    shard: shard the batch over all devices.
    profile_dir: write a ``jax.profiler`` trace of the first timed batched run here.
    quiet: no progress lines.

  Returns:
    A dict with ``batch_configs_per_s``, ``sequential_configs_per_s``, ``speedup``, the
    seconds of each side (best of ``repeats``), compile times, ``flops_per_step_single``,
    ``flops_per_step_batch`` (XLA cost analysis) and achieved ``*_flops_per_s``.
  """
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19()
  log = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
  images = batch_lib.ImageCache()
  content = _path(images, content, DEFAULT_CONTENT, '<content>')
  style = _path(images, style, DEFAULT_STYLE, '<style>')
  c = bench_config(k, size, steps, content, style, optimizer)
  _, points = grid.expand(c)
  configs = [grid.materialize(c, p) for p in points]
  batch = batch_lib.build_batch(configs, params, images)
  problems = [problem.build_problem(ci, params, images(content), [images(style)])
              for ci in configs]

  tc = time.perf_counter()
  first = batch_lib.run_batch(batch, params, steps, steps, k, shard, cost_analysis=True)
  batch_compile = time.perf_counter() - tc
  tc = time.perf_counter()
  loop.optimize(problems[0], params, steps, steps)
  single_compile = time.perf_counter() - tc
  p0 = problems[0]
  state = loop.init_state(p0.z0, params, p0.targets, p0.weights, p0.hyper, spec=p0.spec,
                            mspec=p0.mspec)
  single_flops = profiling.xla_flops(loop.run_chunk.lower(
      state, params, p0.targets, p0.weights, spec=p0.spec, mspec=p0.mspec, length=1))

  batch_s, seq_s = [], []
  for r in range(repeats):
    t = time.perf_counter()
    batch_lib.run_batch(batch, params, steps, steps, k, shard,
                    profile_dir=profile_dir if r == 0 else '')
    batch_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    for p in problems:
      loop.optimize(p, params, steps, steps)
    seq_s.append(time.perf_counter() - t)
    log(f'repeat {r + 1}/{repeats}: batch {batch_s[-1]:.3f} s, sequential {seq_s[-1]:.3f} s')
  bs, ss = min(batch_s), min(seq_s)
  h, w = batch.shape
  return {
      'k': k, 'size': size, 'shape': [h, w], 'steps': steps, 'optimizer': optimizer,
      'devices': [str(d) for d in jax.devices()], 'n_devices': first.n_devices,
      'batch_s': bs, 'sequential_s': ss, 'batch_s_all': batch_s, 'sequential_s_all': seq_s,
      'batch_configs_per_s': k / bs, 'sequential_configs_per_s': k / ss, 'speedup': ss / bs,
      'batch_compile_s': batch_compile, 'single_compile_s': single_compile,
      'flops_per_step_single': single_flops, 'flops_per_step_batch': first.flops_per_step,
      'batch_flops_per_s': first.flops_per_step * steps / bs,
      'sequential_flops_per_s': single_flops * steps * k / ss,
  }


def format_report(r: dict) -> str:
  gf = lambda x: f'{x / 1e9:.2f} GFLOP'
  return '\n'.join([
      f'sweep benchmark: K={r["k"]} configs, {r["shape"][0]}x{r["shape"][1]} px, '
      f'{r["steps"]} {r["optimizer"]} steps, {r["n_devices"]} device(s): {r["devices"][0]}',
      f'  batched   : {r["batch_s"]:.3f} s  {r["batch_configs_per_s"]:.3f} configs/s  '
      f'({r["batch_flops_per_s"] / 1e9:.1f} GFLOP/s achieved, compile '
      f'{r["batch_compile_s"]:.1f} s)',
      f'  sequential: {r["sequential_s"]:.3f} s  {r["sequential_configs_per_s"]:.3f} configs/s  '
      f'({r["sequential_flops_per_s"] / 1e9:.1f} GFLOP/s achieved, compile '
      f'{r["single_compile_s"]:.1f} s)',
      f'  speedup   : {r["speedup"]:.2f}x',
      f'  XLA cost analysis: {gf(r["flops_per_step_single"])}/step for one config, '
      f'{gf(r["flops_per_step_batch"])}/step for the batch of {r["k"]}'])


def use_host_devices(n: int) -> None:
  """Exposes ``n`` XLA CPU devices (must run before JAX initialises its backends)."""
  flag = f'--xla_force_host_platform_device_count={n}'
  kept = [f for f in os.environ.get('XLA_FLAGS', '').split()
          if not f.startswith('--xla_force_host_platform_device_count')]
  os.environ['XLA_FLAGS'] = ' '.join(kept + [flag])


def main(argv=None) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import
  flags.DEFINE_integer('sweep', 4, 'K: configs in the batch (and sequential runs).')
  flags.DEFINE_integer('size', 128, 'Longest image side (px).')
  flags.DEFINE_integer('steps', 10, 'Optimisation steps per config.')
  flags.DEFINE_string('content', DEFAULT_CONTENT, 'Content image.')
  flags.DEFINE_string('style', DEFAULT_STYLE, 'Style image.')
  flags.DEFINE_string('optimizer', 'adam', 'Optimiser of every config.')
  flags.DEFINE_integer('repeats', 3, 'Timed repetitions of each side (best counts).')
  flags.DEFINE_string('weights', None, 'VGG19 weights (.h5/.npz).')
  flags.DEFINE_string('profile_dir', '', 'Write a jax.profiler trace of the batched run here.')
  flags.DEFINE_string('json', '', 'Also write the measurements to this JSON file.')
  flags.DEFINE_integer('host_devices', 0, 'CPU only: expose this many XLA host devices (0 = '
                       'XLA default, one device).')

  def run(argv):
    del argv
    f = flags.FLAGS
    if f.host_devices:
      use_host_devices(f.host_devices)
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    r = run_sweep_bench(f.sweep, f.size, f.steps, f.content, f.style,
                        weights.load_vgg19(f.weights), f.optimizer, f.repeats,
                        profile_dir=f.profile_dir, quiet=False)
    print(format_report(r))
    if f.json:
      with open(f.json, 'w') as fh:
        json.dump(r, fh, indent=1)

  app.run(run, argv)


if __name__ == '__main__':
  main()
