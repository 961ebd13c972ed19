"""The AdaIN decoder's reconstruction pre-training (Li et al. 2017's decoder loss) and its units:
the loss switches by step, pre-training lowers the reconstruction error of a random decoder,
older decoders load with the same images, bad fields are one-line errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.config import schema
from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.jobs import train as train_lib
from nst_jax.models import adain, vgg
from nst_jax.training.tasks import adain as adain_task

from conftest import IMAGES, ROOT, SHARED

PHOTOS = SHARED / 'datasets' / 'bsds500_trainval'
WIDTH = 0.125


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  """Two 64x64 training photos (the crops: all of them) and one 64x64 painting."""
  d = tmp_path_factory.mktemp('data')
  files = image_io.list_images(PHOTOS)
  (d / 'photos').mkdir()
  photos = [image_io.load_image(f, shape=(64, 64)) for f in files[:2]]
  for f, photo in zip(files, photos):
    image_io.save_image(d / 'photos' / f'{f.stem}.png', photo)
  (d / 'styles').mkdir()
  image_io.save_image(d / 'styles' / 'starry.png',
                      image_io.load_image(IMAGES / 'starry_night.jpg', shape=(64, 64)))
  return d, np.stack(photos)


def _config(folders, out, **adain_fields):
  c = train_schema.train_config()
  c.update(dict(network='adain', style='', output=str(out), data_dir=str(folders[0] / 'photos'),
                style_dir=str(folders[0] / 'styles'), crop_size=64, batch_size=2, flip=False,
                conv_impl='direct', num_steps=12, chunk=6, learning_rate=1e-3, sample_every=0,
                save_every=0, progress='none'))
  c.net.width = WIDTH
  c.adain.update(adain_fields)
  return c


@jax.jit
def _reconstruction_error(decoder, params, photo):
  """The reconstruction loss of (N, H, W, 3) photos (pixel + feature, weights 1 and 1)."""
  x = jnp.asarray(photo, jnp.float32)
  return adain.reconstruction_loss_terms(decoder, params, x, 1., 1., WIDTH)['total']


def test_pretraining_lowers_the_reconstruction_error(folders, params, tmp_path):
  c = _config(folders, tmp_path / 'decoder', pretrain_steps=12)  # >= num_steps: pre-training only
  assert adain_task.loss_mode(c) == 'reconstruction'
  summary = train_lib.run(c, params, quiet=True)
  assert summary['loss'] == 'reconstruction' and summary['pretrain_steps'] == 12
  first, last = summary['history'][0], summary['history'][-1]
  assert last['total'] < first['total'], summary['history']
  lines = (tmp_path / 'decoder' / 'metrics.jsonl').read_text().splitlines()
  records = [json.loads(l) for l in lines]
  assert all(r['pixel'] > 0 and r['feature'] > 0 and r['style'] == 0 for r in records)
  decoder, width = adain.load_decoder(tmp_path / 'decoder')
  assert width == WIDTH
  meta = json.loads((tmp_path / 'decoder' / 'model.json').read_text())
  assert meta['output_scale'] == 255.
  assert meta['input_scale'] == adain.FEATURE_SCALE['block4_conv1']
  # The photos' reconstruction error (pixel + feature) falls: 4.33 -> 3.04 when written.
  before = float(_reconstruction_error(adain.init_decoder(0, WIDTH), params, folders[1]))
  after = float(_reconstruction_error(decoder, params, folders[1]))
  assert after < 0.85 * before, (before, after)


def test_the_loss_switches_at_pretrain_steps(params):
  sampler = adain_task.PhaseSampler(3, 2)
  assert [float(sampler.batch(s)[0]) for s in (0, 2, 3, 9)] == [1., 1., 0., 0.]
  assert sampler.batch(0).shape == (2,)
  rng = np.random.default_rng(0)
  content = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
  style = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
  decoder = adain.init_decoder(1, WIDTH)
  both = adain_task._adain_loss(WIDTH, 'direct', 10., 1., 'both', 2., 0.5)  # pixel 2, feature .5

  @jax.jit  # One program for all of it (op by op, the losses took ~40 s to compile).
  def run(content, style):
    batch = lambda flag: {'content': content, 'style': style, 'pretrain': jnp.full((2,), flag)}
    f = adain.encode(params, content)['block4_conv1']
    out = adain.Decoder(WIDTH).apply({'params': decoder}, f)
    return (both(decoder, batch(1.), {'vgg': params}), both(decoder, batch(0.), {'vgg': params}),
            adain.reconstruction_loss_terms(decoder, params, content, 2., 0.5, WIDTH),
            adain.loss_terms(decoder, params, content, style, 10., WIDTH), out)

  pre, post, recon, transfer, out = run(content, style)
  for (total, terms), want in ((pre, recon), (post, transfer)):
    np.testing.assert_allclose(float(total), float(want['total']), rtol=1e-4)
    assert set(terms) == set(adain_task.TERMS)
    for k, v in want.items():
      np.testing.assert_allclose(float(terms[k]), float(v), rtol=1e-4, err_msg=k)
  assert float(pre[1]['style']) == 0. and float(post[1]['pixel']) == 0.
  # Independently: the pixel term is the mean squared error in 0..1 units of the decoded photos.
  want_pixel = 2. * np.mean(((np.asarray(out) - content) / 255.) ** 2)
  np.testing.assert_allclose(float(recon['pixel']), want_pixel, rtol=1e-4)


def test_decoder_units_and_older_decoders(tmp_path):
  decoder = adain.init_decoder(2, WIDTH)
  # Zero features: every hidden unit is 0, the output is the output conv's bias, the mean colour.
  out = jax.jit(adain.Decoder(WIDTH).apply)({'params': decoder}, jnp.zeros((1, 2, 2, 512)))
  np.testing.assert_allclose(np.asarray(out)[0, 0, 0], vgg.BGR_MEAN[::-1], rtol=1e-5)
  # The losses score the image as saved: clipped values, the identity's gradient.
  x = jnp.asarray([-20., 100., 300.])
  np.testing.assert_allclose(np.asarray(adain.as_saved(x)), [0., 100., 255.])
  np.testing.assert_allclose(np.asarray(jax.grad(lambda v: jnp.sum(adain.as_saved(v) * 2.))(x)),
                             [2., 2., 2.])
  # A decoder saved before the units were recorded (raw relu4_1 in, 0..255 out) loads as the same
  # function: its first kernel / 367 and its output conv times 255 in the file.
  old = {k: dict(v) for k, v in decoder.items()}
  old['conv1']['kernel'] = decoder['conv1']['kernel'] / adain.FEATURE_SCALE['block4_conv1']
  old['conv9'] = {n: v * 255. for n, v in decoder['conv9'].items()}
  adain.save_decoder(tmp_path / 'old', old, WIDTH)
  meta = json.loads((tmp_path / 'old' / 'model.json').read_text())
  del meta['input_scale'], meta['output_scale']
  (tmp_path / 'old' / 'model.json').write_text(json.dumps(meta))
  loaded, _ = adain.load_decoder(tmp_path / 'old')
  for layer in decoder:
    for name in ('kernel', 'bias'):
      np.testing.assert_allclose(np.asarray(loaded[layer][name]),
                                 np.asarray(decoder[layer][name]), rtol=1e-5, atol=1e-8)
  meta['output_scale'] = -1.
  (tmp_path / 'old' / 'model.json').write_text(json.dumps(meta))
  with pytest.raises(Exception, match='invalid output_scale'):
    adain.load_decoder(tmp_path / 'old')


def test_bad_fields_fail_before_any_file(folders, params, tmp_path):
  for fields, match in (({'pretrain_steps': -1}, 'pretrain_steps must be >= 0'),
                        ({'pixel_weight': 0., 'feature_weight': 0.}, 'positive sum'),
                        ({'pixel_weight': -1.}, 'must be >= 0')):
    out = tmp_path / 'never'
    with pytest.raises(ConfigError, match=match):
      train_lib.run(_config(folders, out, **fields), params, quiet=True)
    assert not out.exists()
  with pytest.raises(AttributeError):
    _config(folders, out).adain.pretrain_step = 3  # locked: a misspelt field is an error


def test_cpu_preset():
  c = schema.load_preset(str(ROOT / 'configs' / 'adain_decoder_cpu.py'))
  assert c.network == 'adain' and adain_task.loss_mode(c) == 'both'
  assert 0 < c.adain.pretrain_steps < c.num_steps and c.max_minutes > 0
  with pytest.raises(AttributeError):
    c.not_a_field = 1
