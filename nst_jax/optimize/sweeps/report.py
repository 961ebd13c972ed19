"""The report of a sweep: labels, the contact sheet (PIL), ``results.csv`` and ``results.json``.

:class:`Outcome` / :class:`SweepResult` are what :func:`nst_jax.optimize.sweeps.run.execute` returns
and what the report is drawn from.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
import re
from typing import Any, Mapping, Optional, Sequence

import jax
import ml_collections
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.models import vgg
from nst_jax.optimize.sweeps.grid import SweepAxis

# Short names for contact-sheet labels.
SHORT_NAMES = {
    'content_weight': 'content', 'style_weight': 'style', 'tv_weight': 'tv',
    'optimizer.name': 'opt', 'optimizer.learning_rate': 'lr', 'optimizer.schedule': 'sched',
    'optimizer.decay_rate': 'decay', 'content_layers': 'c_layers', 'style_layers': 's_layers',
    'style_blend_weights': 'blend', 'init_noise_ratio': 'noise', 'content_layer_weights':
    'c_weights', 'style_layer_weights': 's_weights'}


@dataclasses.dataclass
class Outcome:
  """One configuration's result."""
  index: int
  values: dict                       # {axis: raw value}
  config: ml_collections.ConfigDict  # the resolved single-run config
  group: int
  chunk: int
  pixels: np.ndarray                 # (H, W, 3) float32 RGB 0..255
  terms: dict                        # final weighted loss terms
  losses: np.ndarray                 # objective at every step
  evals: int
  finite: bool
  bad_step: int
  timings: dict                      # the group's compile_s, its chunk's run_s, run_s_per_config


@dataclasses.dataclass
class SweepResult:
  """A sweep's outcomes (in grid order; after Ctrl-C only the configs that ran)."""
  axes: list[SweepAxis]
  mode: str
  outcomes: list[Outcome]
  groups: list[dict]                 # per group: indices, static fields, shape, timings, flops
  timings: dict
  total: int = 0                     # configs in the whole grid
  stopped: bool = False              # stopped early by a signal (Ctrl-C / SIGTERM)


def short_value(name: str, raw: str) -> str:
  """A compact label of one axis value (layer sets as ``conv1_1,2_1``; file paths as stems)."""
  leaf = name.rsplit('.', 1)[-1]
  if leaf in ('content_layers', 'style_layers'):
    layers = vgg.parse_layers(raw.replace('+', ','))
    return 'conv' + ','.join(f'{l[5]}_{l[-1]}' for l in layers) if layers else '-'
  if leaf in ('style', 'content', 'init_image'):
    return '+'.join(Path(p).stem for p in raw.split('+') if p)
  if leaf == 'schedule':
    return {'constant': 'const', 'exponential': 'exp'}.get(raw, raw)
  return raw


def label(name: str, raw: str) -> str:
  return f'{SHORT_NAMES.get(name, name.rsplit(".", 1)[-1])}={short_value(name, raw)}'


