"""Benchmark of the feed-forward transformer (``python -m nst_jax.bench --network=multistyle26``).

  python -m nst_jax.bench --network=multistyle26 --size=1024            # vs onnxruntime
  python -m nst_jax.bench --network=multistyle26 --size=512 --batch=4
  python -m nst_jax.bench --network=model --model=MODEL_DIR --size=512
  python -m nst_jax.bench --network=multistyle26 --size=512 --layers   # where the time goes

Times one jitted forward pass (float32 NHWC in 0..1 -> stylized, as the ONNX graph does) on the
content photo resized to ``size`` x ``size``: warm, best of ``repeats`` (median also reported),
``seconds_per_image`` = time of a batch / batch. ``compile_s`` is lowering + XLA compilation.
When onnxruntime is installed and the network is the shipped ONNX file, onnxruntime runs the same
file on the same image in the same process, interleaved with the JAX runs (so a shared, noisy
machine slows both alike), and the output difference is reported. The last line printed is one
JSON object.

``--layers`` (:func:`layer_times`): the native path's convs one by one, each jitted alone on an
input of its shape with its pre-map, against the whole network; what is left is XLA's share.
"""

from __future__ import annotations

import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.io import images as image_io
from nst_jax.models import convolution
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.runtime import profiling


def _ort_session(path: str):
  try:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _load(network: str, model: Optional[str]):
  if network == 'multistyle26':
    return model_io.load_builtin('multistyle26')
  if network == 'model':
    return model_io.load_model(model or '')
  raise ValueError(f'unknown network {network!r}')


def _best_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return 1e3 * min(times)


