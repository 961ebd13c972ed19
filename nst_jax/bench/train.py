"""Training-speed benchmark: steps/s of the real training step (network forward + VGG19 loss +
gradients + Adam) of :mod:`nst_jax.training.loop`, on random crops of the training photos.

  python -m nst_jax.bench --network=multistyle26 --train            # 256 px, batch 4
  python -m nst_jax.bench.train --network=johnson --size=128 --batch=4 --chunk=1,5

``--chunk`` lists the steps per jitted call to compare: 1 = one step per call (a host round trip
and a batch transfer per step), K > 1 = one ``lax.scan`` over K prefetched batches. Each is
compiled, warmed up once and timed over ``--repeats`` calls; the best is reported. The last line
printed is one JSON object (``steps_per_s``, ``images_per_s``, ``compile_s`` per chunk size).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.training import loop
from nst_jax.training.tasks import adain as adain_lib
from nst_jax.training.tasks import feedforward as train_style

NETWORK_ALIASES = {'multistyle26': 'slim', 'slim': 'slim', 'johnson': 'johnson',
                   'johnson2016': 'johnson', 'adain': 'adain'}


def bench_train(network: str = 'slim', size: int = 256, batch: int = 4,
                chunks: Sequence[int] = (1, 4), repeats: int = 2, styles: int = 1,
                vgg_params=None, overrides: Optional[dict] = None) -> dict:
  """Times training steps of ``network`` at ``size`` px crops and ``batch`` images per step."""
  if network not in NETWORK_ALIASES:
    raise SystemExit(f'error: unknown network {network!r}; choose one of '
                     f'{", ".join(NETWORK_ALIASES)}')
  c = train_schema.train_config()
  c.network = NETWORK_ALIASES[network]
  c.crop_size, c.batch_size = size, batch
  c.style = ','.join(['../shared/images/starry_night.jpg'] * styles)
  c.num_images, c.sample_every = 16, 0
  for k, v in (overrides or {}).items():
    *parents, leaf = k.split('.')
    node = c
    for part in parents:
      node = node[part]
    node[leaf] = v
  loop.validate(c)
  if vgg_params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    vgg_params = weights.load_vgg19()
  task = (adain_lib.adain_task(c, vgg_params) if c.network == 'adain'
          else train_style.style_task(c, vgg_params))
  tx = loop.make_optimizer(c)
  chunk_fn = loop.make_chunk_fn(task.loss, tx)
  consts = jax.tree.map(jnp.asarray, task.consts)
  results = {}
  for k in chunks:
    batches = {n: jnp.asarray(np.stack([s.batch(i) for i in range(k)]))
               for n, s in task.samplers.items()}
    carry = jax.tree.map(jnp.array, (task.params, tx.init(task.params)))  # copies: donated
    t0 = time.perf_counter()
    compiled = chunk_fn.lower(carry, batches, consts).compile()
    compile_s = time.perf_counter() - t0
    carry, terms = compiled(carry, batches, consts)  # warm-up
    jax.block_until_ready(terms)
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      carry, terms = compiled(carry, batches, consts)
      jax.block_until_ready(terms)
      times.append((time.perf_counter() - t) / k)
    best = min(times)
    print(f'chunk {k}: {best:.3f} s/step, compile {compile_s:.1f} s', file=sys.stderr)
    results[str(k)] = {'s_per_step': round(best, 4), 'steps_per_s': round(1. / best, 4),
                       'images_per_s': round(batch / best, 3), 'compile_s': round(compile_s, 2)}
  best_k = min(results, key=lambda k: results[k]['s_per_step'])
  return {'network': network, 'train': True, 'size': size, 'batch': batch,
          'steps_per_s': results[best_k]['steps_per_s'],
          'images_per_s': results[best_k]['images_per_s'],
          'compile_s': results[best_k]['compile_s'], 'best_chunk': int(best_k),
          'by_chunk': results, 'content_layers': c.content_layers,
          'style_layers': c.style_layers, 'conv_impl': c.conv_impl,
          'device': str(jax.devices()[0]), 'n_devices': len(jax.devices()),
          'backend': jax.default_backend()}


def main(argv=None) -> None:
  import argparse  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--network', default='slim')
  p.add_argument('--size', type=int, default=256)
  p.add_argument('--batch', type=int, default=4)
  p.add_argument('--chunk', default='1,4')
  p.add_argument('--repeats', type=int, default=2)
  p.add_argument('--styles', type=int, default=1)
  p.add_argument('--set', action='append', default=[],
                 help='train config override FIELD=VALUE (e.g. style_layers=relu1_1,relu2_1)')
  a = p.parse_args(argv)
  overrides = {}
  for s in a.set:
    k, _, v = s.partition('=')
    ref = train_schema.train_config()
    for part in k.split('.'):
      ref = ref[part]
    overrides[k] = type(ref)(v) if not isinstance(ref, bool) else v.lower() in ('1', 'true')
  result = bench_train(a.network, a.size, a.batch, [int(x) for x in a.chunk.split(',')],
                       a.repeats, a.styles, overrides=overrides)
  print(json.dumps(result))
  sys.stdout.flush()


if __name__ == '__main__':
  main()
