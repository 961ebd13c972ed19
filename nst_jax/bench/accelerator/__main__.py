"""``python -m nst_jax.bench.accelerator``: every GPU/TPU target in one process, one JSON line each.

  python -m nst_jax.bench.accelerator                  # on a GPU/TPU machine, within 8 minutes
  python -m nst_jax.bench.accelerator --only=fast_1024,ghiasi_1024
  python -m nst_jax.bench.accelerator --smoke          # tiny sizes, random weights, any device

See :mod:`nst_jax.bench.accelerator` for the targets. Without a GPU/TPU the suite prints one
``error:`` line and exits 1; with ``--smoke`` it says so on stderr and runs on the CPU. A target
that fails prints its line with ``error`` (value and met null) and the suite goes on; the exit
status is then 1. A target that would overrun ``--budget_s`` is skipped the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from typing import Optional, Sequence

NO_ACCELERATOR = 'no GPU or TPU found (JAX backend: {backend})'


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='python -m nst_jax.bench.accelerator',
                              description=__doc__.splitlines()[0])
  p.add_argument('--smoke', action='store_true',
                 help='the same code paths at tiny sizes with random weights (CPU is fine)')
  p.add_argument('--only', default='', help='comma-separated targets (default: all)')
  p.add_argument('--budget_s', type=float, default=None,
                 help='skip targets that would end after this many seconds (480; smoke 170)')
  return p


def _error_line(name: str, device: str, smoke: bool, error: str, seconds: float) -> dict:
  from nst_jax.bench.accelerator import targets  # pylint: disable=g-import-not-at-top
  return {'target': name, 'value': None, 'unit': targets.UNITS.get(name),
          **targets.goal_fields(name, None), 'device': device, 'size': None, 'smoke': smoke,
          'seconds': round(seconds, 2), 'error': error}


def run_suite(smoke: bool, names: Sequence[str], budget_s: Optional[float] = None,
              out=None) -> int:
  """Runs ``names`` (targets of :data:`~nst_jax.bench.accelerator.targets.TARGETS`), printing one
  JSON line each to ``out`` (stdout); returns the exit status (1 if any target failed)."""
  import jax  # pylint: disable=g-import-not-at-top

  from nst_jax.bench.accelerator import inputs as inputs_lib  # pylint: disable=g-import-not-at-top
  from nst_jax.bench.accelerator import targets  # pylint: disable=g-import-not-at-top
  from nst_jax.io import log  # pylint: disable=g-import-not-at-top
  from nst_jax.runtime import compile_cache  # pylint: disable=g-import-not-at-top
  out = out or sys.stdout
  t_suite = time.perf_counter()
  plan = (inputs_lib.smoke_plan() if smoke else inputs_lib.real_plan())
  if budget_s is not None:
    plan = dataclasses.replace(plan, budget_s=float(budget_s))
  device = jax.devices()[0].device_kind
  compile_cache.enable()
  failed = 0
  with tempfile.TemporaryDirectory(prefix='nst_accelerator_') as workdir:
    inp = inputs_lib.Inputs(plan, workdir)
    for name in names:
      t = time.perf_counter()
      elapsed = t - t_suite
      if elapsed + plan.expected(name) > plan.budget_s:
        line = _error_line(name, device, smoke, f'skipped: {elapsed:.0f} s of the '
                           f'{plan.budget_s:.0f} s budget spent', 0.)
        failed += 1
      else:
        log.info(f'accelerator suite: {name} ({elapsed:.0f} s so far)')
        try:
          fields = targets.TARGETS[name](inp)
          line = {'target': name, **fields, 'device': device, 'smoke': smoke,
                  'seconds': round(time.perf_counter() - t, 2)}
          if smoke:  # goals are for the real sizes
            line['met'] = None
        except Exception as e:  # pylint: disable=broad-except  # reported, the suite goes on
          log.warning(traceback.format_exc().rstrip())
          msg = ' '.join(f'{type(e).__name__}: {e}'.split())[:400]
          line = _error_line(name, device, smoke, msg, time.perf_counter() - t)
          failed += 1
      out.write(json.dumps(line, default=str) + '\n')
      out.flush()
  log.info(f'accelerator suite: {len(names)} targets in {time.perf_counter() - t_suite:.1f} s'
           + (f', {failed} without a measurement' if failed else ''))
  return 1 if failed else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
  a = _parser().parse_args(argv)
  from nst_jax.bench.accelerator import targets  # pylint: disable=g-import-not-at-top
  names = [n.strip() for n in a.only.split(',') if n.strip()] or list(targets.TARGETS)
  unknown = [n for n in names if n not in targets.TARGETS]
  if unknown:
    sys.stderr.write(f'error: unknown target {unknown[0]!r}; choose from '
                     f'{", ".join(targets.TARGETS)}\n')
    return 1
  import jax  # pylint: disable=g-import-not-at-top
  backend = jax.default_backend()
  if backend == 'cpu':
    what = NO_ACCELERATOR.format(backend=backend)
    if not a.smoke:
      sys.stderr.write(f'error: {what}; this suite needs one (--smoke runs it at tiny sizes on '
                       'the CPU)\n')
      return 1
    sys.stderr.write(f'{what}: --smoke runs on the CPU\n')
  sys.stderr.flush()
  return run_suite(a.smoke, names, a.budget_s)


if __name__ == '__main__':
  sys.exit(main())
