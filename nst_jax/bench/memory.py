"""``python -m nst_jax.bench --memory``: a real run's speed and peak memory beside its estimate.

  python -m nst_jax.bench --size=2048 --steps=3 --memory

Runs ``--steps`` L-BFGS steps of the gatys2015 preset at ``--size`` (longest side) the way
``run.py`` does (memory check first, jitted targets, chunked optimisation) and prints, as its last
line, one JSON object: ``HxW``, ``seconds_per_eval`` (run time / evaluations, compilation
excluded), ``compile_s``, ``peak_rss_mb`` (and ``device_peak_mb`` on an accelerator), the
estimate printed before the run started (``estimate``: ``estimated_peak_mb`` and its parts) and
``estimate_error`` (estimate / measured - 1).
"""

from __future__ import annotations

import sys
import time
from typing import Optional

import jax
import numpy as np

from nst_jax.config import schema
from nst_jax.optimize import loop, memory
from nst_jax.optimize import problem as problem_lib
from nst_jax.runtime import compile_cache, profiling


def bench_memory(content: np.ndarray, style: np.ndarray, size: int, steps: int,
                 conv_impl: str = 'auto', params=None, overrides: Optional[dict] = None) -> dict:
  t_start = time.perf_counter()
  compile_cache.enable()
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19()
  c = schema.load_preset('gatys2015')
  c.size, c.num_steps, c.log_every, c.conv_impl = size, steps, steps, conv_impl
  c.update(overrides or {})
  with compile_cache.CompileStats() as stats:
    est = memory.check_config(c, content, [style])  # printed before anything big is built
    problem = problem_lib.build_problem(c, params, content, [style])
    t_built = time.perf_counter()
    result = loop.optimize(problem, params, steps, steps)
  peak = profiling.peak_rss_mb()
  h, w = problem.shape
  out = {'HxW': f'{h}x{w}', 'steps': steps, 'evals': result.evals,
         'seconds_per_eval': round(result.timings['run_s'] / max(result.evals - 1, 1), 4),
         'compile_s': round(result.timings['compile_s'], 2),
         'build_s': round(t_built - t_start, 2), 'wall_s': round(time.perf_counter() - t_start, 2),
         'peak_rss_mb': round(peak), 'estimate': est,
         'estimate_error': round(est['estimated_peak_mb'] / peak - 1, 3) if est else None,
         'conv_impl': conv_impl, 'history_size': problem.mspec.history_size,
         'device': str(jax.devices()[0]), 'backend': jax.default_backend(), **stats.stats()}
  dev = jax.devices()[0]
  if dev.platform != 'cpu':
    try:
      out['device_peak_mb'] = round(dev.memory_stats()['peak_bytes_in_use'] / 2 ** 20)
    except Exception:  # pylint: disable=broad-except
      pass
  sys.stderr.flush()
  return out
