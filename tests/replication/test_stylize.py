"""End-to-end style transfer with the real weights at small sizes: the style really moves,
modes, the Python API, every preset, resume, NaN handling."""

import json

import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags  # noqa: F401  (configs are plain python files)
import numpy as np
import pytest

import nst_jax
from nst_jax.config import stylize as stylize_lib
from nst_jax.optimize import problem as problem_lib
from nst_jax.losses import objective as objective_lib
from nst_jax.optimize import loop
from nst_jax.io import checkpoints
from nst_jax import jobs
from nst_jax.errors import ConfigError, NonFiniteLossError
from conftest import IMAGES

# Each preset through jobs.run: kept in `-m slow` (CI time). In CI, gatys2015 runs end to end
# through run.py (test_cli), popart's mask run is in test_controls, every preset loads locked in
# test_structure, and the loss formulas and modes have their own tests. In-process runs here use
# conv_impl='direct': Winograd (the CPU default) compiles for 10-25 s per program; it runs end to
# end in test_cli and test_sweep's run_sweep, and matches the direct network in test_vgg.
PRESETS = ['gatys2015', 'keras_example', 'tf_tutorial', 'popart_portrait', 'texture_synthesis',
           'content_reconstruction']


from nst_jax.config.schema import load_preset


def _terms(problem, params, z):
  return {k: float(v) for k, v in loop.terms(jnp.asarray(z, jnp.float32), params,
                                               problem.targets, problem.weights,
                                               spec=problem.spec).items()}


def test_style_transfer_moves_image_toward_style(params):
  from nst_jax.io import images as image_io
  content = image_io.load_image(IMAGES / 'tubingen.jpg', size=96)
  style = image_io.load_image(IMAGES / 'starry_night.jpg', size=96)
  c = load_preset('gatys2015')
  c.size, c.num_steps, c.log_every, c.init = 96, 60, 30, 'content'
  c.conv_impl = 'direct'  # the Winograd path is covered by test_winograd_keeps_the_result
  problem = problem_lib.build_problem(c, params, content, [style])
  start = _terms(problem, params, problem.z0)
  result = loop.optimize(problem, params, c.num_steps, c.log_every)
  end = _terms(problem, params, result.image)
  assert end['style'] < start['style'] / 10, (start, end)
  # Content stays recognisable: its content loss stays below that of the painting itself, and
  # the luminance still correlates strongly with the photo's (the painting's: ~0.38).
  painting = image_io.resize_image(style, shape=(72, 96))
  assert end['content'] < _terms(problem, params, painting)['content']
  lum = lambda a: (a.astype(np.float64) @ [0.299, 0.587, 0.114]).ravel()
  assert np.corrcoef(lum(result.image), lum(content))[0, 1] > 0.6
  assert result.image.dtype == np.uint8 and result.image.shape == (72, 96, 3)
  assert len(result.losses) == 60 and result.evals == 61
  assert result.losses[-1] < result.losses[0]


def test_content_reconstruction_from_noise(params, content_small):
  c = load_preset('content_reconstruction')
  c.size, c.num_steps, c.log_every, c.content_layers = 64, 30, 30, 'conv2_2'
  c.conv_impl = 'direct'
  problem = problem_lib.build_problem(c, params, content_small, [])
  start = _terms(problem, params, problem.z0)
  end = _terms(problem, params, loop.optimize(problem, params, 30, 30).image)
  assert problem.spec.style_layers == ()
  assert end['content'] < start['content'] / 10 and end['style'] == 0.


def test_texture_synthesis_from_noise(params, style_small):
  c = load_preset('texture_synthesis')
  c.size, c.num_steps, c.log_every = 64, 30, 30
  c.conv_impl = 'direct'
  problem = problem_lib.build_problem(c, params, None, [style_small])
  start = _terms(problem, params, problem.z0)
  end = _terms(problem, params, loop.optimize(problem, params, 30, 30).image)
  assert problem.spec.content_layers == ()
  assert end['style'] < start['style'] / 10 and end['content'] == 0.


def test_python_api_stylize(params, content_small, style_small):
  out = nst_jax.stylize(content_small, style_small, params=params, size=32, num_steps=3,
                        log_every=3, conv_impl='direct')
  assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
  two = nst_jax.stylize(content_small, [style_small, content_small], params=params, size=32,
                        num_steps=2, log_every=2, style_blend_weights='0.7,0.3',
                        conv_impl='direct')
  assert two.shape == (24, 32, 3)


