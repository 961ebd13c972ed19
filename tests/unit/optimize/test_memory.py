"""Jitted targets and no repeated compilation, rematerialisation, the memory estimate and refusal, the user's pixel cap,
and spatial sharding over 4 forced host devices."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.runtime import compile_cache
from nst_jax.config import stylize as stylize_schema
from nst_jax.losses import objective as objective_lib
from nst_jax.optimize import loop
from nst_jax.optimize import problem as problem_lib
from nst_jax.io import images as image_io
from nst_jax.optimize import memory
from nst_jax.losses import objective
from nst_jax.optimize import method as method_lib
from nst_jax.models import vgg
from nst_jax import jobs
from nst_jax.errors import ImageError
from conftest import IMAGES, ROOT


def _config(**kw):
  c = stylize_schema.base_config()
  c.size, c.num_steps, c.log_every, c.conv_impl = 32, 2, 2, 'direct'
  for k, v in kw.items():
    c[k] = v
  return c


def test_targets_jitted_and_nothing_compiled_twice(params, content_small, style_small):
  c = _config()
  with compile_cache.CompileStats() as first:
    problem = problem_lib.build_problem(c, params, content_small, [style_small])
    loop.optimize(problem, params, 2, 2)
  # Targets, initial state, chunk, loss terms and a few tiny helpers; op by op the targets
  # alone were ~390 programs.
  assert first.stats()['compilations'] + first.stats()['cache_hits'] <= 12, first.stats()
  with compile_cache.CompileStats() as second:  # The same problem again: everything reused.
    problem = problem_lib.build_problem(c, params, content_small, [style_small])
    loop.optimize(problem, params, 2, 2)
  assert second.stats()['compilations'] == 0 and second.stats()['cache_hits'] == 0, (
      second.stats())
  # The jitted content target is VGG's activation of the resized content (independent path).
  layer = problem.spec.content_layers[0]
  want = vgg.extract(params, image_io.resize_image(content_small, shape=problem.shape)[None]
                     .astype(np.float32), [layer])[layer]
  np.testing.assert_allclose(problem.targets.content[layer], want, rtol=1e-5, atol=1e-3)


def test_remat_gives_the_same_gradients(params, content_small, style_small):
  problem = problem_lib.build_problem(_config(), params, content_small, [style_small])
  grad = jax.jit(jax.grad(objective.objective), static_argnums=4)
  args = (problem.z0, params, problem.targets, problem.weights)
  g0 = grad(*args, problem.spec)
  for remat in ('all', '1,3'):
    spec = problem.spec._replace(remat=','.join(map(str, vgg.parse_remat(remat))))
    np.testing.assert_allclose(grad(*args, spec), g0, rtol=1e-5, atol=1e-6 * float(
        jnp.abs(g0).max()))
  with pytest.raises(Exception, match='remat'):
    vgg.parse_remat('7')


@pytest.mark.slow  # three optimiser programs; ~20 s on a quiet 2-core CPU
def test_history_cap_keeps_results_and_bfloat16_history(params, content_small, style_small):
  c = _config(num_steps=3)
  capped = problem_lib.build_problem(c, params, content_small, [style_small])
  assert capped.mspec.history_size == 3
  full = problem_lib.build_problem(_config(num_steps=3, save_every=100), params, content_small,
                              [style_small])
  assert full.mspec.history_size == 100
  a, b = loop.optimize(capped, params, 3, 3), loop.optimize(full, params, 3, 3)
  assert a.losses == b.losses
  np.testing.assert_array_equal(a.image, b.image)
  c.optimizer.history_dtype = 'bfloat16'
  half = problem_lib.build_problem(c, params, content_small, [style_small])
  h = loop.optimize(half, params, 3, 3)
  assert h.state['S'].dtype == jnp.bfloat16
  np.testing.assert_allclose(h.losses, a.losses, rtol=0.05)


def test_memory_estimate_against_xla_and_refusal(params, content_small, style_small, tmp_path):
  c = _config(size=64)
  problem = problem_lib.build_problem(c, params, content_small, [style_small])
  state = loop.init_state(problem.z0, params, problem.targets, problem.weights, problem.hyper,
                            spec=problem.spec, mspec=problem.mspec)
  exe, _ = compile_cache.compiled(loop.run_chunk, state, params, problem.targets,
                                  problem.weights, spec=problem.spec, mspec=problem.mspec,
                                  length=2)
  xla = memory.xla_estimate(exe, problem.shape, problem.mspec, rss_now=0)
  formula = memory.estimate(problem.shape, problem.spec, problem.mspec, rss_now=0)
  assert xla is not None and abs(formula.temp - xla.temp) < 0.2 * xla.temp, (formula, xla)
  # Refusal: one line that says what it needs, what is free and which option makes it fit.
  limit = round(memory.rss_bytes() / 2 ** 30 + 1.0, 1)  # 1 GB more than this process holds
  c = _config(size=1024, memory_limit_gb=limit)
  c.content, c.style = str(IMAGES / 'tubingen.jpg'), str(IMAGES / 'starry_night.jpg')
  c.output = str(tmp_path / 'o.png')
  with pytest.raises(memory.InsufficientMemoryError) as e:
    jobs.run(c, params=params, quiet=True)
  msg = str(e.value)
  assert '\n' not in msg and 'needs about' in msg and f'{limit:.1f} GB is free' in msg, msg
  assert 'fits with --config.size=' in msg, msg
  # The user's pixel cap is answered first, before any memory arithmetic.
  c.size, c.max_pixels = 2048, 1_000_000  # the 1024x768 source loads; the output is too big
  with pytest.raises(ImageError, match='output 2048x1536 = 3.1 megapixels is above the cap of 1 '):
    jobs.run(c, params=params, quiet=True)
  assert not (tmp_path / 'o.png').exists()


class _FakeAccelerator:
  platform = 'gpu'


def test_memory_check_per_device_when_rows_are_split(monkeypatch):
  """Spatial sharding on accelerators: each device holds ~1/N of the image's memory, so the check
  compares one device's share with one device's free memory, and a refusal first suggests more of
  the visible devices. On the CPU, forced host devices share one RAM: the whole image counts."""
  c = _config(size=2048, spatial_shards=4)
  c.num_steps = 500
  shape = (1536, 2048)
  spec = objective_lib.make_spec(c)._replace(conv_impl='direct')
  mspec, _ = method_lib.spec_and_hyper(c.optimizer)
  whole = memory.estimate(shape, spec, mspec, rss_now=0)
  quarter = memory.estimate(shape, spec, mspec, rss_now=0, shards=4)
  pixels = shape[0] * shape[1]
  assert quarter.state * 4 == whole.state  # image, gradient and history are split
  per_px = (whole.temp - memory.temp_bytes('direct', c.pooling, 0)) / pixels
  assert quarter.temp == pytest.approx(memory.temp_bytes('direct', c.pooling, 0) + per_px * pixels / 4)
  assert memory.separate_shards(c) == 1  # this CPU: one RAM for every host device
  monkeypatch.setattr(jax, 'devices', lambda *a: [_FakeAccelerator()] * 4)
  assert memory.separate_shards(c) == 4
  need = memory.estimate(shape, spec, mspec, shards=4).peak / 2 ** 30  # with this process's RSS
  c.memory_limit_gb = round(need / memory.SAFETY + 0.2, 2)  # one device's share fits
  memory.check(shape, spec, mspec, c, quiet=True)
  c.spatial_shards = 1  # the whole image on one device does not; 4 devices are visible
  with pytest.raises(memory.InsufficientMemoryError, match=r'fits with --config.spatial_shards=4 '):
    memory.check(shape, spec, mspec, c, quiet=True)
  c.spatial_shards = 2
  with pytest.raises(memory.InsufficientMemoryError, match=r'per device \(2 devices\)'):
    memory.check(shape, spec, mspec, c, quiet=True)


def test_max_pixels_reaches_the_output_size_check(params, content_small, style_small,
                                                 monkeypatch):
  with pytest.raises(ImageError, match='cap of 0.0005 megapixels'):
    problem_lib.build_problem(_config(max_pixels=500), params, content_small, [style_small])
  seen = []
  real = image_io.resize_image

  def spy(image, size=None, shape=None, max_pixels=image_io.DEFAULT_MAX_PIXELS):
    seen.append(max_pixels)
    return real(image, size=size, shape=shape, max_pixels=max_pixels)
  monkeypatch.setattr(problem_lib.image_io, 'resize_image', spy)
  problem_lib.build_problem(_config(max_pixels=100_000_000, init='style'), params, content_small,
                       [style_small])
  assert seen and set(seen) == {100_000_000}, seen


def test_auto_conv_impl_by_run_length():
  """``auto``: direct for short CPU runs (Winograd's compilation does not pay), Winograd for long
  ones; explicit choices are kept; the memory check sees the same choice as the run."""
  if jax.default_backend() != 'cpu':
    pytest.skip('auto is direct on accelerators')
  assert vgg.resolve_conv_impl('auto', 192 * 256, 2) == 'direct'
  assert vgg.resolve_conv_impl('auto', 192 * 256, 101) == 'winograd2'  # 4.96e6 pixel-evals
  assert vgg.resolve_conv_impl('auto', 1536 * 2048, 2) == 'winograd2'
  assert vgg.resolve_conv_impl('winograd4', 1, 1) == 'winograd4'
  c = _config(conv_impl='auto', height=192, width=256)
  assert problem_lib.run_conv_impl(c, (192, 256)) == 'direct'
  c.num_steps = 100
  assert problem_lib.run_conv_impl(c, (192, 256)) == 'winograd2'


SHARD_SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from nst_jax.runtime import compile_cache
from nst_jax.config import stylize as stylize_schema
from nst_jax.losses import objective as objective_lib
from nst_jax.optimize import loop
from nst_jax.optimize import problem as problem_lib
from nst_jax.optimize import spatial
from nst_jax.models import weights
params = weights.load_vgg19(sys.argv[1])
rng = np.random.default_rng(0)
content, style = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
c = stylize_schema.base_config()  # Two VGG blocks: block 2 still splits 16 rows over 4 devices.
c.height, c.width, c.conv_impl, c.num_steps, c.log_every = 32, 32, 'direct', 2, 2
c.content_layers, c.style_layers = 'conv2_1', 'conv1_1,conv2_1'
p1 = problem_lib.build_problem(c, params, content, [style])
p4, params4 = spatial.shard_problem(p1, params, 4)
# 0 steps: the starting point's loss and gradient, by the init program the 2-step runs reuse.
s1, s4 = loop.optimize(p1, params, 0).state, loop.optimize(p4, params4, 0).state
(v1, g1), (v4, g4) = (s1['loss'], s1['g']), (s4['loss'], s4['g'])
exe4, _ = compile_cache.compiled(loop.init_state, p4.z0, params4, p4.targets, p4.weights,
                                 p4.hyper, spec=p4.spec, mspec=p4.mspec)  # memoised: no compile
hlo = exe4.as_text()
# Two chunks: the second must accept the state the first returned (XLA picks its layout).
r1, r4 = loop.optimize(p1, params, 4, 2), loop.optimize(p4, params4, 4, 2)
# Coarse-to-fine through the runner: every stage split (the big last one is what needs it).
from nst_jax.io import images as image_io
from nst_jax import jobs
from nst_jax.jobs import stylize
out = sys.argv[2]
image_io.save_image(out + '/c.png', content); image_io.save_image(out + '/s.png', style)
c.stages, c.content, c.style, c.output = '16:2,32:2', out + '/c.png', out + '/s.png', out + '/o.png'
c.height = c.width = 0
c.spatial_shards, c.compile_cache = 4, 'off'
staged = jobs.run(c, params=params, quiet=True)
# Checkpoint and resume of a split run: 2 steps, then resumed to 4, against 4 straight.
c.stages, c.save_every, c.size, c.log_every = '', 2, 32, 2
c.num_steps, c.output = 4, out + '/straight.png'
straight = jobs.run(c, params=params, quiet=True)
c.num_steps, c.output, c.resume = 2, out + '/resumed.png', True
jobs.run(c, params=params, quiet=True)
c.num_steps = 4
resumed = jobs.run(c, params=params, quiet=True)
print(json.dumps({'devices': len(jax.devices()), 'v': [float(v1), float(v4)],
                  'staged': [staged['spatial_shards'], staged['shape'], len(staged['stages'])],
                  'resume': [straight['loss_history'], resumed['loss_history'],
                             resumed['spatial_shards'], resumed['evals'],
                             resumed.get('resumed_from'), straight.get('resumed_from')],
                  'grad_rel': float(jnp.linalg.norm(g1 - g4) / jnp.linalg.norm(g1)),
                  'shards': len(g4.sharding.device_set), 'spec': str(p4.z0.sharding.spec),
                  'collectives': any(k in hlo for k in ('collective-permute', 'all-reduce')),
                  'losses': [r1.losses, r4.losses],
                  'image_diff': int(np.abs(r1.image.astype(int) - r4.image).max())}))
"""


def test_spatial_sharding_on_4_host_devices_equals_single_device(random_weights_file, tmp_path):
  """A random VGG19 to block 2 at 32x32 (cheap: ~11 s); the split is the same as at any size.
  Also through the runner: a staged run and a checkpoint resumed, both split."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT))
  r = subprocess.run([sys.executable, '-c', SHARD_SCRIPT, str(random_weights_file), str(tmp_path)],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.strip().splitlines()[-1])
  assert out['devices'] == 4 and out['shards'] == 4 and 'rows' in out['spec']
  assert out['collectives'], 'the sharded program has no halo exchange / reduction'
  assert out['staged'] == [4, [32, 32], 2], out  # staged runs were left on one device before
  straight, resumed, shards, evals, start, straight_start = out['resume']
  assert shards == 4 and evals == 5 and len(resumed) == 4, out['resume']
  assert start == 2 and straight_start is None, out['resume']
  np.testing.assert_allclose(resumed, straight, rtol=1e-5)
  np.testing.assert_allclose(out['v'][1], out['v'][0], rtol=1e-5)
  assert out['grad_rel'] < 1e-5, out
  np.testing.assert_allclose(out['losses'][1], out['losses'][0], rtol=1e-3)
  assert out['image_diff'] <= 2, out