def grid(points: Sequence[Mapping[str, str]], axes: Sequence[str], rows: Sequence[str]
         ) -> tuple[list[tuple[int, int]], Optional[list[str]], Optional[list[str]]]:
  """Contact-sheet layout: (cells [(row, col)], row labels, column labels or None).

  Cells sharing the values of the ``rows`` axes form a row. When every row holds the same
  column keys (a product) they become labelled columns; otherwise each row is filled in order.
  Without row axes the cells fill a near-square grid.
  """
  if not rows:
    ncols = len(points) if len(points) <= 6 else math.ceil(math.sqrt(len(points)))
    return [(i // ncols, i % ncols) for i in range(len(points))], None, None
  cols = [a for a in axes if a not in rows]
  rkeys = [tuple(p[a] for a in rows) for p in points]
  ckeys = [tuple(p[a] for a in cols) for p in points]
  row_order = list(dict.fromkeys(rkeys))
  per_row = {r: [c for rk, c in zip(rkeys, ckeys) if rk == r] for r in row_order}
  col_order = list(dict.fromkeys(ckeys))
  regular = all(v == col_order for v in per_row.values()) and cols
  cells, seen = [], {r: 0 for r in row_order}
  for rk, ck in zip(rkeys, ckeys):
    col = col_order.index(ck) if regular else seen[rk]
    seen[rk] += 1
    cells.append((row_order.index(rk), col))
  row_labels = [' '.join(label(a, v) for a, v in zip(rows, r)) for r in row_order]
  col_labels = [' '.join(label(a, v) for a, v in zip(cols, c)) for c in col_order] if (
      regular) else None
  return cells, row_labels, col_labels


def _font() -> Any:
  return ImageFont.load_default()


def _wrap(text: str, font: Any, width: int) -> list[str]:
  """Greedy wrap at spaces, ',' and '+'; over-long words are cut anywhere."""
  measure = lambda s: font.getlength(s)
  lines = []
  for para in text.split('\n'):
    line = ''
    for piece in re.findall(r'[^ ,+]*[ ,+]?', para):
      if not piece:
        continue
      if measure(line + piece.rstrip()) <= width or not line:
        line += piece
      else:
        lines.append(line.rstrip())
        line = piece
      while measure(line.rstrip()) > width and len(line) > 1:
        cut = max(1, max(i for i in range(1, len(line) + 1) if measure(line[:i]) <= width)
                  if measure(line[:1]) <= width else 1)
        lines.append(line[:cut])
        line = line[cut:]
    lines.append(line.rstrip())
  return [l for l in lines if l] or ['']


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str],
                  cells: Sequence[tuple[int, int]], row_labels: Optional[Sequence[str]] = None,
                  col_labels: Optional[Sequence[str]] = None, title: str = '',
                  cell_size: int = 256, min_width: int = 120
                  ) -> tuple[Image.Image, list[tuple[int, int]]]:
  """Draws labelled thumbnails on a grid; returns (sheet, top-left corner of each thumbnail).

  Args:
    images: uint8 (H, W, 3) images, one per cell.
    labels: one text per cell, drawn under its thumbnail (wrapped to the cell width).
    cells: (row, column) of each image.
    row_labels / col_labels: header texts (left column / top row), or None.
    title: a line above everything.
    cell_size: longest side of a thumbnail (images are never upscaled).
    min_width: narrowest cell (room for labels of small images).
  """
  font, pad = _font(), 6
  line_h = font.getbbox('Ag')[3] + 3
  thumbs = []
  for im in images:
    pil = Image.fromarray(np.asarray(im, np.uint8))
    s = min(1., cell_size / max(pil.size))
    if s < 1.:
      pil = pil.resize((max(1, round(pil.width * s)), max(1, round(pil.height * s))),
                       Image.Resampling.LANCZOS)
    thumbs.append(pil)
  cw = max(min_width, *(t.width for t in thumbs))
  ih = max(t.height for t in thumbs)
  wrapped = [_wrap(t, font, cw) for t in labels]
  lh = max(len(w) for w in wrapped) * line_h
  nrows, ncols = max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1
  row_w = max((font.getlength(l) for r in row_labels for l in _wrap(r, font, cw)), default=0
              ) + pad if row_labels else 0
  col_h = max(len(_wrap(c, font, cw)) for c in col_labels) * line_h + pad if col_labels else 0
  x0 = pad + math.ceil(row_w)
  width = x0 + ncols * (cw + pad)
  title_lines = _wrap(title, font, width - 2 * pad) if title else []
  title_h = len(title_lines) * line_h + pad if title else 0
  y0 = pad + title_h + col_h
  height = y0 + nrows * (ih + lh + pad)
  sheet = Image.new('RGB', (int(width), int(height)), 'white')
  draw = ImageDraw.Draw(sheet)
  for k, line in enumerate(title_lines):
    draw.text((pad, pad + k * line_h), line, fill='black', font=font)
  for c, text in enumerate(col_labels or []):
    for k, line in enumerate(_wrap(text, font, cw)):
      draw.text((x0 + c * (cw + pad), pad + title_h + k * line_h), line, fill='black', font=font)
  for r, text in enumerate(row_labels or []):
    for k, line in enumerate(_wrap(text, font, cw)):
      draw.text((pad, y0 + r * (ih + lh + pad) + k * line_h), line, fill='black', font=font)
  corners = []
  for thumb, lines, (r, c) in zip(thumbs, wrapped, cells):
    x, y = x0 + c * (cw + pad), y0 + r * (ih + lh + pad)
    sheet.paste(thumb, (x, y))
    for k, line in enumerate(lines):
      draw.text((x, y + ih + k * line_h), line, fill='black', font=font)
    corners.append((x, y))
  return sheet, corners


def cell_text(outcome: Outcome) -> str:
  vals = ' '.join(label(a, v) for a, v in outcome.values.items())
  loss = f'loss={outcome.terms["total"]:.4g}' if outcome.finite else (
      f'loss=NaN at step {outcome.bad_step}')
  return f'{vals}\n{loss}'


def default_rows(mode: str, axes: Sequence[str]) -> list[str]:
  return [axes[0]] if mode == 'product' and len(axes) > 1 else []


def sheet_of(result: SweepResult, rows: str = '', title: str = '', cell_size: int = 256
             ) -> tuple[Image.Image, list[tuple[int, int]]]:
  """The contact sheet of a sweep (rows: comma-separated axis names, '' = default)."""
  names = [a.name for a in result.axes]
  row_axes = [r.strip() for r in rows.split(',') if r.strip()] or default_rows(result.mode, names)
  unknown = [r for r in row_axes if r not in names]
  if unknown:
    raise ConfigError(f'sweep.rows names {unknown}, which are not sweep axes {names}')
  cells, rl, cl = grid([o.values for o in result.outcomes], names, row_axes)
  images = [image_io.to_uint8(o.pixels) for o in result.outcomes]
  return contact_sheet(images, [cell_text(o) for o in result.outcomes], cells, rl, cl, title,
                       cell_size)


