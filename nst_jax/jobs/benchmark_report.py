"""The benchmark's files: per-process part files, their merge, the table, the bootstrap summary
and the contact sheet (:mod:`nst_jax.jobs.benchmark` runs the methods).

Every process writes the rows it finished to ``OUT/parts/results.<process_index>.json``
(atomically, after each pair): that file is both the resume checkpoint and the unit that
:func:`merge_parts` joins. From the merged rows, in the order of the current config's pairs and
methods, :func:`write_report` writes

* ``results.csv`` / ``results.json``: one row per (content, style, method): every metric
  (``metrics`` in the JSON rows; the CSV names the images ``content_image`` and ``style_image``,
  since ``content`` is also a metric), ``seconds`` (per image, compilation excluded),
  ``compile_s``, the image's shape and file; the (pair, method) cells without a result are
  listed as ``missing`` with the reason (the CSV's last column);
* ``summary.csv`` / ``summary.json``: per method, the mean and a bootstrap 95% interval of every
  metric and of ``seconds`` (the pairs resampled with replacement, a fixed seed);
* ``contact_sheet.png``: rows = pairs, columns = content, style, then one per method, each method
  cell captioned with a few metrics.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
import re
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from nst_jax.errors import ConfigError, NSTError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.optimize.sweeps import report as sheet_lib

PART_DIR = 'parts'
PART_VERSION = 1
SECONDS = 'seconds'
Key = tuple[str, str, str]  # (content, style, method)


def row_key(row: Mapping[str, Any]) -> Key:
  return (str(row['content']), str(row['style']), str(row['method']))


def slug(text: str) -> str:
  """A file-name-safe form of a name (letters, digits, '.', '-', '=')."""
  return re.sub(r'[^A-Za-z0-9.=-]+', '-', text).strip('-')[:80] or 'x'


def image_name(content: str, style: str, method: str) -> str:
  """The result's path inside the output directory."""
  return f'images/{slug(content)}__{slug(style)}__{slug(method)}.png'


# --- Part files and their merge ----------------------------------------------------------------

def part_path(out_dir: Path, process_index: int) -> Path:
  return Path(out_dir) / PART_DIR / f'results.{int(process_index)}.json'


def write_part(out_dir: Path, process_index: int, process_count: int, key: str,
               rows: Iterable[Mapping], failed: Iterable[Mapping], complete: bool,
               key_fields: Optional[Mapping] = None) -> Path:
  """Writes one process's rows (and failed cells) atomically; returns the file.

  ``key`` identifies the benchmark (the config fields that define a row's result,
  ``key_fields``, kept for the error that names what differs); ``complete``: the process has
  finished its share.
  """
  path = part_path(out_dir, process_index)
  path.parent.mkdir(parents=True, exist_ok=True)
  fileio.write_json(path, finite_or_none({
      'version': PART_VERSION, 'key': key, 'process_index': int(process_index),
      'process_count': int(process_count), 'complete': bool(complete),
      'key_fields': dict(key_fields or {}), 'rows': list(rows), 'failed': list(failed)}))
  return path


def read_part(path: Path) -> dict:
  """One part file (NSTError naming it if it is not one)."""
  try:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or 'key' not in data or not isinstance(data.get('rows'), list):
      raise ValueError('not a benchmark part file')
  except (OSError, ValueError) as e:
    raise NSTError(f'benchmark part {path} is unreadable ({e}); delete it to recompute its '
                   'rows') from e
  return data


def merge_parts(out_dir: Path) -> dict:
  """Joins every ``OUT/parts/results.*.json``: ``{'key', 'key_fields', 'rows', 'failed',
  'parts', 'complete'}`` (``complete``: every part says its process finished its share).

  Rows are unique per (content, style, method) (a later part's row replaces an earlier one's;
  a result replaces a failure), sorted by that key. ``key`` is None when there are no parts.
  Raises ConfigError if the parts belong to different benchmarks (different keys).
  """
  files = sorted(Path(out_dir).glob(f'{PART_DIR}/results.*.json'),
                 key=lambda p: (len(p.name), p.name))
  key: Optional[str] = None
  fields: dict = {}
  complete = bool(files)
  rows: dict[Key, dict] = {}
  failed: dict[Key, dict] = {}
  for f in files:
    part = read_part(f)
    if key is not None and part['key'] != key:
      raise ConfigError(f'{out_dir} mixes two benchmarks ({f.name} has key {part["key"]}, '
                        f'another part {key}); delete {out_dir}/{PART_DIR} or use another '
                        '--output_dir')
    key, fields = part['key'], fields or dict(part.get('key_fields') or {})
    complete = complete and bool(part.get('complete'))
    for r in part['rows']:
      rows[row_key(r)] = dict(r)
      failed.pop(row_key(r), None)
    for r in part.get('failed', []):
      if row_key(r) not in rows:
        failed[row_key(r)] = dict(r)
  return {'key': key, 'key_fields': fields, 'rows': [rows[k] for k in sorted(rows)],
          'failed': [failed[k] for k in sorted(failed)], 'parts': [f.name for f in files],
          'complete': complete}


