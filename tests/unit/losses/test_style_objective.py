"""The style losses inside the objective: every loss optimises, sampled ones are reproducible
and resume exactly, sweeps over ``style_loss`` equal single runs, bad options fail before any
compilation. (The losses' numerics against NumPy: test_distribution, test_patches,
test_strotss.)"""

import numpy as np
import pytest

from nst_jax.config import stylize
from nst_jax.errors import ConfigError
from nst_jax.losses import style as style_lib
from nst_jax.optimize import loop, memory
from nst_jax.optimize import problem as problem_lib
from nst_jax.optimize.sweeps import batch as batch_lib
from nst_jax.optimize.sweeps import run as run_lib

from conftest import synthetic_image

LAYERS = {'mrf': 'conv2_1,conv3_1', 'strotss': 'conv1_1,conv2_1,conv3_1'}


@pytest.fixture(scope='module')
def images():
  return synthetic_image(32, 32, 1), synthetic_image(36, 30, 2)


def config(loss: str, steps: int = 4, **fields):
  c = stylize.base_config()
  c.size, c.num_steps, c.log_every, c.conv_impl = 32, steps, 2, 'direct'
  c.style_loss = loss
  c.style_layers = LAYERS.get(loss, 'conv1_1,conv2_1,conv3_1')
  c.content_layers = 'conv3_1'
  c.optimizer.name, c.optimizer.learning_rate = 'adam', 4.
  c.style_samples = 64
  c.content_weight, c.style_weight = 1e-3, 1.
  for k, v in fields.items():
    c[k] = v
  return c


def style_term(problem, params, z=None):
  t = loop.terms(problem.z0 if z is None else z, params, problem.targets, problem.weights,
                 problem.spec)
  return float(t['style'])


@pytest.mark.parametrize('loss', ['mean_std', 'mmd', 'cmd', 'mrf', 'nnst', pytest.param(
    'strotss', marks=pytest.mark.slow)])  # STROTSS compiles for a minute (run with -m slow);
#                                            its numerics: test_strotss
def test_every_loss_lowers_its_style_term(loss, images, random_params):
  content, style = images
  # Style alone from the content image, L-BFGS as the presets (Adam's first steps overshoot
  # on these tiny problems); CMD's sigmoid-bounded moments need a larger weight to move pixels.
  c = config(loss, content_loss='self_similarity' if loss == 'strotss' else 'mse',
             content_weight=0., style_weight=1e4 if loss == 'cmd' else 1.)
  c.optimizer.name, c.optimizer.learning_rate = 'lbfgs_torch', 1.
  problem = problem_lib.build_problem(c, random_params, content, [style])
  result = loop.optimize(problem, random_params, c.num_steps, c.log_every)
  before = style_term(problem, random_params)
  assert np.isfinite(result.losses).all() and before > 0
  assert result.terms[-1]['style'] < before


def test_two_styles_and_regions_with_a_loss_that_has_region_statistics(images, random_params):
  content, style = images
  mask = np.zeros((32, 32), np.float32)
  mask[:, :16] = 1.
  c = config('mean_std', steps=2)
  problem = problem_lib.build_problem(c, random_params, content, [style, content[::-1]],
                                      masks=[mask, 1. - mask])
  assert problem.targets.style_blend.shape == (2, 2, 3)
  result = loop.optimize(problem, random_params, 2, 2)
  assert np.isfinite(result.losses).all()


def test_sampled_loss_is_reproducible_and_resumes_exactly(images, random_params, tmp_path):
  content, style = images
  c = config('sliced_wasserstein', steps=4)
  problem = problem_lib.build_problem(c, random_params, content, [style])
  assert problem.spec.stochastic and 'key' in loop.init_state(
      problem.z0, random_params, problem.targets, problem.weights, problem.hyper,
      spec=problem.spec, mspec=problem.mspec)
  whole = loop.optimize(problem, random_params, 4, 2)
  again = loop.optimize(problem, random_params, 4, 2)
  np.testing.assert_array_equal(whole.state['z'], again.state['z'])
  # Two steps, a checkpoint on disk, and two more from it: the same image, bit for bit.
  half = loop.optimize(problem, random_params, 2, 2)
  path = tmp_path / 'ckpt.npz'
  loop.save_checkpoint(path, half.state, 2, {'losses': half.losses, 'evals': half.evals,
                                             'terms': half.terms}, 'k')
  template = loop.init_state(problem.z0, random_params, problem.targets, problem.weights,
                             problem.hyper, spec=problem.spec, mspec=problem.mspec)
  state, step, history = loop.load_checkpoint(path, template, 'k')
  resumed = loop.optimize(problem, random_params, 4, 2, state=state, start_step=step,
                          history=history)
  np.testing.assert_array_equal(whole.state['z'], resumed.state['z'])
  np.testing.assert_array_equal(whole.state['key'], resumed.state['key'])
  other = problem_lib.build_problem(config('sliced_wasserstein', steps=4, seed=1), random_params,
                                    content, [style])
  np.testing.assert_array_equal(other.z0, problem.z0)  # init=content: only the key differs
  other = loop.optimize(other, random_params, 4, 2)
  assert not np.array_equal(whole.state['z'], other.state['z'])


