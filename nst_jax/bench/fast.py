"""Benchmark of the feed-forward transformer (``python -m nst_jax.bench --network=multistyle26``).

  python -m nst_jax.bench --network=multistyle26 --size=1024            # vs onnxruntime
  python -m nst_jax.bench --network=multistyle26 --size=512 --batch=4
  python -m nst_jax.bench --network=model --model=MODEL_DIR --size=512

Times one jitted forward pass (float32 NHWC in 0..1 -> stylized, as the ONNX graph does) on the
content photo resized to ``size`` x ``size``: warm, best of ``repeats`` (median also reported),
``seconds_per_image`` = time of a batch / batch. ``compile_s`` is lowering + XLA compilation.
When onnxruntime is installed and the network is the shipped ONNX file, onnxruntime runs the same
file on the same image in the same process, interleaved with the JAX runs (so a shared, noisy
machine slows both alike), and the output difference is reported. The last line printed is one
JSON object.
"""

from __future__ import annotations

import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.io import images as image_io
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.runtime import profiling


def _ort_session(path: str):
  try:
    import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def bench_network(network: str = 'multistyle26', size: int = 1024, batch: int = 1,
                  repeats: int = 5, impl: str = 'fast', content: Optional[str] = None,
                  model: Optional[str] = None, style_index: int = 7) -> dict:
  """Times the transformer at ``size`` x ``size``; see the module docstring."""
  if network == 'multistyle26':
    m = model_io.load_builtin('multistyle26')
  elif network == 'model':
    m = model_io.load_model(model or '')
  else:
    raise ValueError(f'unknown network {network!r}')
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
