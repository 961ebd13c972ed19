"""Fine-tuning new styles into an N-style network (Dumoulin et al. 2017, integrating new styles).

Structure tests use a tiny 3-style network with random weights in the model-directory format
(64 px photos, a few steps); one test fine-tunes the real built-in 26-style network at 32 px and
checks through the fast job that its 26 styles' outputs stay bit for bit the same.
"""

import dataclasses
import json
from pathlib import Path
import shutil

import numpy as np
import pytest

from conftest import IMAGES, SHARED, run_cli

from nst_jax.config import fast as fast_schema
from nst_jax.config import train as train_schema
from nst_jax.config.schema import load_preset
from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import checkpoints
from nst_jax.io import images as image_io
from nst_jax.io import metric_writers as metrics
from nst_jax.jobs import fast
from nst_jax.jobs import train as train_lib
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.runtime import interrupt
from nst_jax.training import loop as loop_lib
from nst_jax.training.tasks import finetune

PHOTOS = SHARED / 'datasets' / 'bsds500_trainval'
STARRY = str(IMAGES / 'starry_night.jpg')
ADAIN_DECODER = Path(__file__).resolve().parents[3] / 'weights' / 'adain_decoder'  # no gamma/beta
TINY = networks.NetworkConfig(down_widths=(8, 8, 8), residual_blocks=1, up_widths=(4, 4),
                              num_styles=3, output_activation='sigmoid', norm_last=True,
                              use_bias=False)


def _random_model(config: networks.NetworkConfig, seed: int) -> dict:
  """Random kernels and distinct random gamma/beta rows (a stand-in for a trained network)."""
  rng = np.random.default_rng(seed)
  params = network_params.nested_from_flax(network_params.init_params(config, seed))
  for p in params.values():
    if 'gamma' in p:
      p['gamma'] = (1. + 0.3 * rng.normal(size=p['gamma'].shape)).astype(np.float32)
      p['beta'] = (0.3 * rng.normal(size=p['beta'].shape)).astype(np.float32)
  return params


@pytest.fixture(scope='module')
def tiny_photos(tmp_path_factory):
  """Two 64x64 training photos: with 64 px crops, no flips and batch 2 every batch holds both,
  so the per-step losses are comparable."""
  d = tmp_path_factory.mktemp('photos')
  for f in image_io.list_images(PHOTOS)[:2]:
    image_io.save_image(d / f'{f.stem}.png', image_io.load_image(f, shape=(64, 64)))
  return d


@pytest.fixture(scope='module')
def tiny_base(tmp_path_factory):
  d = tmp_path_factory.mktemp('base')
  return model_io.save_model(d, TINY, _random_model(TINY, 0), ['a', 'b', 'c'])


def _config(photos, base, out, **kw):
  c = train_schema.train_config()
  c.update(dict(network='finetune', style=STARRY, output=str(out), data_dir=str(photos),
                crop_size=64, batch_size=2, flip=False, style_size=64,
                content_layers='relu2_2', style_layers='relu1_1,relu2_1,relu3_1',
                style_layer_weights='', conv_impl='direct', num_steps=4, chunk=2,
                learning_rate=5e-2, sample_every=0, save_every=0, progress='none'))
  c.finetune.model, c.finetune.init = str(base), 'nearest'  # the probe's path too
  for k, v in kw.items():
    if k.startswith('finetune_'):
      c.finetune[k[len('finetune_'):]] = v
    else:
      c[k] = v
  return c


@pytest.fixture(scope='module')
def finetuned(tiny_photos, tiny_base, params, tmp_path_factory):
  out = tmp_path_factory.mktemp('finetuned') / 'model'
  return out, train_lib.run(_config(tiny_photos, tiny_base, out), params, quiet=True)


def _flat(model):
  return network_params.flatten_params(model.params)