def test_sweep_over_style_loss_equals_single_runs(images, random_params):
  content, style = images
  c = config('gram', steps=2)
  c.sweep.axes = 'style_loss:gram,sliced_wasserstein'
  c.sweep.cost_analysis = False
  cache = batch_lib.ImageCache()
  c.content, c.style = cache.put('content', content), cache.put('style', style)
  result = run_lib.execute(c, random_params, images=cache)
  assert len(result.outcomes) == 2
  for o in result.outcomes:
    problem = problem_lib.build_problem(o.config, random_params, content, [style])
    single = loop.optimize(problem, random_params, 2, 2)
    # Non-Gram losses take the sweep's per-config path, whose pixels come rendered (uint8).
    rendered = batch_lib.uses_controls(o.config)
    expected = single.image if rendered else np.asarray(single.state['z'])
    np.testing.assert_allclose(o.pixels, expected, atol=2e-3, rtol=0)
    np.testing.assert_allclose(o.losses, single.losses, rtol=2e-5)


@pytest.mark.parametrize('fields, message', [
    ({'style_loss': 'histogramm'}, 'did you mean'),
    ({'style_loss': 'cmd', 'cmd_order': 1}, 'cmd_order'),
    ({'style_loss': 'sliced_wasserstein', 'sw_projections': 0}, 'sw_projections'),
    ({'style_loss': 'mmd', 'mmd_kernel': 'rbf'}, 'mmd_kernel'),
    ({'style_loss': 'mmd', 'chain': True}, 'style_loss=mmd'),
    ({'style_loss': 'histogram', 'mask': 'm.png'}, 'style_loss=histogram defines no per-region'),
    ({'style_loss': 'sliced_wasserstein', 'spatial_shards': 2}, 'spatial_shards=1'),
    ({'content_loss': 'self_sim'}, 'self_similarity'),
])
def test_bad_options_fail_in_validation(fields, message):
  c = config('gram')
  for k, v in fields.items():
    c[k] = v
  with pytest.raises(ConfigError, match=message):
    problem_lib.validate(c)


def test_a_patch_the_layer_cannot_hold_fails_before_any_compilation(images, monkeypatch):
  content, style = images
  monkeypatch.setattr(problem_lib.objective, 'compute_targets',
                      lambda *a, **k: pytest.fail('compiled'))
  c = config('mrf', mrf_patch_size=5)  # conv3_1 of 32 px is 8x8; conv2_1 16x16: 5 fits
  c.style_layers = 'conv3_1,conv4_1'   # conv4_1 is 4x4: it does not
  with pytest.raises(ConfigError, match='mrf_patch_size=5 does not fit block4_conv1'):
    problem_lib.prepare(c, content, [style])


def test_memory_estimate_counts_the_loss_and_refuses_before_compiling(images):
  content, style = images
  big = {'size': 1024, 'num_steps': 10, 'style_layers': 'conv3_1,conv4_1'}
  gram = memory.check_config(config('gram', **big), content, [style], quiet=True)
  mrf = memory.check_config(config('mrf', **big), content, [style], quiet=True)
  assert mrf['temp_mb'] > gram['temp_mb'] + 1000
  with pytest.raises(memory.InsufficientMemoryError, match='GB'):
    memory.check_config(config('mrf', memory_limit_gb=2., **big), content, [style], quiet=True)


def test_every_registered_loss_has_a_row_in_the_table():
  assert set(style_lib.REGISTRY) | {'gram'} == set(style_lib.STYLE_LOSSES)
  for name in style_lib.STYLE_LOSSES:
    assert name in style_lib.__doc__
