"""Optimisers: the Torch-style L-BFGS against a NumPy transcription of torch.optim.LBFGS,
schedules, pixel range, and every optimiser lowering the real style-transfer loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.config import stylize as stylize_schema
from nst_jax.optimize import loop as loop_lib
from nst_jax.optimize import problem as problem_lib
from nst_jax.optimize import lbfgs as lbfgs_lib
from nst_jax.optimize import method as method_lib
from nst_jax.optimize import optimizers
from nst_jax.errors import ConfigError


def _rosenbrockish(x):
  # A smooth non-quadratic function of 6 variables with an ill-conditioned valley.
  return jnp.sum(100. * (x[1:] - x[:-1] ** 2) ** 2 + (1. - x[:-1]) ** 2) + 0.5 * jnp.sum(x ** 2)


def _torch_lbfgs_reference(f, x, steps, lr=1., m=100):
  """torch.optim.LBFGS.step(max_iter=steps, line_search_fn=None, no tolerances), in NumPy."""
  vg = jax.jit(jax.value_and_grad(f))
  loss, g = map(np.asarray, vg(jnp.asarray(x)))
  old_dirs, old_stps, ro = [], [], []
  h_diag, d, t, prev_g, losses = 1., None, None, None, []
  for n_iter in range(1, steps + 1):
    if n_iter == 1:
      d = -g
      h_diag = 1.
    else:
      y = g - prev_g
      s = d * t
      ys = y @ s
      if ys > 1e-10:
        if len(old_dirs) == m:
          old_dirs.pop(0); old_stps.pop(0); ro.pop(0)
        old_dirs.append(y); old_stps.append(s); ro.append(1. / ys)
        h_diag = ys / (y @ y)
      q = -g
      al = [None] * len(old_dirs)
      for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = old_stps[i] @ q * ro[i]
        q = q - al[i] * old_dirs[i]
      d = r = q * h_diag
      for i in range(len(old_dirs)):
        be_i = old_dirs[i] @ r * ro[i]
        r = r + old_stps[i] * (al[i] - be_i)
      d = r
    prev_g = g.copy()
    t = min(1., 1. / np.abs(g).sum()) * lr if n_iter == 1 else lr
    x = x + t * d
    loss, g = map(np.asarray, vg(jnp.asarray(x)))
    losses.append(float(loss))
  return x, losses


def _run(method_spec, f, x0, steps, hyper=None):
  hyper = hyper or {k: jnp.asarray(v, jnp.float32) for k, v in dict(
      learning_rate=1., decay_rate=1., b1=.9, b2=.999, eps=1e-8, momentum=0., rms_decay=.9,
      first_step=0.).items()}
  method = optimizers.make_method(method_spec)
  vg = jax.value_and_grad(f)
  state = method.init(jnp.asarray(x0, jnp.float32), hyper, vg)
  step = jax.jit(lambda s: method.step(s, vg, f))
  out = []
  for _ in range(steps):
    state, (loss, evals) = step(state)
    out.append((float(loss), int(evals)))
  return np.asarray(method.image(state)), out


@pytest.mark.parametrize('history', [100, 3])
def test_lbfgs_torch_matches_numpy_transcription_of_torch(history):
  x0 = np.array([-1.2, 1., -0.5, 0.3, 2., 1.5], np.float32)
  want_x, want_losses = _torch_lbfgs_reference(_rosenbrockish, x0.astype(np.float32), 25,
                                               m=history)
  spec = method_lib.MethodSpec('lbfgs_torch', history_size=history, lo=-1e9, hi=1e9)
  got_x, got = _run(spec, _rosenbrockish, x0, 25)
  np.testing.assert_allclose([l for l, _ in got], want_losses, rtol=2e-3)
  np.testing.assert_allclose(got_x, want_x, rtol=2e-3, atol=1e-4)
  assert all(e == 1 for _, e in got)  # no line search: one evaluation per step
  assert want_losses[-1] < 0.1 * float(_rosenbrockish(x0))


def test_lbfgs_torch_first_step_is_scaled_by_gradient_l1_norm():
  f = lambda x: 0.5 * jnp.sum(jnp.square(x - 3.)) * 1000.
  x0 = np.zeros(4, np.float32)
  spec = method_lib.MethodSpec('lbfgs_torch', lo=-1e9, hi=1e9)
  x1, _ = _run(spec, f, x0, 1)
  g = 1000. * (x0 - 3.)
  np.testing.assert_allclose(x1, x0 - min(1., 1. / np.abs(g).sum()) * g, rtol=1e-6)


@pytest.mark.parametrize('first_step', [0.5, 4.])
def test_lbfgs_torch_first_step_floor_moves_the_largest_value_by_it(first_step):
  f = lambda x: 0.5 * jnp.sum(jnp.square(x - 3.)) * 1000.
  x0 = np.array([0., 1., 2., 2.5], np.float32)
  spec = method_lib.MethodSpec('lbfgs_torch', lo=-1e9, hi=1e9)
  hyper = {k: jnp.asarray(v, jnp.float32) for k, v in dict(
      learning_rate=1., decay_rate=1., b1=.9, b2=.999, eps=1e-8, momentum=0., rms_decay=.9,
      first_step=first_step).items()}
  x1, _ = _run(spec, f, x0, 1, hyper)
  g = 1000. * (x0 - 3.)
  torch_t = min(1., 1. / np.abs(g).sum())
  t = max(torch_t, first_step / np.abs(g).max())  # the floor wins here: Torch's step is ~1e-4
  np.testing.assert_allclose(x1, x0 - t * g, rtol=1e-6)
  np.testing.assert_allclose(np.abs(x1 - x0).max(), first_step, rtol=1e-6)
  # A floor below Torch's step leaves Torch's rule.
  hyper['first_step'] = jnp.asarray(1e-9, jnp.float32)
  x1, _ = _run(spec, f, x0, 1, hyper)
  np.testing.assert_allclose(x1, x0 - torch_t * g, rtol=1e-6)


def test_optax_lbfgs_counts_line_search_evaluations():
  x0 = np.array([-1.2, 1., -0.5, 0.3, 2., 1.5], np.float32)
  spec = method_lib.MethodSpec('lbfgs', history_size=10, lo=-1e9, hi=1e9)
  _, out = _run(spec, _rosenbrockish, x0, 15)
  evals = [e for _, e in out]
  assert all(e >= 1 for e in evals) and sum(evals) > 15  # first step + line-search trials
  assert out[-1][0] < 0.1 * out[0][0]


def test_exponential_schedule():
  hyper = {'learning_rate': jnp.float32(100.), 'decay_rate': jnp.float32(0.96)}
  smooth = method_lib.MethodSpec('sgd', 'exponential', decay_steps=100)
  stair = smooth._replace(staircase=True)
  np.testing.assert_allclose(method_lib.learning_rate_at(150, hyper, smooth), 100 * 0.96 ** 1.5,
                             rtol=1e-6)
  np.testing.assert_allclose(method_lib.learning_rate_at(150, hyper, stair), 96., rtol=1e-6)
  np.testing.assert_allclose(method_lib.learning_rate_at(150, hyper, smooth._replace(
      schedule='constant')), 100., rtol=1e-6)


def test_pixels_stay_in_range():
  f = lambda x: -jnp.sum(x ** 3)  # pushes every pixel up without bound
  spec = method_lib.MethodSpec('sgd', lo=0., hi=255.)
  x, _ = _run(spec, f, np.full((4, 4, 3), 100., np.float32), 3)
  assert x.max() == 255. and x.min() >= 0.


def test_unknown_optimizer_and_schedule():
  c = stylize_schema.base_config().optimizer
  c.name = 'adagrad'
  with pytest.raises(ConfigError, match='unknown optimizer'):
    method_lib.spec_and_hyper(c)
  c.name, c.schedule = 'adam', 'cosine'
  with pytest.raises(ConfigError, match='unknown schedule'):
    method_lib.spec_and_hyper(c)


@pytest.mark.parametrize('name, lr, schedule', [
    ('lbfgs_torch', 1., 'constant'), ('lbfgs', 1., 'constant'), ('adam', 10., 'exponential'),
    ('sgd', 1e-9, 'exponential'), ('rmsprop', 5., 'constant'), ('nadam', 10., 'constant')])
def test_every_optimizer_lowers_the_style_transfer_loss(params, content_small, style_small, name,
                                                        lr, schedule):
  c = stylize_schema.base_config()
  c.size, c.num_steps, c.log_every = 32, 6, 6
  c.conv_impl = 'direct'  # Winograd compiles 10-25 s per program; it has its own tests (CI time)
  c.optimizer.name, c.optimizer.learning_rate, c.optimizer.schedule = name, lr, schedule
  c.optimizer.decay_steps = 2
  problem = problem_lib.build_problem(c, params, content_small, [style_small])
  result = loop_lib.optimize(problem, params, c.num_steps, c.log_every)
  first = float(loop_lib.terms(problem.z0, params, problem.targets, problem.weights,
                             spec=problem.spec)['total'])
  assert result.terms[-1]['total'] < 0.8 * first, (name, first, result.terms[-1])
  assert result.evals >= c.num_steps


def _two_loop_float64(S, Y, rho, ptr, h, g):
  """The two-loop recursion over the circular history, in float64 NumPy."""
  S, Y, rho, g = (np.asarray(x, np.float64) for x in (S, Y, rho, g))
  m = len(rho)
  q, al = -g, np.zeros(m)
  for i in range(m):
    j = (ptr - 1 - i) % m
    al[j] = rho[j] * (S[j] @ q)
    q = q - al[j] * Y[j]
  r = q * h
  for i in range(m):
    j = (ptr + i) % m
    r = r + S[j] * (al[j] - rho[j] * (Y[j] @ r))
  return r


@pytest.mark.parametrize('history,steps', [(8, 5), (8, 13)])  # part-filled; wrapped around
def test_lbfgs_torch_matrix_form_equals_the_two_loop_recursion(history, steps):
  """The float32 history's direction (two-loop recursion from stored inner products, updated
  each step) against the loop form and a float64 two-loop on the same history; the products
  recomputed from a checkpoint's history (restore_state) equal the ones updated step by step."""
  rng = np.random.default_rng(0)
  n = 3000
  scale = jnp.asarray(rng.uniform(0.2, 5., n), jnp.float32)
  f = lambda x: 0.5 * jnp.sum(scale * (x - 1.) ** 2) + 0.05 * jnp.sum(jnp.cos(3. * x))
  spec = method_lib.MethodSpec('lbfgs_torch', history_size=history, lo=-1e9, hi=1e9)
  method = optimizers.make_method(spec)
  vg = jax.value_and_grad(f)
  state = method.init(jnp.asarray(rng.standard_normal(n), jnp.float32), {'learning_rate': 1.}, vg)
  step = jax.jit(lambda s: method.step(s, vg, f)[0])
  for _ in range(steps):
    state = step(state)
  assert int(jnp.sum(state['rho'] != 0)) == min(steps, history)
  want = _two_loop_float64(state['S'], state['Y'], state['rho'], int(state['ptr']),
                           float(state['h_diag']), state['g'])
  got = np.asarray(lbfgs_lib._two_loop_matrix(state, history))
  loop = np.asarray(lbfgs_lib._two_loop(state, history))
  rel = lambda d: np.linalg.norm(d - want) / np.linalg.norm(want)
  assert rel(got) < 1e-5 and rel(loop) < 1e-5, (rel(got), rel(loop))
  stored = lbfgs_lib.checkpoint_state(state)
  # Checkpoints keep their format; the first-step floor comes from the resumed run's config.
  assert set(stored) == set(state) - set(lbfgs_lib.DERIVED) - set(lbfgs_lib.FROM_CONFIG)
  restored = lbfgs_lib.restore_state(stored, dict(state, first_step=jnp.float32(3.)))
  assert float(restored['first_step']) == 3.
  for k in lbfgs_lib.DERIVED:
    np.testing.assert_allclose(restored[k], state[k], rtol=1e-4,
                               atol=1e-5 * float(jnp.abs(state[k]).max()), err_msg=k)
  # Half-precision histories keep the loop form (no float32 copy of the history).
  half = optimizers.make_method(spec._replace(history_dtype='bfloat16')).init(
      jnp.zeros(n), {'learning_rate': 1.}, vg)
  assert 'SY' not in half
  assert set(lbfgs_lib.checkpoint_state(half)) == set(half) - set(lbfgs_lib.FROM_CONFIG)
  assert set(lbfgs_lib.restore_state(lbfgs_lib.checkpoint_state(half), half)) == set(half)