def test_only_the_new_rows_change_and_the_loss_falls(finetuned, tiny_base):
  out, summary = finetuned
  base, model = model_io.load_model(tiny_base), model_io.load_model(out)
  assert summary['task'] == 'finetune' and summary['steps'] == 4
  assert model.config == networks.NetworkConfig(**dict(TINY.to_dict(), num_styles=4))
  assert model.styles == ['a', 'b', 'c', 'starry_night']
  info = json.loads((out / 'model.json').read_text())['info']
  assert info['base_styles'] == 3 and info['new_styles'] == {'3': STARRY}
  assert info['init']['method'] == 'nearest' and info['base_sha256'] == finetune.fingerprint(base)
  start = info['init']['start']['starry_night']
  assert start in ('a', 'b', 'c', 'mean')
  got, ref = _flat(model), _flat(base)
  assert sorted(got) == sorted(ref)
  changed = 0
  for k, a in ref.items():
    b = got[k]
    if k.endswith(('gamma', 'beta')):
      assert b.shape == (4,) + a.shape[1:]
      assert b[:3].tobytes() == a.tobytes(), k  # the base styles' rows: bit for bit
      init = a.mean(0) if start == 'mean' else a[base.styles.index(start)]
      changed += int(not np.array_equal(b[3], init))
    else:
      assert b.dtype == a.dtype and b.tobytes() == a.tobytes(), k  # frozen kernels: bit for bit
  assert changed == 2 * len(finetune.norm_layers(TINY))  # every new gamma and beta row moved
  # The same two photos every step: the loss of the new style falls.
  totals = [t for r in metrics.read_records(out / 'metrics.jsonl') for t in r['step_totals']]
  assert len(totals) == 4 and totals[-1] < 0.95 * totals[0], totals
  # The nearest start is the lowest-loss candidate: never above the mean's loss.
  assert info['init']['start_loss'][0] <= info['init']['mean_loss'][0]
  # The fast job uses the new style, alone and mixed with an old one.
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)
  y3 = fast.stylize(model, photo, 3)
  assert y3.shape == photo.shape and y3.dtype == np.uint8
  assert np.abs(fast.stylize(model, photo, '0:0.5,3:0.5').astype(float) - y3).mean() > 0.5


def test_interrupt_then_resume_equals_an_uninterrupted_run(finetuned, tiny_photos, tiny_base,
                                                            params, tmp_path,
                                                            interrupt_content_at):
  out_full, _ = finetuned
  base = shutil.copytree(tiny_base, tmp_path / 'base')  # resumes must find the same base
  out = tmp_path / 'model'

  config = _config(tiny_photos, base, out)
  task = finetune.finetune_task(config, params)
  interrupt_content_at(task, 2)
  with pytest.raises(interrupt.Interrupted, match='--config.resume=True') as e:
    loop_lib.train(config, task, quiet=True)
  assert e.value.step == 2 and (out / 'checkpoint.npz').exists()
  # A base model that changed since the checkpoint is refused, naming the reason.
  original = model_io.load_model(base)
  bumped = {l: dict(p) for l, p in original.params.items()}
  bumped['res_0_0'] = dict(bumped['res_0_0'], kernel=bumped['res_0_0']['kernel'] * 1.01)
  model_io.save_model(base, original.config, bumped, original.styles)
  with pytest.raises(ConfigError, match='another base model'):
    train_lib.run(_config(tiny_photos, base, out, resume=True), params, quiet=True)
  model_io.save_model(base, original.config, original.params, original.styles)
  resumed = train_lib.run(_config(tiny_photos, base, out, resume=True), params, quiet=True)
  assert resumed['start_step'] == 2 and resumed['steps'] == 4
  with np.load(out_full / 'model.npz') as a, np.load(out / 'model.npz') as b:
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_train_all_moves_the_kernels_and_keeps_the_old_rows(tiny_photos, tiny_base, params,
                                                            tmp_path):
  out = tmp_path / 'all'
  train_lib.run(_config(tiny_photos, tiny_base, out, num_steps=2, finetune_train_all=True,
                        finetune_init='mean'), params, quiet=True)
  got, ref = _flat(model_io.load_model(out)), _flat(model_io.load_model(tiny_base))
  assert all(not np.array_equal(got[k], ref[k]) for k in ref if k.endswith('kernel'))
  for k in ref:
    if k.endswith(('gamma', 'beta')):
      assert got[k][:3].tobytes() == ref[k].tobytes(), k


def test_init_rows():
  base = model_io.Model(TINY, _random_model(TINY, 1), ['a', 'b', 'c'])
  mean, ident = finetune.mean_rows(base, 2), finetune.identity_rows(base, 2)
  for l in finetune.norm_layers(TINY):
    np.testing.assert_allclose(mean[l]['gamma'], np.stack([base.params[l]['gamma'].mean(0)] * 2),
                               rtol=1e-6)
    assert (ident[l]['gamma'] == 1).all() and (ident[l]['beta'] == 0).all()
  # nearest: per new style, the candidate (base style or the mean) of lowest loss.
  losses = np.array([[5., 1.], [2., 7.], [9., 9.], [3., 0.5]])  # (N + 1 candidates, K = 2)
  rows, names = finetune.nearest_rows(base, losses)
  assert names == ['b', 'mean']
  l0 = finetune.norm_layers(TINY)[0]
  assert rows[l0]['beta'][0].tobytes() == base.params[l0]['beta'][1].tobytes()
  np.testing.assert_allclose(rows[l0]['beta'][1], base.params[l0]['beta'].mean(0), rtol=1e-6)


