"""A refined Ghiasi embedding against the predicted one, on held-out photos.

  python -m nst_jax.bench.ghiasi_refine --style_file=outputs/starry_night.npz \
      --painting=../shared/images/starry_night.jpg --count=5 --size=256

Stylizes the first ``--count`` photos of ``--photos`` (default: the evaluation photos,
``../shared/datasets/bsds500_eval``, which the refinement never sees) with the painting's
predicted embedding (the ``arbitrary`` job as usual) and with the style file
(``configs/ghiasi_refine_cpu.py``'s output), and scores both with the evaluation harness
(:func:`nst_jax.evaluation.metrics.image_metrics`: Gram style distance, content distance at
conv4_2, ...) against the photo and the painting at ``--size``. Prints one JSON object: per photo
and mean metrics of both, and the refined / predicted ratios of the means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

import numpy as np

from nst_jax.evaluation import metrics
from nst_jax.io import images as image_io
from nst_jax.jobs import arbitrary
from nst_jax.models import ghiasi, ghiasi_style
from nst_jax.models import weights as weights_lib

EVAL_PHOTOS = '../shared/datasets/bsds500_eval'


def compare(style_file: str, painting: str, photos: str = EVAL_PHOTOS, count: int = 5,
            size: int = 256, ghiasi_weights: Optional[str] = None,
            vgg_weights: Optional[str] = None) -> dict:
  """Harness metrics of the predicted and the refined embedding on ``count`` photos."""
  t0 = time.perf_counter()
  gparams = ghiasi.load(ghiasi_weights)
  vgg = weights_lib.load_vgg19(vgg_weights)
  refined = ghiasi_style.load(style_file)
  art = arbitrary.load_style(painting)
  art_eval = image_io.resize_image(art, size=size)
  files = image_io.list_images(photos)[:count]
  methods = {'predicted': arbitrary.ArbitraryStylizer([art], params=gparams),
             'refined': arbitrary.ArbitraryStylizer([refined], params=gparams)}
  rows = []
  for f in files:
    photo = image_io.load_image(f, size=size)
    row: dict = {'photo': Path(f).name}
    for name, stylizer in methods.items():
      row[name] = metrics.image_metrics(vgg, stylizer(photo), photo, art_eval)
    rows.append(row)
  means = {name: {m: float(np.mean([r[name][m] for r in rows])) for m in metrics.METRICS}
           for name in methods}
  ratios = {m: means['refined'][m] / means['predicted'][m] for m in metrics.METRICS
            if means['predicted'][m]}
  return {'style_file': style_file, 'painting': painting, 'photos': photos, 'count': len(rows),
          'size': size, 'mean': means, 'refined_over_predicted': ratios,
          'style_gram_lower': means['refined']['style_gram'] < means['predicted']['style_gram'],
          'content_not_larger': means['refined']['content'] <= means['predicted']['content'],
          'per_photo': rows, 'file_info': dict(refined.info),
          'wall_s': round(time.perf_counter() - t0, 1)}


def main(argv: Optional[Sequence[str]] = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--style_file', required=True, help='the refined style file (.npz)')
  ap.add_argument('--painting', required=True, help='the painting it was refined from')
  ap.add_argument('--photos', default=EVAL_PHOTOS, help='held-out photos (a folder)')
  ap.add_argument('--count', type=int, default=5)
  ap.add_argument('--size', type=int, default=256)
  ap.add_argument('--ghiasi_weights', default=None)
  ap.add_argument('--weights', default=None, help='VGG19 weights for the harness')
  a = ap.parse_args(argv)
  print(json.dumps(compare(a.style_file, a.painting, a.photos, a.count, a.size,
                           a.ghiasi_weights, a.weights), indent=1))


if __name__ == '__main__':
  main(sys.argv[1:])
