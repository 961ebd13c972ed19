"""Side by side with pastiche (PyTorch): whole processes, peak memory and seconds per evaluation.

  python -m nst_jax.bench.compare --pastiche_python=/work/venv-D/bin/python \
      --cases=first,hundred,rss,eval

Runs nst_jax (``run.py`` with the gatys2015 preset) and pastiche (its command line, default
settings) back to back as child processes of this one, on the same content/style pair, and
prints one JSON line per measurement: wall time from the shell to the PNG (``wall_s``) and peak
resident memory (``peak_rss_mb``, the child's ``ru_maxrss``). Cases:

* ``first``: 1 step at ``--size`` (time to first image); ours with a cold compilation cache (a
  fresh directory) and then warm (the same directory again).
* ``hundred``: 100 steps at ``--size``, cold and warm.
* ``rss``: 3 steps at ``--rss_sizes`` (longest side), warm cache (the run's own compilation
  memory is in ``bench --memory``).
* ``eval``: seconds per objective evaluation at ``--eval_sizes``: ``python -m nst_jax.bench``
  against pastiche's own ``PasticheArtist.draw()`` timed in one process (best of 3 x N).

Run it through the machine's lock (``/work/bin/heavy``): timings on a shared CPU are
meaningless.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_PY = flags.DEFINE_string('pastiche_python', '/work/venv-D/bin/python',
                          'A Python with pastiche installed.')
_CONTENT = flags.DEFINE_string('content', '../shared/images/tubingen.jpg', 'Content image.')
_STYLE = flags.DEFINE_string('style', '../shared/images/starry_night.jpg', 'Style image.')
_SIZE = flags.DEFINE_integer('size', 256, 'Longest side for the first/hundred cases.')
_CASES = flags.DEFINE_list('cases', ['first', 'hundred', 'rss', 'eval'], 'What to measure.')
_RSS_SIZES = flags.DEFINE_list('rss_sizes', ['512', '1024'], 'Sizes of the rss case.')
_EVAL_SIZES = flags.DEFINE_list('eval_sizes', ['256', '512'], 'Sizes of the eval case.')
_REPEAT = flags.DEFINE_integer('repeat', 1, 'Repetitions of each whole-process measurement.')
_EXTRA = flags.DEFINE_list('ours_extra', [], 'Extra --config.X=Y flags for our run.py.')

_PASTICHE_EVAL = r'''
import sys, time, json, torch
from pastiche.pastiche import PasticheArtist
content, style, size, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
a = PasticheArtist(content, [style], device='cpu', size=size)
a.draw()
best = 1e9
for _ in range(3):
  t = time.perf_counter()
  for _ in range(n):
    a.draw()
  best = min(best, (time.perf_counter() - t) / n)
print(json.dumps({'seconds_per_eval': round(best, 4), 'HxW': 'x'.join(map(str, a.content_size))}))
'''


def child(cmd: list[str], env: dict | None = None) -> dict:
  """Runs ``cmd``; its wall time, peak RSS (MB) and the last line of its stdout."""
  t = time.perf_counter()
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
  out = p.stdout.read() if p.stdout else ''
  _, status, usage = os.wait4(p.pid, 0)
  wall = time.perf_counter() - t
  lines = [l for l in out.strip().splitlines() if l.strip()]
  rc = os.waitstatus_to_exitcode(status)
  if rc:
    print(out[-3000:], file=sys.stderr)
  return {'wall_s': round(wall, 2), 'peak_rss_mb': round(usage.ru_maxrss / 1024), 'rc': rc,
          'last': lines[-1][:400] if lines else ''}


def extra_flags(items) -> list[str]:
  """``--ours_extra`` items -> ``--config.FIELD=VALUE`` flags. The flag is split on commas, so an
  item without ``=`` continues the previous value (``stages=256:40,512:10`` is one field)."""
  fields: list[str] = []
  for item in items:
    if '=' in item or not fields:
      fields.append(item)
    else:
      fields[-1] += ',' + item
  return [f'--config.{f}' for f in fields]


def ours(size: int, steps: int, out: str, cache: str, extra=()) -> list[str]:
  del cache
  return [sys.executable, 'run.py', '--config=configs/gatys2015.py', f'--content={_CONTENT.value}',
          f'--style={_STYLE.value}', f'--output={out}', f'--config.size={size}',
          f'--config.num_steps={steps}', *extra_flags(extra)]


def pastiche(size: int, steps: int, out: str) -> list[str]:
  return [_PY.value, '-m', 'pastiche', '--content', _CONTENT.value, '--styles', _STYLE.value,
          '--output', out, '--size', str(size), '--num-steps', str(steps), '--no-verbose']


def emit(**kw) -> None:
  print(json.dumps(kw), flush=True)


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix='nst_compare_')
  cases = set(_CASES.value)
  for what, steps in (('first', 1), ('hundred', 100)):
    if what not in cases:
      continue
    for r in range(_REPEAT.value):
      cache = os.path.join(tmp, f'cache_{what}_{r}')
      env = dict(os.environ, NST_JAX_COMPILE_CACHE=cache)
      for state in ('cold', 'warm'):
        res = child(ours(_SIZE.value, steps, os.path.join(tmp, 'o.png'), cache, _EXTRA.value), env)
        emit(case=what, steps=steps, size=_SIZE.value, who='nst_jax', cache=state, **res)
      res = child(pastiche(_SIZE.value, steps, os.path.join(tmp, 'p.png')))
      emit(case=what, steps=steps, size=_SIZE.value, who='pastiche', **res)
  if 'rss' in cases:
    cache = os.path.join(tmp, 'cache_rss')
    env = dict(os.environ, NST_JAX_COMPILE_CACHE=cache)
    for size in map(int, _RSS_SIZES.value):
      for state in ('cold', 'warm'):
        res = child(ours(size, 3, os.path.join(tmp, 'o.png'), cache, _EXTRA.value), env)
        emit(case='rss', steps=3, size=size, who='nst_jax', cache=state, **res)
      res = child(pastiche(size, 3, os.path.join(tmp, 'p.png')))
      emit(case='rss', steps=3, size=size, who='pastiche', **res)
  if 'eval' in cases:
    for size in map(int, _EVAL_SIZES.value):
      n = 15 if size <= 256 else 8
      res = child([sys.executable, '-m', 'nst_jax.bench', f'--size={size}', f'--steps={n}',
                   f'--content={_CONTENT.value}', f'--style={_STYLE.value}'])
      emit(case='eval', size=size, who='nst_jax', **res)
      res = child([_PY.value, '-c', _PASTICHE_EVAL, _CONTENT.value, _STYLE.value, str(size),
                   str(n)])
      emit(case='eval', size=size, who='pastiche', **res)


if __name__ == '__main__':
  app.run(main)