def layer_times(network: str = 'multistyle26', size: int = 512, repeats: int = 9,
                model: Optional[str] = None) -> dict:
  """Per-layer milliseconds of the native path (:func:`transformer.apply_native`) at ``size``
  x ``size``: each fused conv alone (random input of its shape, its pre-map and padding),
  residual convs per conv; ``rest_ms`` = the whole network minus their sum."""
  if not convolution.fused_conv_available():
    raise ValueError('--layers times the native convolution, which is off here')
  m = _load(network, model)
  c, params = m.config, jax.tree.map(jnp.asarray, m.params)
  rng = np.random.default_rng(0)
  rows = []

  def time_conv(name, hw, kernel, stride=1, pad=1, edge=False, pre='affine_relu', skip=False):
    x = jnp.asarray(rng.random((1,) + hw + (kernel.shape[2],)), jnp.float32)
    a = jnp.ones((1, kernel.shape[2]), jnp.float32)
    fn = jax.jit(lambda x, k, a: convolution.fused_conv(
        x, k, stride, pad, edge, a, a * 0., pre, x if skip else None, keep_input=skip))
    rows.append({'layer': name, 'input': list(x.shape), 'kernel': list(kernel.shape),
                 'ms': round(_best_ms(fn, x, kernel, a, repeats=repeats), 2)})

  k = lambda name: params[name]['kernel']
  hw = (size, size)
  time_conv('contract_0', hw, k('contract_0'), pad=c.in_kernel // 2, pre='none')
  for i in range(1, len(c.down_widths)):
    time_conv(f'contract_{i}', hw, k(f'contract_{i}'), stride=2)
    hw = ((hw[0] - 1) // 2 + 1, (hw[1] - 1) // 2 + 1)
  for i in range(c.residual_blocks):
    time_conv(f'res_{i}_0', hw, k(f'res_{i}_0'), pre='affine', skip=i > 0)
    time_conv(f'res_{i}_1', hw, k(f'res_{i}_1'))
  for i in range(len(c.up_widths)):
    time_conv(f'expand_{i}', hw, networks.subpixel_kernel(k(f'expand_{i}')), edge=True)
    hw = (2 * hw[0], 2 * hw[1])
  last = f'expand_{len(c.up_widths)}'
  kk = (c.out_kernel + 2) // 2
  time_conv(f'{last} (space-to-depth)', (hw[0] // 2 + kk - 1, hw[1] // 2 + kk - 1),
            networks.s2d_kernel(k(last)), pad=0)
  x = jnp.asarray(rng.random((1, size, size, 3)), jnp.float32)
  w = jnp.zeros((c.num_styles,), jnp.float32).at[0].set(1.)
  total = _best_ms(jax.jit(lambda p, x, w: networks.apply_params(c, p, x, w)), params, x, w,
                   repeats=repeats)
  return {'network': network, 'HxW': f'{size}x{size}', 'layers': rows,
          'total_ms': round(total, 2),
          'rest_ms': round(total - sum(r['ms'] for r in rows), 2), 'repeats': repeats,
          'device': str(jax.devices()[0])}


def bench_network(network: str = 'multistyle26', size: int = 1024, batch: int = 1,
                  repeats: int = 5, impl: str = 'fast', content: Optional[str] = None,
                  model: Optional[str] = None, style_index: int = 7) -> dict:
  """Times the transformer at ``size`` x ``size``; see the module docstring."""
  m = _load(network, model)
  if content:
    photo = image_io.load_image(content, shape=(size, size)).astype(np.float32) / 255.
  else:
    photo = np.random.default_rng(0).random((size, size, 3), np.float32)
  x = np.ascontiguousarray(np.broadcast_to(photo, (batch, size, size, 3)))
  w = np.zeros(m.num_styles, np.float32)
  w[min(style_index, m.num_styles - 1)] = 1.
  params = jax.tree.map(jnp.asarray, m.params)
  xd, wd = jnp.asarray(x), jnp.asarray(w)

  fast, winograd = networks.impl_choices(impl, bench=True)
  native = networks.use_native(impl)
  fn = jax.jit(lambda p, x, w: networks.apply_params(m.config, p, x, w, fast, winograd, native))
  t0 = time.perf_counter()
  lowered = fn.lower(params, xd, wd)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  # FLOPs of the textbook network (the fast one hides its row strips inside a loop body).
  flops = profiling.xla_flops(jax.jit(
      lambda p, x, w: networks.apply_params(m.config, p, x, w, False)).lower(params, xd, wd))
  out = np.asarray(compiled(params, xd, wd))  # warm-up

  sess = None
  if network == 'multistyle26':
    from nst_jax.models import onnx_import as onnx_convert  # pylint: disable=g-import-not-at-top
    sess = _ort_session(str(onnx_convert.default_onnx_dir() / 'multistyle26.onnx'))
  feeds = {'image': np.ascontiguousarray(x[:1].transpose(0, 3, 1, 2)), 'style_weights': w}
  diff = None
  if sess is not None:
    ref = sess.run(None, feeds)[0].transpose(0, 2, 3, 1)
    diff = float(np.abs(out[:1] - ref).max())

  times, ort_times = [], []
  for _ in range(repeats):  # interleaved: both see the same machine load
    t = time.perf_counter()
    jax.block_until_ready(compiled(params, xd, wd))
    times.append((time.perf_counter() - t) / batch)
    if sess is not None:
      t = time.perf_counter()
      sess.run(None, feeds)
      ort_times.append(time.perf_counter() - t)
  best = min(times)
  result = {'network': network, 'HxW': f'{size}x{size}', 'batch': batch, 'impl': impl,
            'seconds_per_image': round(best, 4),
            'median_seconds_per_image': round(float(np.median(times)), 4),
            'images_per_s': round(1. / best, 2), 'compile_s': round(compile_s, 2),
            'gflop_per_image': round(flops / 1e9 / batch, 2),  # of the direct convs
            'gflop_per_s': round(flops / 1e9 / batch / best, 1), 'repeats': repeats}
  if sess is not None:
    ob = min(ort_times)
    result.update(onnxruntime_seconds_per_image=round(ob, 4),
                  onnxruntime_median_seconds_per_image=round(float(np.median(ort_times)), 4),
                  ratio_vs_onnxruntime=round(best / ob, 3),
                  max_abs_diff_vs_onnxruntime=diff)
  result.update(peak_rss_mb=round(profiling.peak_rss_mb(), 1), device=str(jax.devices()[0]),
                backend=jax.default_backend())
  return result
