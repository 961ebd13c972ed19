"""Benchmarks of the arbitrary-style networks (``python -m nst_jax.bench --network=ghiasi``).

  python -m nst_jax.bench --network=ghiasi --size=384
  python -m nst_jax.bench --network=adain --size=384 --model=MODEL_DIR

Ghiasi: one image = the style prediction at 256x256 plus the transform at ``size`` x ``size``
(batch 1, warm, best of ``repeats``); ``compile_s`` is the time to compile both programs. When
onnxruntime is installed, the shipped int8 graphs (``arbitrary_predict.onnx``,
``arbitrary_transform.onnx``) are timed in the same run, interleaved round by round with ours so
that load from other processes hits both alike (the transform graph has a fixed 384x384 input,
so its numbers exist only at ``--size=384``). AdaIN: VGG19 encoder + AdaIN + decoder through
:func:`nst_jax.models.adain.stylize`, the style statistics included.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.io import images as image_io
from nst_jax.models import ghiasi
from nst_jax.models import onnx_import as onnx_convert
from nst_jax.runtime import profiling


def _inputs(content: str, style: str, size: int) -> tuple[np.ndarray, np.ndarray]:
  c = image_io.load_image(content, shape=(size, size)).astype(np.float32)[None] / 255.
  s = image_io.load_image(style, shape=(ghiasi.STYLE_SIZE,) * 2).astype(np.float32)[None] / 255.
  return c, s


def _ort_sessions(onnx_dir: Path):
  """(predict, transform) onnxruntime sessions of the shipped graphs, or None if unavailable."""
  try:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  paths = [onnx_dir / ghiasi.PREDICT_ONNX, onnx_dir / ghiasi.TRANSFORM_ONNX]
  if not all(p.is_file() for p in paths):
    return None
  opts = ort.SessionOptions()
  return tuple(ort.InferenceSession(str(p), opts, providers=['CPUExecutionProvider'])
               for p in paths)


def _time(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def bench_ghiasi(size: int = 384, repeats: int = 10,
                 content: str = '../shared/images/tubingen.jpg',
                 style: str = '../shared/images/starry_night.jpg',
                 weights: Optional[str] = None, onnx_dir: Optional[str] = None,
                 impl: str = 'fast') -> dict:
  """Times the Ghiasi port (and onnxruntime on the shipped graphs) on one content/style pair."""
  params = ghiasi.load(weights)
  c_np, s_np = _inputs(content, style, size)
  c, s = jnp.asarray(c_np), jnp.asarray(s_np)
  t0 = time.perf_counter()
  predict = jax.jit(ghiasi.predict).lower(params, s).compile()
  emb = predict(params, s)
  tr = jax.jit(functools.partial(ghiasi.transform, impl=impl)).lower(
      params, c, emb).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(tr(params, c, emb))

  sessions = _ort_sessions(Path(onnx_dir) if onnx_dir else onnx_convert.default_onnx_dir())
  ort_ok = {'predict': sessions is not None, 'transform': sessions is not None and size == 384}
  feeds = {}
  if sessions is not None:
    emb_np = np.asarray(emb).reshape(1, 1, 1, ghiasi.EMBEDDING_DIM)
    feeds = {'predict': {sessions[0].get_inputs()[0].name: s_np},
             'transform': {sessions[1].get_inputs()[0].name: c_np,
                           sessions[1].get_inputs()[1].name: emb_np}}
    for k, sess in zip(('predict', 'transform'), sessions):  # warm up
      if ort_ok[k]:
        sess.run(None, feeds[k])

  times: dict[str, list[float]] = {k: [] for k in ('predict', 'transform', 'ort_predict',
                                                   'ort_transform')}
  for _ in range(repeats):  # interleaved rounds: shared-CPU load hits every candidate alike
    times['predict'].append(_time(lambda: jax.block_until_ready(predict(params, s))))
    times['transform'].append(_time(lambda: jax.block_until_ready(tr(params, c, emb))))
    if ort_ok['predict']:
      times['ort_predict'].append(_time(lambda: sessions[0].run(None, feeds['predict'])))
    if ort_ok['transform']:
      times['ort_transform'].append(_time(lambda: sessions[1].run(None, feeds['transform'])))
  best = {k: min(v) for k, v in times.items() if v}
  result = {'network': 'ghiasi', 'HxW': f'{size}x{size}', 'style_HxW': '256x256',
            'seconds_per_image': round(best['predict'] + best['transform'], 5),
            'predict_s': round(best['predict'], 5), 'transform_s': round(best['transform'], 5),
            'median_seconds_per_image': round(float(np.median(times['predict'])
                                                    + np.median(times['transform'])), 5),
            'compile_s': round(compile_s, 2), 'impl': impl,
            'repeats': repeats}
  if 'ort_predict' in best:
    result['onnxruntime_int8_predict_s'] = round(best['ort_predict'], 5)
    result['predict_speedup_vs_onnxruntime'] = round(best['ort_predict'] / best['predict'], 2)
  if 'ort_transform' in best:
    result['onnxruntime_int8_transform_s'] = round(best['ort_transform'], 5)
    result['transform_speedup_vs_onnxruntime'] = round(best['ort_transform'] / best['transform'],
                                                       2)
    result['onnxruntime_int8_seconds_per_image'] = round(best['ort_predict']
                                                         + best['ort_transform'], 5)
  elif sessions is None:
    result['onnxruntime'] = 'not installed (or the ONNX files are missing)'
  else:
    result['onnxruntime'] = 'transform graph has a fixed 384x384 input; compare at --size=384'
  result.update({'peak_rss_mb': round(profiling.peak_rss_mb(), 1),
                 'device': str(jax.devices()[0]), 'backend': jax.default_backend()})
  return result


def bench_adain(size: int = 384, repeats: int = 5, model: Optional[str] = None,
                content: str = '../shared/images/tubingen.jpg',
                style: str = '../shared/images/starry_night.jpg') -> dict:
  """Times AdaIN stylization (style statistics + encoder + decoder) through nst_jax.models.adain."""
  from nst_jax.jobs import arbitrary  # pylint: disable=g-import-not-at-top
  model = arbitrary.adain_model(model)  # default: the shipped decoder
  adain = importlib.import_module('nst_jax.models.adain')  # the AdaIN module, loaded lazily
  decoder, width = adain.load_decoder(model)
  c = image_io.load_image(content, shape=(size, size))
  s = image_io.load_image(style, shape=(ghiasi.STYLE_SIZE,) * 2)
  t0 = time.perf_counter()
  adain.stylize(decoder, c, s, width=width)
  compile_s = time.perf_counter() - t0
  times = [_time(lambda: adain.stylize(decoder, c, s, width=width)) for _ in range(repeats)]
  return {'network': 'adain', 'HxW': f'{size}x{size}', 'seconds_per_image': round(min(times), 5),
          'median_seconds_per_image': round(float(np.median(times)), 5),
          'compile_s': round(compile_s - min(times), 2), 'repeats': repeats,
          'peak_rss_mb': round(profiling.peak_rss_mb(), 1), 'device': str(jax.devices()[0]),
          'backend': jax.default_backend()}


# --- Quality: the evaluation harness's style and content distances, and a contact sheet -----


def distances(vgg_params, image: np.ndarray, photo: np.ndarray, painting: np.ndarray) -> dict:
  """The harness's style distance (:func:`nst_jax.evaluation.metrics.gram_distance`) and content
  distance (:func:`~nst_jax.evaluation.metrics.content_distance` at conv4_2). Images are uint8
  RGB; ``image`` and ``photo`` share a size."""
  from nst_jax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  from nst_jax.models import vgg  # pylint: disable=g-import-not-at-top
  layers = metrics.STYLE_LAYERS + (metrics.CONTENT_LAYER,)
  f_img = vgg.extract(vgg_params, image.astype(np.float32), layers)
  f_pho = vgg.extract(vgg_params, photo.astype(np.float32), (metrics.CONTENT_LAYER,))
  f_pai = vgg.extract(vgg_params, painting.astype(np.float32), metrics.STYLE_LAYERS)
  return {'style': float(metrics.gram_distance(f_img, f_pai)),
          'content': float(metrics.content_distance(f_img[metrics.CONTENT_LAYER],
                                                    f_pho[metrics.CONTENT_LAYER]))}


def quality(photos: list[str], paintings: list[str], size: int = 384,
            sheet: Optional[str] = None, weights: Optional[str] = None, method: str = 'ghiasi',
            model: Optional[str] = None, keep_outputs: bool = False) -> dict:
  """One method on every photo x painting pair at ``size`` px: distances (and a contact sheet;
  with ``keep_outputs`` the stylized images, rows = photos, under ``'outputs'``)."""
  from nst_jax.jobs import arbitrary  # pylint: disable=g-import-not-at-top
  from nst_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  params = ghiasi.load(weights) if method == 'ghiasi' else None
  vgg_params = weights_lib.load_vgg19()
  pics = [image_io.load_image(p, size=size) for p in photos]
  arts = [image_io.load_image(p, size=size) for p in paintings]
  rows, pairs = [], []
  for pi, photo in zip(photos, pics):
    row = [photo]
    for ai, art in zip(paintings, arts):
      out = arbitrary.stylize_arbitrary(photo, art, method, params=params, model=model)
      d = distances(vgg_params, out, photo, art)
      own = distances(vgg_params, photo, photo, art)['style']
      pairs.append({'photo': Path(pi).name, 'painting': Path(ai).name, **d,
                    'photo_style': own, 'style_ratio': d['style'] / own})
      row.append(out)
    rows.append(row)
  if sheet:
    _contact_sheet(rows, arts, sheet)
  ratios = [p['style_ratio'] for p in pairs]
  contents = [p['content'] for p in pairs]
  res = {'pairs': pairs, 'style_ratio_range': [round(min(ratios), 3), round(max(ratios), 3)],
         'style_ratio_mean': round(float(np.mean(ratios)), 3),
         'content_range': [round(min(contents), 3), round(max(contents), 3)],
         'content_mean': round(float(np.mean(contents)), 3), 'size': size, 'sheet': sheet,
         'method': method}
  if keep_outputs:
    res['outputs'] = [row[1:] for row in rows]
  return res


def parse_candidates(spec: str) -> list[tuple[str, Optional[str]]]:
  """``'ghiasi,adain,wct:DIR'`` -> [('ghiasi', None), ('adain', None), ('wct', 'DIR')]: methods of
  :data:`nst_jax.jobs.arbitrary.METHODS`, each with an optional decoder directory (adain/wct;
  none = the shipped decoder)."""
  from nst_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from nst_jax.jobs import arbitrary  # pylint: disable=g-import-not-at-top
  out = []
  for item in filter(None, (x.strip() for x in spec.split(','))):
    method, _, model = item.partition(':')
    if method not in arbitrary.METHODS:
      raise ConfigError(f'unknown method {method!r} in --candidates; valid: '
                        f'{", ".join(arbitrary.METHODS)}')
    if model and method == 'ghiasi':
      raise ConfigError('ghiasi takes no decoder directory (its graphs are the shared ONNX files)')
    out.append((method, model or None))
  if len(out) < 2:
    raise ConfigError(f'--candidates needs at least two entries (the first is the reference), '
                      f'got {spec!r}')
  return out


def _label(method: str, model: Optional[str]) -> str:
  return f'{method}:{Path(model).name}' if model else method


def _mean_luma(image: np.ndarray) -> float:
  """Mean Rec. 601 luma (0..255): the dark cast of an undertrained decoder shows here."""
  return float(np.mean(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)))


def compare(photos: list[str], paintings: list[str], size: int = 384,
            sheet: Optional[str] = None, weights: Optional[str] = None,
            model: Optional[str] = None, cell: int = 144,
            candidates: Optional[list[tuple[str, Optional[str]]]] = None) -> dict:
  """Several arbitrary-style methods on the same pairs (default: Ghiasi and AdaIN with ``model``).

  The first candidate is the reference: per pair every other one's style distance over the
  reference's, and whether its content distance is no larger. Also each output's mean luma
  minus the mean of the photo's and the painting's (a dark cast is negative on every pair). The
  labelled sheet holds stylized outputs only (rows: photos; columns: painting x candidate), so it
  can be shared.
  """
  candidates = candidates or [('ghiasi', None), ('adain', model)]
  labels = [_label(m, d) for m, d in candidates]
  res = {lab: quality(photos, paintings, size, None, weights, m, d, keep_outputs=True)
         for lab, (m, d) in zip(labels, candidates)}
  ref = labels[0]
  pics = [image_io.load_image(p, size=size) for p in photos]
  arts = [image_io.load_image(p, size=size) for p in paintings]
  lumas = {lab: [_mean_luma(o) - 0.5 * (_mean_luma(pics[i]) + _mean_luma(arts[j]))
                 for i, row in enumerate(res[lab]['outputs']) for j, o in enumerate(row)]
           for lab in labels}
  summary = {}
  for lab in labels:
    res[lab]['luma_offset_mean'] = round(float(np.mean(lumas[lab])), 2)
    if lab == ref:
      continue
    r = [a['style'] / g['style'] for g, a in zip(res[ref]['pairs'], res[lab]['pairs'])]
    summary[lab] = {'style_over_reference_mean': round(float(np.mean(r)), 3),
                    'style_over_reference_range': [round(min(r), 3), round(max(r), 3)],
                    'pairs_content_not_larger': sum(
                        a['content'] <= g['content']
                        for g, a in zip(res[ref]['pairs'], res[lab]['pairs'])),
                    'luma_offset_mean': res[lab]['luma_offset_mean']}
  if sheet:
    outs = [res[lab]['outputs'] for lab in labels]
    rows = [[o[i][j] for j in range(len(paintings)) for o in outs] for i in range(len(photos))]
    cols = [f'{Path(p).stem[:12]} {lab[:16]}' for p in paintings for lab in labels]
    _labelled_sheet(rows, [Path(p).stem for p in photos], cols, sheet, cell)
  for lab in labels:
    res[lab].pop('outputs')
  out: dict = {'reference': ref, 'candidates': res, 'against_reference': summary, 'sheet': sheet}
  if [m for m, _ in candidates] == ['ghiasi', 'adain']:  # the two-method form's keys
    a = summary[labels[1]]
    out.update({'style_adain_over_ghiasi_mean': a['style_over_reference_mean'],
                'style_adain_over_ghiasi_range': a['style_over_reference_range'],
                'pairs_adain_content_not_larger': a['pairs_content_not_larger']})
  return out


def _labelled_sheet(rows: list[list[np.ndarray]], row_names: list[str], col_names: list[str],
                    path: str, cell: int = 144) -> None:
  """A grid of stylized images, row and column names written in the margins (JPEG quality 75)."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  from nst_jax.io import files as fileio  # pylint: disable=g-import-not-at-top
  left, top = 70, 18
  canvas = Image.new('RGB', (left + cell * len(col_names), top + cell * len(rows)), 'white')
  draw = ImageDraw.Draw(canvas)
  for j, name in enumerate(col_names):
    draw.text((left + j * cell + 3, 3), name, fill='black')
  for i, (name, row) in enumerate(zip(row_names, rows)):
    draw.text((3, top + i * cell + cell // 2 - 6), name, fill='black')
    for j, im in enumerate(row):
      canvas.paste(Image.fromarray(image_io.resize_image(im, shape=(cell, cell))),
                   (left + j * cell, top + i * cell))
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fileio.atomic_write(Path(path), lambda tmp: canvas.save(tmp, 'JPEG', quality=75), '.jpg')


def _contact_sheet(rows: list[list[np.ndarray]], arts: list[np.ndarray], path: str,
                   cell: int = 192) -> None:
  """Rows: photos (first column the photo itself); header row: the paintings."""
  def fit(im):
    return image_io.resize_image(im, shape=(cell, cell))
  header = [np.full((cell, cell, 3), 255, np.uint8)] + [fit(a) for a in arts]
  grid = [header] + [[fit(im) for im in row] for row in rows]
  sheet = np.concatenate([np.concatenate(r, axis=1) for r in grid], axis=0)
  image_io.save_image(path, sheet)


if __name__ == '__main__':
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  ap = argparse.ArgumentParser(description='Ghiasi quality: style/content distances + sheet')
  ap.add_argument('--photos', required=True, help='comma-separated photo paths')
  ap.add_argument('--paintings', required=True, help='comma-separated painting paths')
  ap.add_argument('--size', type=int, default=384)
  ap.add_argument('--sheet', default='outputs/arbitrary_contact_sheet.jpg')
  ap.add_argument('--method', default='ghiasi', choices=('ghiasi', 'adain', 'both'),
                  help='both: the two methods on the same pairs, a labelled sheet of outputs')
  ap.add_argument('--model', default=None, help='AdaIN decoder directory (--method=adain)')
  ap.add_argument('--candidates', default=None,
                  help='METHOD[:DECODER_DIR],... compared on the same pairs, the first the '
                       'reference, e.g. ghiasi,adain,adain:runs/dec,wct:runs/dec (overrides '
                       '--method)')
  a = ap.parse_args()
  if a.method == 'both' or a.candidates:
    cands = (parse_candidates(a.candidates) if a.candidates
             else [('ghiasi', None), ('adain', a.model)])
    both = compare(a.photos.split(','), a.paintings.split(','), a.size, a.sheet,
                   candidates=cands)
    ref_pairs = both['candidates'][both['reference']]['pairs']
    for lab, c in both['candidates'].items():
      if lab == both['reference']:
        continue
      for g, p in zip(ref_pairs, c['pairs']):
        print(f"{lab:>20} {p['photo']:>12} x {p['painting']:<28} style/{both['reference']} "
              f"{p['style'] / g['style']:.2f}  content {p['content']:.3f} "
              f"(ref {g['content']:.3f})")
    for lab, c in both['candidates'].items():
      print(lab, json.dumps({k: v for k, v in c.items() if k != 'pairs'}))
    print(json.dumps({k: v for k, v in both.items() if k != 'candidates'}))
    raise SystemExit(0)
  res = quality(a.photos.split(','), a.paintings.split(','), a.size, a.sheet,
                method=a.method, model=a.model)
  for p in res['pairs']:
    print(f"{p['photo']:>12} x {p['painting']:<28} style {p['style']:.3f} "
          f"(photo {p['photo_style']:.3f}, ratio {p['style_ratio']:.2f}) "
          f"content {p['content']:.3f}")
  print(json.dumps({k: v for k, v in res.items() if k != 'pairs'}))
