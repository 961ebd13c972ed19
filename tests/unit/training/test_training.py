"""Training and AdaIN: data pipeline, the training loop, resume, AdaIN layer.

Everything runs at 64 px on a few shared photos, with one compiled training chunk per network
shared by the runs (the loop caches it per process).
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from nst_jax.models import adain
from nst_jax.training import data
from nst_jax.jobs import fast
from nst_jax.io import checkpoints
from nst_jax.io import images as image_io
from nst_jax.io import metric_writers as metrics
from nst_jax.runtime import interrupt
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.jobs import train as train_lib
from nst_jax.training import loop as loop_lib
from nst_jax.config import train as train_schema
from nst_jax.training.tasks import feedforward as train_style
from nst_jax.errors import ConfigError, ImageError

from conftest import IMAGES, SHARED

PHOTOS = SHARED / 'datasets' / 'bsds500_trainval'


# --- Data pipeline.


@pytest.fixture(scope='module')
def photo_sampler():
  return data.CropSampler(PHOTOS, 48, 3, seed=7, scale_range=(1.0, 2.0), limit=5)


def test_crops_have_the_requested_size_and_are_deterministic(photo_sampler):
  b = photo_sampler.batch(4)
  assert b.shape == (3, 48, 48, 3) and b.dtype == np.uint8
  again = data.CropSampler(PHOTOS, 48, 3, seed=7, scale_range=(1.0, 2.0), limit=5)
  np.testing.assert_array_equal(again.batch(4), b)  # a fresh sampler resumes at any step
  assert not np.array_equal(photo_sampler.batch(5), b)
  other = data.CropSampler(PHOTOS, 48, 3, seed=8, scale_range=(1.0, 2.0), limit=5)
  assert not np.array_equal(other.batch(4), b)


def test_each_epoch_visits_every_photo_once(photo_sampler):
  # 5 photos, batches of 3: steps 0..4 cover 3 epochs exactly.
  idx = np.concatenate([photo_sampler.indices(s) for s in range(5)])
  for e in range(3):
    assert sorted(idx[5 * e:5 * e + 5]) == list(range(5))


def test_crop_is_a_rescaled_window_of_the_photo():
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=80)  # 80x60
  s = data.CropSampler([photo], 32, 1, seed=0, scale_range=(1.0, 1.0), flip=False)
  crop = s.batch(0)[0]
  small = image_io.resize_image(photo, shape=(32, 43))  # shorter side -> 32
  hits = [x for x in range(43 - 32 + 1) if np.array_equal(small[:, x:x + 32], crop)]
  assert hits


def test_prefetcher_yields_chunks_from_the_resume_step(photo_sampler):
  with data.Prefetcher({'content': photo_sampler}, 3, 8, 2) as p:
    got = [(step, b['content'].shape) for step, b in p]
  assert got == [(3, (2, 3, 48, 48, 3)), (5, (2, 3, 48, 48, 3)), (7, (1, 3, 48, 48, 3))]


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
  with pytest.raises(ImageError, match='has no images'):
    data.CropSampler(tmp_path, 32, 1)
  with pytest.raises(ImageError, match='not found'):
    data.CropSampler(tmp_path / 'nope', 32, 1)
  with pytest.raises(ConfigError, match='crop size'):
    data.CropSampler(PHOTOS, 8, 1)


# --- AdaIN layer.


def test_adain_matches_hand_computation():
  rng = np.random.default_rng(0)
  c = rng.normal(3., 2., (2, 5, 6, 4)).astype(np.float32)
  s = rng.normal(-1., 5., (2, 7, 3, 4)).astype(np.float32)
  def stats(x):
    mu = x.mean(axis=(1, 2), keepdims=True)
    return mu, np.sqrt(((x - mu) ** 2).mean(axis=(1, 2), keepdims=True) + 1e-5)
  (mc, sc), (ms, ss) = stats(c.astype(np.float64)), stats(s.astype(np.float64))
  want = ss * (c - mc) / sc + ms
  got = np.asarray(adain.adain(c, s))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  gm, gs = stats(got.astype(np.float64))  # The output carries the style's statistics.
  np.testing.assert_allclose(gm, ms, atol=1e-4)
  np.testing.assert_allclose(gs, ss, rtol=1e-4)


def test_decoder_conv_equals_reflect_padded_valid_conv():
  """conv3x3_reflect (SAME interior + border strips) == VALID conv of the reflect-padded input,
  values and both gradients, checked against jnp.pad + lax.conv directly."""
  from jax import lax
  rng = np.random.default_rng(2)
  x = jax.numpy.asarray(rng.normal(size=(2, 5, 7, 4)), jax.numpy.float32)
  k = jax.numpy.asarray(rng.normal(size=(3, 3, 4, 3)), jax.numpy.float32)
  def ref(x, k):
    xp = jax.numpy.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
    return lax.conv_general_dilated(xp, k, (1, 1), 'VALID',
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  def both(fn):  # one compiled program each: value and the gradients of a cubic loss
    return jax.jit(lambda x, k: (fn(x, k), jax.grad(
        lambda x, k: jax.numpy.sum(fn(x, k) ** 3), (0, 1))(x, k)))(x, k)
  (got, got_g), (want, want_g) = both(adain.conv3x3_reflect), both(ref)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for a, b in zip(got_g, want_g):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


# --- The training loop.


@pytest.fixture(scope='module')
def tiny_photos(tmp_path_factory):
  """Two 64x64 photos: with no flips and no rescaling every batch holds the same crops, so the
  per-step losses are comparable."""
  d = tmp_path_factory.mktemp('photos')
  for f in image_io.list_images(PHOTOS)[:2]:
    image_io.save_image(d / f'{f.stem}.png', image_io.load_image(f, shape=(64, 64)))
  return d


def _config(tiny_photos, out, **kw):
  c = train_schema.train_config()
  c.update(dict(network='slim', style=str(IMAGES / 'starry_night.jpg'), output=str(out),
                data_dir=str(tiny_photos), crop_size=64, batch_size=2, flip=False,
                style_size=64, content_layers='relu2_2', style_layers='relu1_1,relu2_1,relu3_1',
                style_layer_weights='', conv_impl='direct', num_steps=4, chunk=2,
                learning_rate=1e-2, sample_every=0, save_every=0, progress='none'))
  c.update(kw)
  return c


@pytest.fixture(scope='module')
def trained(tiny_photos, params, tmp_path_factory):
  out = tmp_path_factory.mktemp('model')
  task = train_style.style_task(_config(tiny_photos, out), params)
  return out, loop_lib.train(_config(tiny_photos, out), task, quiet=True)


def summary_params(summary):
  return summary['params']


def test_training_lowers_the_loss_and_writes_a_loadable_model(trained, tiny_photos, params):
  out, summary = trained
  totals = [t for r in metrics.read_records(out / 'metrics.jsonl') for t in r['step_totals']]
  assert len(totals) == 4 and totals[-1] < 0.9 * totals[0], totals
  assert summary['steps'] == 4 and summary['final']['step'] == 4
  assert json.loads((out / 'train.json').read_text())['steps'] == 4
  model = model_io.load_model(out)  # what configs/fast.py --model=DIR loads
  assert model.styles == ['starry_night'] and model.config.output_activation == 'sigmoid'
  for k, v in network_params.flatten_params(summary_params(summary)).items():
    np.testing.assert_array_equal(network_params.flatten_params(model.params)[k], v)
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)  # 40x30, not the training size
  y = fast.stylize(model, photo)
  assert y.shape == photo.shape and y.dtype == np.uint8


def test_interrupt_then_resume_equals_an_uninterrupted_run(trained, tiny_photos, params,
                                                            tmp_path, interrupt_content_at):
  out_full, _ = trained
  out = tmp_path / 'model'

  config = _config(tiny_photos, out)
  task = train_style.style_task(config, params)
  interrupt_content_at(task, 2)
  with pytest.raises(interrupt.Interrupted, match='resume with: .*--config.resume=True') as e:
    loop_lib.train(config, task, quiet=True)
  assert e.value.step == 2
  assert (out / 'checkpoint.npz').exists() and (out / 'model.npz').exists()
  resumed = train_lib.run(_config(tiny_photos, out, resume=True), params)
  assert resumed['start_step'] == 2 and resumed['steps'] == 4
  with np.load(out_full / 'model.npz') as a, np.load(out / 'model.npz') as b:
    for k in a.files:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)
  steps = [r['step'] for r in metrics.read_records(out / 'metrics.jsonl')]
  assert steps == [2, 4]


def test_checkpoint_of_another_configuration_is_refused(trained, tiny_photos, params):
  out, _ = trained
  with pytest.raises(ConfigError, match='different training configuration'):
    train_lib.run(_config(tiny_photos, out, resume=True, num_steps=6, style_weight=1.), params)


def test_network_fields_change_the_named_layout(tiny_photos, tmp_path):
  c = _config(tiny_photos, tmp_path)
  assert train_style.network_config(c, 2) == networks.NetworkConfig(
      down_widths=(32, 32, 32), residual_blocks=6, up_widths=(8, 4), num_styles=2,
      output_activation='sigmoid', norm_last=True, use_bias=False)
  c.update(dict(network='johnson'))
  c.net.update(dict(down_widths='16,32,64', up_widths='32,16', residual_blocks=0,
                    output_activation='sigmoid', norm_last='true', use_bias='False'))
  got = train_style.network_config(c, 1)
  assert (got.down_widths, got.up_widths, got.residual_blocks, got.output_activation,
          got.norm_last, got.use_bias) == ((16, 32, 64), (32, 16), 0, 'sigmoid', True, False)
  for field, value, message in (('down_widths', '16,x', 'comma-separated'),
                                ('up_widths', '0,8', 'must be positive'),
                                ('output_activation', 'relu', 'unknown output_activation'),
                                ('norm_last', 'yes', 'true or false')):
    bad = _config(tiny_photos, tmp_path)
    bad.net[field] = value
    with pytest.raises(ConfigError, match=message):
      train_style.network_config(bad, 1)


@pytest.mark.slow  # ~25 s idle; N-style rows are also test_finetune's
def test_two_style_training_lowers_each_styles_loss_and_mixes(tiny_photos, params, tmp_path):
  """Dumoulin et al.: one network, conditional instance norm, a random style per batch element."""
  styles = f"{IMAGES / 'starry_night.jpg'},{IMAGES / 'the_scream.jpg'}"
  c = _config(tiny_photos, tmp_path / 'two', style=styles, crop_size=32, style_size=32,
              num_steps=6, chunk=6, learning_rate=2e-2)
  c.net.residual_blocks, c.net.up_widths = 3, '8,8'  # the architecture's config fields
  summary = train_lib.run(c, params)
  assert summary['task'] == 'dumoulin' and summary['steps'] == 6
  model = model_io.load_model(tmp_path / 'two')
  assert model.config.num_styles == 2 and model.styles == ['starry_night', 'the_scream']
  assert (model.config.residual_blocks, model.config.up_widths) == (3, (8, 8))
  # The loss falls: the network's loss on a fixed photo for each style index, summed (6 steps
  # with a random style per element do not guarantee that each style alone improves).
  netcfg, spec = model.config, train_style.objective_spec(c)
  task = train_style.style_task(c, params)
  batch = {'content': np.stack([task.samplers['content'].batch(0)[0]] * 2),
           'style_index': np.array([0, 1], np.int32)}
  loss = jax.jit(train_style.batch_loss_fn(netcfg, spec, False))
  per_style = lambda p: [float(loss(p, {'content': batch['content'][i:i + 1],
                                        'style_index': batch['style_index'][i:i + 1]},
                                    task.consts)[0]) for i in range(2)]
  before, after = per_style(task.params), per_style(jax.tree.map(np.asarray, model.params))
  assert sum(after) < 0.9 * sum(before), (before, after)
  # The two conditional rows differ, and a 50/50 mix lies between the two styles' outputs.
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=33)
  y0, y1 = fast.stylize(model, photo, 0), fast.stylize(model, photo, 1)
  ym = fast.stylize(model, photo, '0:0.5,1:0.5').astype(float)
  assert np.abs(y0.astype(float) - y1).mean() > 1.0
  assert np.abs(ym - y0).mean() < np.abs(y1.astype(float) - y0).mean()
  assert np.abs(ym - y1).mean() < np.abs(y1.astype(float) - y0).mean()


def test_adain_training_lowers_the_loss(tiny_photos, params, tmp_path):
  styles = tmp_path / 'styles'
  styles.mkdir()
  image_io.save_image(styles / 'starry.png',
                      image_io.load_image(IMAGES / 'starry_night.jpg', shape=(64, 64)))
  c = _config(tiny_photos, tmp_path / 'adain', network='adain', style='', style_dir=str(styles),
              num_steps=3, chunk=3, learning_rate=1e-4, style_weight=10.)
  c.net.width = 0.25
  summary = train_lib.run(c, params)
  totals = summary['final']['step_totals']
  assert totals[-1] < totals[0], totals
  decoder, width = adain.load_decoder(tmp_path / 'adain')
  assert width == 0.25
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=44)  # not a multiple of 8
  style = image_io.load_image(IMAGES / 'starry_night.jpg', size=32)
  out = adain.stylize(decoder, photo, style, 0.5, vgg_params=params)
  assert out.shape == photo.shape and out.dtype == np.uint8


def test_batched_training_loss_is_the_objective_per_image(params):
  """The training loss equals objective.loss_terms of each (output, photo) pair, averaged."""
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
  photos = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
  c = train_schema.train_config()
  c.conv_impl, c.tv_weight = 'direct', 1e-3
  c.content_layers, c.style_layers = 'relu2_2', 'relu1_2,relu2_1,relu3_1'
  c.style_layer_weights = '1,2,3'
  spec = train_style.objective_spec(c)
  w = train_style.objective_weights(c, spec)
  grams = train_style.style_targets(params, spec, [photos[0], images[1]])
  idx = np.array([1, 0], np.int32)
  got = train_style.batch_loss_terms(images, photos, params, grams, w, spec, idx)
  want = train_style.batch_loss_terms_reference(images, photos, params, grams, w, spec, idx)
  for k in ('content', 'style', 'tv', 'total'):
    np.testing.assert_allclose(float(got[k]), float(want[k]), rtol=2e-5, err_msg=k)
  # conv_dtype reaches the training loss: bfloat16 operands move it a little, not more.
  c.conv_dtype, c.style = 'bfloat16', str(IMAGES / 'starry_night.jpg')
  loop_lib.validate(c)
  spec16 = train_style.objective_spec(c)
  assert spec16.conv_dtype == 'bfloat16'
  got16 = train_style.batch_loss_terms(images, photos, params, grams, w, spec16, idx)
  assert float(got16['total']) != float(got['total'])
  np.testing.assert_allclose(float(got16['total']), float(got['total']), rtol=3e-2)
  c.conv_dtype = 'float16'
  with pytest.raises(ConfigError, match='conv_dtype'):
    loop_lib.validate(c)


def test_training_checkpoints_from_before_a_new_field_still_resume():
  import ml_collections
  c = train_schema.train_config()
  old = ml_collections.ConfigDict({k: v for k, v in c.to_dict().items() if k != 'conv_dtype'})
  assert checkpoints.resume_key(old, 'train') == checkpoints.resume_key(c, 'train')
  c.conv_dtype = 'bfloat16'
  assert checkpoints.resume_key(c, 'train') != checkpoints.resume_key(old, 'train')


def test_cli_training_folder_without_images_is_one_error_line(tmp_path):
  import subprocess
  import sys  # pylint: disable=g-import-not-at-top,multiple-imports
  root = Path(__file__).resolve().parents[3]
  (tmp_path / 'empty').mkdir()
  r = subprocess.run([sys.executable, 'run.py', '--config=configs/johnson2016_cpu.py',
                      f'--style={IMAGES / "starry_night.jpg"}', f'--output={tmp_path / "m"}',
                      f'--config.data_dir={tmp_path / "empty"}'], cwd=root, capture_output=True,
                     text=True, timeout=120)
  assert r.returncode == 1, r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith('error: training photos folder')
  assert not (tmp_path / 'm' / 'model.npz').exists()
