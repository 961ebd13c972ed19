"""The benchmark of one objective evaluation (``python -m nst_jax.bench``; other benchmarks:
:mod:`nst_jax.bench.__main__`).

  python -m nst_jax.bench --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --size=256 --steps=15

One evaluation is what every optimiser step costs: the VGG19 forward pass to the deepest
requested layer plus the gradient of the full objective (content + Gram style + TV) w.r.t. the
image. ``--steps`` evaluations run inside one jitted ``lax.scan`` (as in real runs: no host
round-trip per step); the best of ``--repeats`` timings is reported. The last line printed is one
JSON object with ``HxW``, ``seconds_per_eval``, ``compile_s``, ``peak_rss_mb``, ``gflop_per_eval``
(XLA's cost analysis of one evaluation) and ``gflop_per_s``.
"""

from __future__ import annotations

import json
import sys
import time

from absl import app, flags
import jax
from jax import lax
import numpy as np

from nst_jax.config import stylize as stylize_schema
from nst_jax.io import images as image_io
from nst_jax.losses import objective
from nst_jax.models import weights
from nst_jax.optimize import problem as problem_lib
from nst_jax.runtime import profiling

_CONTENT = flags.DEFINE_string('content', '../shared/images/tubingen.jpg', 'Content image.')
_STYLE = flags.DEFINE_string('style', '../shared/images/starry_night.jpg', 'Style image.')
_SIZE = flags.DEFINE_integer('size', 256, 'Longest side of the image (px).')
_STEPS = flags.DEFINE_integer('steps', 15, 'Evaluations per timed scan.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed repetitions; the best is reported.')
_CONV = flags.DEFINE_string('conv_impl', 'auto', 'auto | direct | winograd2 | winograd4')
_DTYPE = flags.DEFINE_string('conv_dtype', 'auto',
                            'auto (what a long run of the default preset resolves to here) | '
                            'float32 | bfloat16 (convolution operands)')
_POOLING = flags.DEFINE_string('pooling', 'max', 'max | avg')
_CONTENT_LAYERS = flags.DEFINE_string('content_layers', 'conv4_2', 'Content layers.')
_STYLE_LAYERS = flags.DEFINE_string('style_layers', 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1',
                                    'Style layers.')
_WEIGHTS = flags.DEFINE_string('weights', None, 'VGG19 weights (.h5/.npz).')
_NETWORK = flags.DEFINE_string('network', None, 'Feed-forward network to time instead: '
                               'multistyle26 | model (nst_jax/bench/fast.py), ghiasi | adain '
                               '(nst_jax/bench/arbitrary.py); --train: multistyle26|johnson.')
_MODEL = flags.DEFINE_string('model', None, 'Trained model directory (--network=model|adain).')
_BATCH = flags.DEFINE_integer('batch', 1, 'Images per forward pass (--network).')
_IMPL = flags.DEFINE_string('impl', 'fast', 'fast | direct convolutions (--network); '
                            'fast_xla: the fast path without the native CPU convolution; '
                            'fast_no_winograd: nor Winograd (XLA\'s 3x3 convs).')
_LAYERS = flags.DEFINE_boolean('layers', False, 'Per-layer times of --network=multistyle26|model '
                               'on the native convolution (nst_jax/bench/fast.py).')
_TRAIN = flags.DEFINE_boolean('train', False, 'Training steps/s of --network at --size, batch 4 '
                              '(nst_jax/bench/train.py).')
_MEMORY = flags.DEFINE_bool('memory', False, 'A real run: seconds per evaluation, peak memory and '
                            'the estimate printed before it (nst_jax/bench/memory.py).')