# --- The table ---------------------------------------------------------------------------------

def table(merged: Mapping, pairs: Sequence[tuple[str, str]], methods: Sequence[str],
          unreadable: Mapping[tuple[str, str], str]) -> tuple[list[dict], list[dict]]:
  """(rows, missing) of the current benchmark, in pair-major, method-minor order.

  ``unreadable`` maps ``('content' | 'style', name)`` to the reason that image was skipped; a
  cell with neither a row nor a recorded failure is missing as 'not run yet' (an interrupted run,
  another process's share).
  """
  done = {row_key(r): r for r in merged['rows']}
  failed = {row_key(r): r for r in merged['failed']}
  rows, missing = [], []
  for content, style in pairs:
    for m in methods:
      k = (content, style, m)
      if k in done:
        rows.append(done[k])
        continue
      reason = unreadable.get(('content', content)) or unreadable.get(('style', style)) or (
          failed[k]['reason'] if k in failed else 'not run yet')
      missing.append({'content': content, 'style': style, 'method': m, 'reason': reason})
  return rows, missing


def csv_text(rows: Sequence[Mapping], missing: Sequence[Mapping], metrics: Sequence[str]) -> str:
  header = ['content_image', 'style_image', 'method', *metrics, SECONDS, 'compile_s', 'height',
            'width', 'image', 'missing']
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator='\n')
  w.writerow(header)
  for r in rows:
    w.writerow([r['content'], r['style'], r['method'],
                *(_num(r['metrics'].get(m)) for m in metrics),
                _num(r[SECONDS]), _num(r['compile_s']), r['height'], r['width'], r['image'], ''])
  for r in missing:
    w.writerow([r['content'], r['style'], r['method'], *([''] * len(metrics)), '', '', '', '', '',
                r['reason']])
  return buf.getvalue()


def _num(v: Any) -> str:
  return '' if v is None else f'{float(v):.7g}'


# --- The summary -------------------------------------------------------------------------------