def test_init_modes(params, content_small, style_small):
  c = stylize_lib.base_config()
  c.size = 32
  for init in ('content', 'noise', 'style', 'blend'):
    c.init = init
    z0 = np.asarray(problem_lib.build_problem(c, params, content_small, [style_small]).z0)
    assert z0.shape == (24, 32, 3) and z0.min() >= 0 and z0.max() <= 255
  c.init = 'noise'
  again = problem_lib.build_problem(c, params, content_small, [style_small]).z0
  c.seed = 1
  other = problem_lib.build_problem(c, params, content_small, [style_small]).z0
  c.seed = 0
  np.testing.assert_array_equal(again, problem_lib.build_problem(c, params, content_small,
                                                            [style_small]).z0)
  assert not np.array_equal(again, other)
  c.init = 'image'
  with pytest.raises(ConfigError, match='init image'):
    problem_lib.build_problem(c, params, content_small, [style_small])


@pytest.mark.slow
@pytest.mark.parametrize('preset', PRESETS)
def test_every_preset_runs_end_to_end(params, preset, tmp_path):
  c = load_preset(preset)
  c.content = str(IMAGES / 'tubingen.jpg') if c.mode != 'texture_synthesis' else ''
  c.style = str(IMAGES / 'starry_night.jpg') if c.mode != 'content_reconstruction' else ''
  c.size, c.num_steps, c.log_every = 32, 2, 2
  c.output = str(tmp_path / 'out.png')
  summary = jobs.run(c, params=params, quiet=True)
  assert (tmp_path / 'out.png').is_file()
  saved = json.loads((tmp_path / 'out.json').read_text())
  assert saved['steps'] == 2 and len(saved['loss_history']) == 2
  assert saved['config']['optimizer']['name'] == c.optimizer.name
  assert {'compile_s', 'run_s', 'wall_s', 's_per_step'} <= set(saved['timings'])
  assert np.isfinite(summary['final']['total'])


def test_intermediate_images_checkpoint_and_resume(random_params, tmp_path):
  params = random_params  # structural: no real weights needed
  c = stylize_lib.base_config()
  c.content, c.style = str(IMAGES / 'tubingen.jpg'), str(IMAGES / 'starry_night.jpg')
  c.size, c.num_steps, c.log_every, c.save_every = 32, 4, 4, 2
  c.conv_impl = 'direct'  # Winograd compiles 10-25 s per program (CI time)
  c.output = str(tmp_path / 'a' / 'out.png')
  jobs.run(c, params=params, quiet=True)
  assert sorted(p.name for p in (tmp_path / 'a').glob('out_step*.png')) == [
      'out_step00002.png', 'out_step00004.png']
  assert (tmp_path / 'a' / 'out.ckpt.npz').is_file()
  assert not list((tmp_path / 'a').glob('.*'))  # no temp files left behind
  # Extend the finished run by 2 steps; compare with an uninterrupted 6-step run.
  c.num_steps, c.resume = 6, True
  resumed = jobs.run(c, params=params, quiet=True)
  c2 = ml_collections.ConfigDict(c)
  c2.resume, c2.save_every, c2.output = False, 0, str(tmp_path / 'b' / 'out.png')
  straight = jobs.run(c2, params=params, quiet=True)
  assert resumed['steps'] == 6 and len(resumed['loss_history']) == 6
  np.testing.assert_allclose(resumed['loss_history'], straight['loss_history'], rtol=1e-4)
  # A checkpoint of another configuration is refused.
  c.style_weight = 7.
  with pytest.raises(ConfigError, match='different configuration'):
    jobs.run(c, params=params, quiet=True)


def test_nan_loss_stops_with_last_good_image(random_params, tmp_path):
  params = random_params  # structural: no real weights needed
  c = stylize_lib.base_config()
  c.content, c.style = str(IMAGES / 'tubingen.jpg'), str(IMAGES / 'starry_night.jpg')
  c.size, c.num_steps, c.log_every, c.conv_impl = 32, 4, 2, 'direct'
  c.output = str(tmp_path / 'out.png')
  c.optimizer.name, c.optimizer.learning_rate = 'adam', float('nan')
  with pytest.raises(NonFiniteLossError, match='NaN/Inf'):
    jobs.run(c, params=params, quiet=True)
  from nst_jax.io import images as image_io
  saved = image_io.load_image(tmp_path / 'out.png')
  want = image_io.resize_image(image_io.load_image(IMAGES / 'tubingen.jpg'), shape=(24, 32))
  np.testing.assert_array_equal(saved, want)  # the initial (content) image: last finite one
  assert 'NaN' in json.loads((tmp_path / 'out.json').read_text())['error']