def test_lbfgs_torch_batched_as_in_sweeps_equals_single_runs():
  """Sweeps vmap the optimiser (the matrix form's substitution loops included); a batched state
  restored from its checkpoint form gets the same products back."""
  rng = np.random.default_rng(1)
  n, steps = 500, 7
  scales = jnp.asarray(rng.uniform(0.2, 5., (2, n)), jnp.float32)
  x0 = jnp.asarray(rng.standard_normal((2, n)), jnp.float32)
  spec = method_lib.MethodSpec('lbfgs_torch', history_size=4, lo=-1e9, hi=1e9)
  method = optimizers.make_method(spec)

  def run(scale, x):
    f = lambda x: 0.5 * jnp.sum(scale * (x - 1.) ** 2) + 0.05 * jnp.sum(jnp.cos(3. * x))
    vg = jax.value_and_grad(f)
    state = method.init(x, {'learning_rate': jnp.float32(1.)}, vg)
    return jax.lax.scan(lambda s, _: (method.step(s, vg, f)[0], None), state, None, steps)[0]

  batched = jax.jit(jax.vmap(run))(scales, x0)
  for i in range(2):
    single = jax.jit(run)(scales[i], x0[i])
    np.testing.assert_allclose(batched['z'][i], single['z'], rtol=1e-5, atol=1e-5)
  restored = lbfgs_lib.restore_state(lbfgs_lib.checkpoint_state(batched), batched)
  for k in lbfgs_lib.DERIVED:
    np.testing.assert_allclose(restored[k], batched[k], rtol=1e-4,
                               atol=1e-5 * float(jnp.abs(batched[k]).max()), err_msg=k)