def bench_eval(content, style, size, steps, repeats=3, conv_impl='direct', pooling='max',
               content_layers='conv4_2', style_layers='conv1_1,conv2_1,conv3_1,conv4_1,conv5_1',
               params=None, conv_dtype='float32', overrides=None) -> dict:
  """Times one objective evaluation (forward + gradient to the image) at ``size`` px;
  ``overrides``: further config fields (e.g. ``{'style_loss': 'histogram'}``)."""
  params = params if params is not None else weights.load_vgg19()
  c = stylize_schema.base_config()
  c.size, c.conv_impl, c.pooling, c.tv_weight = size, conv_impl, pooling, 1e-3
  c.conv_dtype = conv_dtype
  c.content_layers, c.style_layers = content_layers, style_layers
  for k, v in (overrides or {}).items():
    c[k] = v
  problem = problem_lib.build_problem(c, params, content, [style])
  args = (params, problem.targets, problem.weights)
  spec = problem.spec

  def one_eval(z, params, targets, weights_):
    return jax.value_and_grad(objective.objective)(z, params, targets, weights_, spec)

  def scan_evals(z, params, targets, weights_):
    def body(z, _):
      loss, g = one_eval(z, params, targets, weights_)
      return z - 1e-12 * g, loss  # a data dependency between steps, as in optimisation
    return lax.scan(body, z, None, length=steps)

  t0 = time.perf_counter()
  compiled = jax.jit(scan_evals).lower(problem.z0, *args).compile()
  compile_s = time.perf_counter() - t0
  flops = profiling.xla_flops(jax.jit(one_eval).lower(problem.z0, *args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(problem.z0, *args))
    times.append((time.perf_counter() - t) / steps)
  best = min(times)
  h, w = problem.shape
  return {'HxW': f'{h}x{w}', 'seconds_per_eval': round(best, 4),
          'median_seconds_per_eval': round(float(np.median(times)), 4),
          'compile_s': round(compile_s, 2), 'peak_rss_mb': round(profiling.peak_rss_mb(), 1),
          'gflop_per_eval': round(flops / 1e9, 2),
          'gflop_per_s': round(flops / 1e9 / best, 1),
          'conv_impl': conv_impl, 'conv_dtype': spec.conv_dtype, 'pooling': pooling, 'steps': steps,
          'device': str(jax.devices()[0]), 'backend': jax.default_backend()}


def main(argv):
  del argv
  if _NETWORK.value in ('multistyle26', 'model') and _LAYERS.value:
    from nst_jax.bench import fast as bench_fast  # pylint: disable=g-import-not-at-top
    print(json.dumps(bench_fast.layer_times(_NETWORK.value, _SIZE.value, max(_REPEATS.value, 5),
                                            _MODEL.value)))
    return
  if _NETWORK.value in ('multistyle26', 'model') and not _TRAIN.value:
    from nst_jax.bench import fast as bench_fast  # pylint: disable=g-import-not-at-top
    print(json.dumps(bench_fast.bench_network(
        _NETWORK.value, _SIZE.value, _BATCH.value, max(_REPEATS.value, 5), _IMPL.value,
        _CONTENT.value, _MODEL.value)))
    return
  if _NETWORK.value in ('ghiasi', 'adain'):
    from nst_jax.bench import arbitrary as bench_arbitrary  # pylint: disable=g-import-not-at-top
    if _NETWORK.value == 'ghiasi':
      result = bench_arbitrary.bench_ghiasi(_SIZE.value, max(_REPEATS.value, 10), _CONTENT.value,
                                            _STYLE.value, _WEIGHTS.value, impl=_IMPL.value)
    else:
      result = bench_arbitrary.bench_adain(_SIZE.value, _REPEATS.value, _MODEL.value,
                                           _CONTENT.value, _STYLE.value)
    print(json.dumps(result))
    return
  content = image_io.load_image(_CONTENT.value)
  style = image_io.load_image(_STYLE.value)
  params = weights.load_vgg19(_WEIGHTS.value)
  if _TRAIN.value:
    from nst_jax.bench import train as bench_train  # pylint: disable=g-import-not-at-top
    result = bench_train.bench_train(_NETWORK.value or 'multistyle26', _SIZE.value, 4,
                                     vgg_params=params)
  elif _MEMORY.value:
    from nst_jax.bench import memory as bench_memory  # pylint: disable=g-import-not-at-top
    result = bench_memory.bench_memory(content, style, _SIZE.value, _STEPS.value, _CONV.value,
                                       params)
  else:
    result = bench_eval(content, style, _SIZE.value, _STEPS.value, _REPEATS.value, _CONV.value,
                        _POOLING.value, _CONTENT_LAYERS.value, _STYLE_LAYERS.value, params,
                        _DTYPE.value)
  print(json.dumps(result))
  sys.stdout.flush()


if __name__ == '__main__':
  app.run(main)