def bootstrap(values: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(mean, low, high) per column of ``values`` (n pairs, k quantities): the percentile
  interval of the mean over ``resamples`` resamplings of the rows (pairs) with replacement.

  Every column uses the same resampled pairs; the seed fixes them. With one row the interval is
  that row; with none everything is NaN.
  """
  x = np.asarray(values, np.float64)
  if x.ndim == 1:
    x = x[:, None]
  n, k = x.shape
  if n == 0:
    nan = np.full(k, np.nan)
    return nan, nan.copy(), nan.copy()
  mean = x.mean(0)
  idx = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
  means = x[idx].mean(1)  # (resamples, k)
  alpha = (1. - level) / 2.
  lo, hi = np.quantile(means, [alpha, 1. - alpha], axis=0)
  return mean, lo, hi


def summarize(rows: Sequence[Mapping], methods: Sequence[str], metrics: Sequence[str],
              higher_is_better: Mapping[str, bool], total_pairs: int, resamples: int, seed: int
              ) -> dict:
  """The per-method summary (``summary.json``): n, and mean / 95% interval per quantity."""
  quantities = [*metrics, SECONDS]
  out: dict[str, Any] = {
      'bootstrap': {'resamples': int(resamples), 'seed': int(seed), 'level': 0.95,
                    'unit': 'pairs (with replacement)'},
      'pairs': int(total_pairs), 'methods': {}}
  for m in methods:
    mine = [r for r in rows if r['method'] == m]
    values = np.array([[_float(r[SECONDS] if q == SECONDS else r['metrics'].get(q))
                        for q in quantities] for r in mine],
                      np.float64).reshape(len(mine), len(quantities))
    mean, lo, hi = bootstrap(values, resamples, seed)
    out['methods'][m] = {'n': len(mine), 'missing': int(total_pairs) - len(mine), 'quantities': {
        q: {'mean': float(mean[i]), 'ci95': [float(lo[i]), float(hi[i])],
            'higher_is_better': higher_is_better.get(q, False) if q != SECONDS else False}
        for i, q in enumerate(quantities)}}
  return out


def summary_csv(summary: Mapping, metrics: Sequence[str]) -> str:
  quantities = [*metrics, SECONDS]
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator='\n')
  w.writerow(['method', 'n', 'missing', *(f'{q}_{s}' for q in quantities
                                          for s in ('mean', 'ci95_low', 'ci95_high'))])
  for m, s in summary['methods'].items():
    vals = []
    for q in quantities:
      d = s['quantities'][q]
      vals += [_num(d['mean']), _num(d['ci95'][0]), _num(d['ci95'][1])]
    w.writerow([m, s['n'], s['missing'], *vals])
  return buf.getvalue()


def _float(v: Any) -> float:
  return math.nan if v is None else float(v)


def finite_or_none(obj: Any) -> Any:
  """NaN/Inf -> None, so the JSON files stay strict JSON."""
  return sheet_lib.finite_or_none(obj)


# --- The contact sheet -------------------------------------------------------------------------

def _placeholder(side: int, shade: int = 235) -> np.ndarray:
  return np.full((side, side, 3), shade, np.uint8)


def _thumb(image: Optional[np.ndarray], side: int) -> np.ndarray:
  if image is None:
    return _placeholder(side)
  return image_io.resize_image(image, size=side) if max(image.shape[:2]) > side else image


def caption(row: Mapping, metrics: Sequence[str], sep: str = '\n') -> str:
  """A cell's caption: one ``metric value`` per line, then the seconds per image."""
  return sep.join([*(f'{m} {_short(row["metrics"].get(m))}' for m in metrics),
                   f'{float(row[SECONDS]):.3g} s'])


def _short(v: Any) -> str:
  return 'n/a' if v is None or not math.isfinite(float(v)) else f'{float(v):.3g}'


def contact_sheet(out_dir: Path, pairs: Sequence[tuple[str, str]], methods: Sequence[str],
                  rows: Sequence[Mapping], missing: Sequence[Mapping],
                  thumbs: Mapping[tuple[str, str], Optional[np.ndarray]],
                  metrics: Sequence[str], cell_size: int, title: str) -> np.ndarray:
  """The sheet as a uint8 array: rows = ``pairs``, columns = content, style, ``methods``.

  ``thumbs`` holds the content and style images by ``('content' | 'style', name)`` (None:
  unreadable); method cells are
  read back from their files, captioned with ``metrics`` and the seconds per image.
  """
  done = {row_key(r): r for r in rows}
  why = {row_key(r): r['reason'] for r in missing}
  images, labels, cells = [], [], []
  for i, (content, style) in enumerate(pairs):
    for j, (name, what) in enumerate(((content, 'content'), (style, 'style'))):
      im = thumbs.get((what, name))
      images.append(_thumb(im, cell_size))
      labels.append(name if im is not None else f'{name} (unreadable)')
      cells.append((i, j))
    for j, m in enumerate(methods):
      r = done.get((content, style, m))
      im = None
      if r is not None:
        try:
          im = image_io.load_image(Path(out_dir) / r['image'])
        except NSTError:
          im = None
      images.append(_thumb(im, cell_size))
      labels.append(caption(r, metrics) if r is not None else
                    f'missing: {why.get((content, style, m), "not run yet")}')
      cells.append((i, 2 + j))
  sheet, _ = sheet_lib.contact_sheet(images, labels, cells, None, ['content', 'style', *methods],
                                     title, cell_size)
  return np.asarray(sheet)


# --- Everything ---------------------------------------------------------------------------------

def write_report(out_dir: Path, *, config: Mapping, key: str, contents: Sequence[str],
                 styles: Sequence[str], methods: Sequence[str], metrics: Sequence[str],
                 higher_is_better: Mapping[str, bool],
                 unreadable: Mapping[tuple[str, str], str],
                 thumbs: Mapping[tuple[str, str], Optional[np.ndarray]],
                 sheet_metrics: Sequence[str],
                 sheet_pairs: int, cell_size: int, resamples: int, seed: int,
                 timings: Optional[Mapping] = None) -> dict:
  """Merges the parts and writes results.csv/json, summary.csv/json and contact_sheet.png
  (each atomically); returns the summary (``summary.json``'s content plus file names).
  ``timings`` (this invocation's load and run seconds) go into results.json as ``last_run``."""
  out = Path(out_dir)
  merged = merge_parts(out)
  pairs = [(c, s) for c in contents for s in styles]
  rows, missing = table(merged, pairs, methods, unreadable)
  summary = summarize(rows, methods, metrics, higher_is_better, len(pairs), resamples, seed)
  results = {'key': key, 'config': dict(config), 'contents': list(contents),
             'styles': list(styles), 'methods': list(methods), 'metrics': list(metrics),
             'higher_is_better': {m: bool(higher_is_better.get(m, False)) for m in metrics},
             'pairs': len(pairs), 'rows': rows, 'missing': missing,
             'unreadable': [{'what': w, 'name': n, 'reason': r}
                            for (w, n), r in unreadable.items()],
             'last_run': dict(timings or {})}
  fileio.write_json(out / 'results.json', finite_or_none(results))
  fileio.write_text(out / 'results.csv', csv_text(rows, missing, metrics))
  fileio.write_json(out / 'summary.json', finite_or_none(summary))
  fileio.write_text(out / 'summary.csv', summary_csv(summary, metrics))
  shown = pairs[:sheet_pairs] if sheet_pairs > 0 else pairs
  if shown:
    title = (f'{len(contents)} contents x {len(styles)} styles = {len(pairs)} pairs, '
             f'{len(rows)} of {len(pairs) * len(methods)} results'
             + (f' (first {len(shown)} pairs shown)' if len(shown) < len(pairs) else ''))
    sheet = contact_sheet(out, shown, methods, rows, missing, thumbs, sheet_metrics, cell_size,
                          title)
    image_io.save_image(out / 'contact_sheet.png', sheet)
  return dict(summary, rows=len(rows), missing=len(missing), files=[
      'results.csv', 'results.json', 'summary.csv', 'summary.json', 'contact_sheet.png'])