def test_bf16_first_step_is_the_first_step_floor_under_bfloat16_only():
  c = stylize_schema.base_config().optimizer
  c.bf16_first_step = 2.
  _, hyper = method_lib.spec_and_hyper(c, conv_dtype='bfloat16')
  assert float(hyper['first_step']) == 2.
  _, hyper = method_lib.spec_and_hyper(c, conv_dtype='float32')
  assert float(hyper['first_step']) == 0.  # float32 keeps Torch's first step
  c.bf16_first_step = -1.
  with pytest.raises(ConfigError, match='bf16_first_step must be >= 0'):
    method_lib.spec_and_hyper(c, conv_dtype='bfloat16')


@pytest.mark.parametrize('flags, steps, want', [
    ({'amx_bf16'}, 500, 'bfloat16'),  # Winograd's products: bfloat16 pays
    ({'amx_bf16'}, 10, 'float32'),    # a short run compiles direct convolutions: no gain
    (set(), 500, 'float32')])         # no AMX
def test_run_conv_dtype_auto_by_cpu_and_run_length(monkeypatch, flags, steps, want):
  from nst_jax.runtime import devices  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(devices, 'cpu_flags', lambda: frozenset(flags))
  c = stylize_schema.base_config()
  c.conv_dtype, c.conv_impl, c.num_steps = 'auto', 'auto', steps
  impl = problem_lib.run_conv_impl(c, (192, 256))
  assert problem_lib.run_conv_dtype(c, impl) == want
  c.conv_dtype = 'bfloat16'  # asked for by name: kept, direct convolutions or not
  assert problem_lib.run_conv_dtype(c, 'direct') == 'bfloat16'