def slug(index: int, values: Mapping[str, str]) -> str:
  text = '_'.join(label(a, v) for a, v in values.items())
  return f'{index:03d}_' + re.sub(r'[^A-Za-z0-9._=-]+', '-', text)[:80]


CSV_TERMS = ('content', 'style', 'tv', 'total')


def csv_rows(result: SweepResult, files: Sequence[str]) -> tuple[list[str], list[list]]:
  """Header and rows of ``results.csv`` (one row per config)."""
  names = [a.name for a in result.axes]
  extra = [t for t in (result.outcomes[0].terms if result.outcomes else {}) if t not in CSV_TERMS]
  header = (['index', 'group', 'chunk', *names, *(f'loss_{t}' for t in (*CSV_TERMS, *extra)),
             'loss_initial', 'steps', 'evals', 'finite', 'group_compile_s', 'chunk_run_s',
             'run_s_per_config', 'image'])
  rows = []
  for o, f in zip(result.outcomes, files):
    rows.append([o.index, o.group, o.chunk, *(o.values[n] for n in names),
                 *(f'{o.terms[t]:.7g}' for t in (*CSV_TERMS, *extra)),
                 f'{o.losses[0]:.7g}' if len(o.losses) else '', len(o.losses), o.evals,
                 int(o.finite), *(f'{o.timings[k]:.4f}' for k in (
                     'group_compile_s', 'chunk_run_s', 'run_s_per_config')), f])
  return header, rows


def finite_or_none(obj: Any) -> Any:
  """NaN/Inf -> None, so results.json stays strict JSON."""
  if isinstance(obj, dict):
    return {k: finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_or_none(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  return obj


def title_of(result: SweepResult, config: ml_collections.ConfigDict) -> str:
  """The contact sheet's title: content, styles, steps and the grid's shape."""
  c0 = result.outcomes[0].config
  return ' | '.join(x for x in (
      Path(c0.content).stem if c0.content else '',
      '+'.join(Path(p).stem for p in schema.split_list(c0.style)),
      f'{c0.num_steps} steps', f'{config.sweep.mode} of '
      + ' x '.join(SHORT_NAMES.get(a.name, a.name) for a in result.axes)) if x)


def summary_of(result: SweepResult, config: ml_collections.ConfigDict,
               files: Sequence[str]) -> dict:
  """The sweep's summary (written as ``results.json``)."""
  names = [a.name for a in result.axes]
  return {
      'axes': {a.name: list(a.values) for a in result.axes}, 'mode': config.sweep.mode,
      'sweep': config.sweep.to_dict(), 'base_config': config.to_dict(),
      'devices': [str(d) for d in jax.devices()], 'contact_sheet': 'contact_sheet.png',
      'groups': result.groups, 'timings': result.timings,
      'results': [{
          'index': o.index, 'values': o.values, 'label': ' '.join(
              label(n, o.values[n]) for n in names), 'group': o.group, 'chunk': o.chunk,
          'image': f, 'terms': o.terms, 'finite': o.finite, 'nonfinite_at_step':
          None if o.finite else o.bad_step, 'steps': len(o.losses), 'evals': o.evals,
          'loss_history': [float(v) for v in o.losses], 'timings': o.timings,
          'config': o.config.to_dict()} for o, f in zip(result.outcomes, files)]}


def write_report(result: SweepResult, config: ml_collections.ConfigDict, out: Path) -> dict:
  """Writes one PNG per config, ``contact_sheet.png``, ``results.csv`` and ``results.json``
  into ``out`` (atomically, each); returns the summary."""
  files = [f'{slug(o.index, o.values)}.png' for o in result.outcomes]
  sheet, _ = sheet_of(result, config.sweep.rows, title_of(result, config),
                      int(config.sweep.cell_size))
  summary = summary_of(result, config, files)
  if result.stopped:
    summary['interrupted'] = True
    summary['configs_total'] = result.total
  for o, f in zip(result.outcomes, files):
    image_io.save_image(out / f, image_io.to_uint8(o.pixels))
  image_io.save_image(out / 'contact_sheet.png', np.asarray(sheet))
  header, rows = csv_rows(result, files)
  def write_csv(tmp: str) -> None:
    with open(tmp, 'w', newline='') as fh:
      w = csv.writer(fh)
      w.writerow(header)
      w.writerows(rows)
  fileio.atomic_write(out / 'results.csv', write_csv)
  fileio.write_json(out / 'results.json', finite_or_none(summary))
  return summary