@pytest.mark.slow  # 20 steps x 3 conv programs; the networks' equality is in test_vgg (CI time)
def test_winograd_keeps_the_result(params, content_small, style_small):
  """The faster conv algorithms are a config choice that keeps final losses within 1%, and
  bfloat16 operands (``conv_dtype``) within 3% (2026-12-02: 2.2% lower). The reported terms are
  float32 evaluations."""
  finals = {}
  for impl in ('direct', 'winograd2', 'winograd4', 'bfloat16'):
    c = stylize_lib.base_config()
    c.size, c.num_steps, c.log_every, c.conv_impl = 64, 20, 20, impl
    c.optimizer.name, c.optimizer.learning_rate = 'adam', 5.
    if impl == 'bfloat16':
      c.conv_impl, c.conv_dtype = 'direct', 'bfloat16'
    problem = problem_lib.build_problem(c, params, content_small, [style_small])
    assert problem.spec.conv_dtype == c.conv_dtype
    finals[impl] = loop.optimize(problem, params, 20, 20).terms[-1]['total']
  for impl in ('winograd2', 'winograd4'):
    assert abs(finals[impl] - finals['direct']) < 0.01 * finals['direct'], finals
  assert finals['bfloat16'] != finals['direct']  # the option reaches the convolutions
  assert abs(finals['bfloat16'] - finals['direct']) < 0.03 * finals['direct'], finals


def test_conv_dtype_reaches_the_objective_but_not_the_targets():
  from nst_jax.losses import objective
  c = stylize_lib.base_config()
  assert objective_lib.make_spec(c).conv_dtype == 'float32'
  c.conv_dtype = 'bfloat16'
  spec = objective_lib.make_spec(c)
  assert spec.conv_dtype == 'bfloat16'
  assert objective.target_spec(spec).conv_dtype == 'float32'  # targets, reported terms
  c.conv_dtype = 'float16'
  with pytest.raises(ConfigError, match='conv_dtype'):
    problem_lib.validate(c)


from nst_jax.runtime import interrupt as _interrupt  # noqa: E402
_STOP_ON_SIGNAL = _interrupt.StopOnSignal


class _StopAfter:
  """A StopOnSignal whose ``requested`` turns true at its ``n``-th reading (no signal)."""

  def __init__(self, n):
    self.n = n

  def __call__(self, quiet=False):
    outer = self

    class Stop(_STOP_ON_SIGNAL):
      calls = 0

      @property
      def requested(self):
        Stop.calls += 1
        return Stop.calls >= outer.n
    return Stop(quiet=quiet)


def test_stages_stopped_and_resumed_equal_a_straight_run(random_params, synthetic_files,
                                                         tmp_path, monkeypatch):
  from nst_jax.runtime import interrupt
  from nst_jax.io import images as image_io
  c = stylize_lib.base_config()
  c.content, c.style = synthetic_files['content'], synthetic_files['style']
  c.init, c.stages, c.log_every = 'noise', '32:4,40:4', 2
  c.content_layers, c.style_layers = 'conv2_2', 'conv1_1,conv2_1'  # a short VGG prefix: fast
  c.conv_impl = 'direct'
  c.output = str(tmp_path / 'a' / 'out.png')
  straight = jobs.run(ml_collections.ConfigDict(dict(c.to_dict(), output=str(
      tmp_path / 'b' / 'out.png'))), params=random_params, quiet=True)
  stop_at = 2  # Readings of ``requested``: stage 1 after step 2, stage 2 after step 2.
  with monkeypatch.context() as m:
    m.setattr(interrupt, 'StopOnSignal', _StopAfter(stop_at))
    with pytest.raises(interrupt.Interrupted) as e:
      jobs.run(c, params=random_params, quiet=True)
  assert f'stage {stop_at} step 2' in str(e.value) and '--config.resume=True' in str(e.value)
  saved = (tmp_path / 'a' / 'out.ckpt.npz').read_bytes()
  c.resume = True
  resumed = jobs.run(c, params=random_params, quiet=True)
  assert [s['steps'] for s in resumed['stages']] == [4, 4]
  assert not (tmp_path / 'a' / 'out.ckpt.npz').exists()  # spent
  for a, b in zip(resumed['stages'], straight['stages']):
    np.testing.assert_allclose(a['loss_history'], b['loss_history'], rtol=1e-4)
  np.testing.assert_allclose(image_io.load_image(tmp_path / 'a' / 'out.png').astype(float),
                             image_io.load_image(tmp_path / 'b' / 'out.png').astype(float),
                             atol=1)
  c.stages, c.output = '32:4,48:4', str(tmp_path / 'c' / 'out.png')  # Another configuration
  (tmp_path / 'c').mkdir()
  (tmp_path / 'c' / 'out.ckpt.npz').write_bytes(saved)
  with pytest.raises(ConfigError, match='different configuration'):
    jobs.run(c, params=random_params, quiet=True)


def test_checkpoints_from_before_a_new_field_still_resume():
  """A field added later (config.ADDED_FIELDS) at its old meaning leaves the checkpoint key as it
  was, so a checkpoint written without the field resumes; another value is another problem."""
  c = stylize_lib.base_config()
  old = ml_collections.ConfigDict({k: v for k, v in c.to_dict().items() if k != 'conv_dtype'})
  assert checkpoints.resume_key(old) == checkpoints.resume_key(c)
  c.conv_dtype = 'bfloat16'
  assert checkpoints.resume_key(c) != checkpoints.resume_key(old)