def test_builtin_styles_stay_bit_identical_in_the_fast_job(tiny_photos, params, tmp_path):
  """The real 26-style network: two steps at 32 px, then the fast job on a tiny photo."""
  out = tmp_path / 'multistyle'
  c = _config(tiny_photos, '', out, crop_size=32, style_size=32, batch_size=1, num_steps=2,
              finetune_init='mean')
  train_lib.run(c, params, quiet=True)
  model = model_io.load_model(out)
  assert model.num_styles == 27 and model.styles[26] == 'starry_night'
  photo = tmp_path / 'photo.png'
  image_io.save_image(photo, image_io.load_image(IMAGES / 'tubingen.jpg', shape=(24, 32)))

  def fast_job(model_dir, style, name):
    f = fast_schema.fast_config()
    f.update(dict(content=str(photo), output=str(tmp_path / name), model=model_dir,
                  style_index=style, quiet=True))
    fast.run(f)
    return image_io.load_image(tmp_path / name)

  before = fast_job('', '7', 'before.png')
  after = fast_job(str(out), '7', 'after.png')
  assert before.tobytes() == after.tobytes()
  # Below the uint8 rounding too: the built-in parameters, bit for bit (one-hot mixing of the
  # longer table then picks the same rows exactly).
  builtin = fast.get_model(None)
  for k, a in _flat(builtin).items():
    assert _flat(model)[k][:a.shape[0]].tobytes() == a.tobytes(), k
  new = fast_job(str(out), '26', 'new.png')
  mixed = fast_job(str(out), '7:0.5,26:0.5', 'mixed.png').astype(float)
  assert np.abs(new.astype(float) - before).mean() > 1.
  assert np.abs(mixed - before).mean() < np.abs(new.astype(float) - before).mean()


def _rgba(path: Path, alpha: int, size=(64, 64)) -> str:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.new('RGBA', size, (200, 30, 30, alpha)).save(path)
  return str(path)


def test_bad_inputs_are_one_error_and_write_nothing(tiny_photos, tiny_base, params, tmp_path):
  small = tmp_path / 'small.png'
  image_io.save_image(small, image_io.load_image(STARRY, shape=(20, 24)))
  single = model_io.save_model(tmp_path / 'single', dataclasses.replace(TINY, num_styles=1),
                               _random_model(dataclasses.replace(TINY, num_styles=1), 2))
  (tmp_path / 'empty').mkdir()
  cases = [
      (dict(style=_rgba(tmp_path / 'clear.png', 0)), ImageError, 'fully transparent'),
      (dict(style=f'{STARRY},{small}'), ImageError, 'too small'),
      (dict(finetune_model=str(single)), model_io.ModelError, 'single-style'),
      (dict(finetune_model=str(tmp_path / 'empty')), model_io.ModelError, 'no model.json'),
      (dict(finetune_model=str(ADAIN_DECODER)), model_io.ModelError, 'not an nst_jax transformer'),
      (dict(finetune_model=str(tmp_path / 'nowhere')), model_io.ModelError, 'does not exist'),
      (dict(finetune_init='random'), ConfigError, 'finetune.init'),
  ]
  for i, (kw, error, message) in enumerate(cases):
    out = tmp_path / f'out{i}'
    with pytest.raises(error, match=message):
      train_lib.run(_config(tiny_photos, tiny_base, out, **kw), params, quiet=True)
    assert not out.exists(), kw
  with pytest.raises(ConfigError, match='is the base model directory'):
    train_lib.run(_config(tiny_photos, tiny_base, tiny_base), params, quiet=True)
  assert sorted(p.name for p in Path(tiny_base).iterdir()) == ['model.json', 'model.npz']
  # A semi-transparent painting is fine (composited onto white, as everywhere).
  finetune.check_painting(_rgba(tmp_path / 'half.png', 128), 64, 10 ** 7, 'relu3_1')
  # The command line: one error line, exit status 1, no output directory.
  r = run_cli('--config=configs/finetune_cpu.py', f'--style={tmp_path / "clear.png"}',
              f'--output={tmp_path / "cli"}', f'--config.finetune.model={tiny_base}',
              f'--config.data_dir={tiny_photos}', tmp_path=tmp_path, timeout=120)
  assert r.returncode == 1, r.stderr
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith('error: style image') and 'fully transparent' in last, r.stderr
  assert not (tmp_path / 'cli').exists()


def test_preset_and_checkpoints_of_other_training_configs():
  c = load_preset('finetune_cpu')
  assert c.network == 'finetune' and not c.finetune.train_all and c.finetune.model == ''
  with pytest.raises(AttributeError):
    c.no_such_field = 1  # locked
  c.style, c.output = STARRY, '/tmp/unused'
  loop_lib.validate(c)
  # Adding the finetune fields did not change the resume key of other training configs.
  import ml_collections  # pylint: disable=g-import-not-at-top
  t = train_schema.train_config()
  old = ml_collections.ConfigDict({k: v for k, v in t.to_dict().items() if k != 'finetune'})
  assert checkpoints.resume_key(old, 'train') == checkpoints.resume_key(t, 'train')
  t.finetune.train_all = True
  assert checkpoints.resume_key(t, 'train') != checkpoints.resume_key(old, 'train')
