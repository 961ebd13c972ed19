"""A trained per-style network against 100 L-BFGS steps of the same objective.

  python -m nst_jax.bench.fast_quality --model=outputs/candy_cpu \
      --photos=../shared/images/tubingen.jpg,../shared/images/brad_pitt.jpg --size=256

For each photo (one the network never saw), the objective the network was trained with (layers,
weights, ``loss_norm``, style image and size, all read from ``model.json``) is evaluated on

* the network's output (one forward pass, timed warm), and
* the result of ``--steps`` L-BFGS steps (``lbfgs_torch``, from the photo) of the same objective,

and the style-loss ratio, content-loss ratio and time per image are reported (targets: style
within 1.5x, content within 1.2x, well over 100x less time). The last line printed is one JSON
object; ``--out_dir`` also writes the images side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.config import stylize as stylize_schema
from nst_jax.evaluation import metrics
from nst_jax.io import images as image_io
from nst_jax.losses import objective
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import weights
from nst_jax.optimize import loop
from nst_jax.optimize import problem as problem_lib


def objective_config(info: dict, size: int):
  """A ``stylize`` config with the objective the network was trained with."""
  t = info['trained_with']
  c = stylize_schema.base_config()
  for k in ('content_layers', 'style_layers', 'content_weight', 'style_weight', 'tv_weight',
            'content_layer_weights', 'style_layer_weights', 'loss_norm', 'tv_type', 'pooling'):
    c[k] = t[k]
  c.size, c.style_scale = size, float(t['style_size']) / size
  c.init, c.conv_impl, c.log_every = 'content', 'auto', 50
  c.optimizer.name = 'lbfgs_torch'
  return c


def style_path(info: dict, style_index: int) -> str:
  """The painting of style ``style_index``: a fine-tuned model lists its appended styles under
  ``new_styles`` (index -> path) and only those in ``style_paths``."""
  new = info.get('new_styles') or {}
  if str(style_index) in new:
    return new[str(style_index)]
  return info['style_paths'][style_index]


def evaluate(model_dir, photos, size: int = 256, steps: int = 100, style_index: int = 0,
             out_dir=None, vgg_params=None) -> dict:
  model_dir = Path(model_dir)
  model = model_io.load_model(model_dir)
  netcfg, params = model.config, jax.tree.map(jnp.asarray, model.params)
  vgg_params = vgg_params if vgg_params is not None else weights.load_vgg19()
  style = image_io.load_image(style_path(model.info, style_index))
  config = objective_config(model.info, size)
  sw = jnp.eye(netcfg.num_styles, dtype=jnp.float32)[style_index]
  apply = jax.jit(lambda p, x: networks.apply_params(netcfg, p, x, sw))
  rows = []
  for path in photos:
    photo = image_io.load_image(path)
    problem = problem_lib.build_problem(config, vgg_params, photo, [style])
    x = jnp.asarray(problem.content, jnp.float32)[None] / 255.
    jax.block_until_ready(apply(params, x))  # compile + warm-up
    times = []
    for _ in range(3):
      t0 = time.perf_counter()
      y = jax.block_until_ready(apply(params, x))
      times.append(time.perf_counter() - t0)
    net_image = image_io.to_uint8(np.asarray(y[0]) * 255.)
    args = (vgg_params, problem.targets, problem.weights)
    net_terms = {k: float(v) for k, v in loop.terms(
        objective.from_image(jnp.asarray(net_image, jnp.float32), problem.spec), *args,
        spec=problem.spec).items()}
    result = loop.optimize(problem, vgg_params, steps, 50)
    lbfgs_terms = {k: v for k, v in result.terms[-1].items() if k != 'step'}
    lbfgs_s = result.timings['run_s']
    # The harness's metrics of both images, against the photo and painting as the problem saw
    # them (the same numbers the benchmark job reports).
    harness = {name: metrics.image_metrics(vgg_params, im, problem.content, style)
               for name, im in (('network', net_image), ('lbfgs', result.image))}
    row = {'photo': str(path), 'shape': list(problem.shape),
           'network': net_terms, 'lbfgs': lbfgs_terms, 'harness': harness,
           'harness_style_ratio': harness['network']['style_gram'] / harness['lbfgs']['style_gram'],
           'harness_content_ratio': (harness['network']['content']
                                     / harness['lbfgs']['content']),
           'style_ratio': net_terms['style'] / lbfgs_terms['style'],
           'content_ratio': net_terms['content'] / lbfgs_terms['content'],
           'network_s': min(times), 'lbfgs_s': lbfgs_s, 'lbfgs_compile_s':
           result.timings['compile_s'], 'speedup': lbfgs_s / min(times)}
    rows.append(row)
    print(f'{Path(path).name}: style ratio {row["style_ratio"]:.3f}, content ratio '
          f'{row["content_ratio"]:.3f}, network {row["network_s"] * 1e3:.0f} ms vs L-BFGS '
          f'{lbfgs_s:.1f} s ({row["speedup"]:.0f}x)', file=sys.stderr)
    if out_dir:
      out = Path(out_dir)
      out.mkdir(parents=True, exist_ok=True)
      image_io.save_image(out / f'{Path(path).stem}_compare.png', np.concatenate(
          [problem.content, net_image, result.image], axis=1))
  mean = lambda k: float(np.mean([r[k] for r in rows]))
  return {'model': str(model_dir), 'size': size, 'lbfgs_steps': steps, 'photos': rows,
          'mean_style_ratio': mean('style_ratio'), 'mean_content_ratio': mean('content_ratio'),
          'mean_harness_style_ratio': mean('harness_style_ratio'),
          'mean_harness_content_ratio': mean('harness_content_ratio'),
          'mean_network_s': mean('network_s'), 'mean_lbfgs_s': mean('lbfgs_s'),
          'mean_speedup': mean('speedup'), 'device': str(jax.devices()[0])}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--model', required=True)
  p.add_argument('--photos', default='../shared/images/tubingen.jpg,../shared/images/brad_pitt.jpg')
  p.add_argument('--size', type=int, default=256)
  p.add_argument('--steps', type=int, default=100)
  p.add_argument('--style_index', type=int, default=0)
  p.add_argument('--out_dir', default='')
  a = p.parse_args(argv)
  result = evaluate(a.model, [s for s in a.photos.split(',') if s], a.size, a.steps,
                    a.style_index, a.out_dir or None)
  print(json.dumps(result))


if __name__ == '__main__':
  main()
