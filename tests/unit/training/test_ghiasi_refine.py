"""Ghiasi embedding refinement (training/tasks/ghiasi_embedding.py) and style files
(models/ghiasi_style.py) in the arbitrary job.

Random Ghiasi and VGG19 weights, one 64x64 training photo (no flips, no rescaling: every batch is
the same crop, so losses compare across steps), a few steps; the arbitrary job's outputs are
checked against the transformer run directly on the expected embeddings.
"""

from pathlib import Path
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_cli, synthetic_image

from nst_jax import jobs
from nst_jax.config import arbitrary as arbitrary_schema
from nst_jax.config import train as train_schema
from nst_jax.config.schema import load_preset
from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.io import metric_writers as metrics
from nst_jax.jobs import train as train_job
from nst_jax.models import ghiasi, ghiasi_style
from nst_jax.runtime import interrupt
from nst_jax.training import loop as loop_lib
from nst_jax.training.tasks import feedforward
from nst_jax.training.tasks import ghiasi_embedding as task_lib

STEPS = 6


def _random_ghiasi(seed: int = 0) -> dict:
  """Flat Ghiasi params in the converted layout: fan-in scaled kernels; the norms' gamma near 1
  and beta near 0 with a real dependence on the embedding."""
  rng = np.random.default_rng(seed)
  flat = {}
  for name, shape in ghiasi.expected_shapes().items():
    if name.endswith('/bias'):
      v = np.full(shape, 1. if '/gamma/' in name else 0., np.float32)
    elif '/norm/' in name:
      v = rng.normal(0., 0.03, shape)
    else:
      fan_in = int(np.prod(shape[:-1])) if 'depthwise' not in name else 9
      v = rng.normal(0., np.sqrt(1. / fan_in), shape)
    flat[name] = np.asarray(v, np.float32)
  flat['eps'] = np.array(1e-3, np.float32)
  return flat


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp('refine')
  (d / 'photos').mkdir()
  image_io.save_image(d / 'photos' / 'a.png', synthetic_image(64, 64, 11))
  image_io.save_image(d / 'painting.png', synthetic_image(80, 96, 12))
  image_io.save_image(d / 'painting2.png', synthetic_image(64, 64, 13))
  image_io.save_image(d / 'photo.png', synthetic_image(64, 64, 14))  # the training crop's shape
  fileio.write_npz(d / 'ghiasi_random.npz', _random_ghiasi())
  return {k: str(d / v) for k, v in (('photos', 'photos'), ('painting', 'painting.png'),
                                      ('painting2', 'painting2.png'), ('photo', 'photo.png'),
                                      ('weights', 'ghiasi_random.npz'))}


def _config(files, out, **kw):
  c = load_preset('ghiasi_refine_cpu')
  c.update(dict(style=files['painting'], output=str(out), data_dir=files['photos'],
                ghiasi_weights=files['weights'], crop_size=64, batch_size=1, flip=False,
                scale_min=1.0, scale_max=1.0, style_size=64, content_layers='relu2_2',
                style_layers='relu1_1,relu2_1,relu3_1', num_steps=STEPS, chunk=3,
                learning_rate=5e-2, max_minutes=0.0, save_every=0, progress='none'))
  c.update(kw)
  return c


@pytest.fixture(scope='module')
def refined(files, random_params, tmp_path_factory):
  out = tmp_path_factory.mktemp('run') / 'painting.npz'
  summary = train_job.run(_config(files, out), random_params, quiet=True)
  return out, summary


def test_preset_is_a_locked_train_config():
  c = load_preset('ghiasi_refine_cpu')
  assert c.job == 'train' and c.network == 'ghiasi_embedding'
  assert set(train_schema.train_config().keys()) == set(c.keys())
  with pytest.raises(AttributeError):
    c.no_such_field = 1


def test_refinement_lowers_the_loss_and_writes_a_style_file(refined, files, random_params):
  out, summary = refined
  assert summary['steps'] == STEPS and summary['task'] == 'ghiasi_embedding'
  run_dir = out.with_suffix('.run')
  assert (run_dir / 'checkpoint.npz').is_file() and (run_dir / 'train.json').is_file()
  assert not (run_dir / 'model.npz').exists()
  style = ghiasi_style.load(out)
  assert style.name == 'painting' and style.embedding.shape == (100,)
  assert style.embedding.dtype == np.float32
  # Independently of the task's loss: the objective (a vmap of objective.loss_terms) of the
  # transformer's output on the training crop, at the predicted and the refined embedding.
  config = _config(files, out)
  gparams = ghiasi.load(files['weights'])
  init = task_lib.predicted_embedding(gparams, image_io.load_image(files['painting']))
  assert np.linalg.norm(style.embedding - init) > 1e-3
  spec = feedforward.objective_spec(config)
  weights = feedforward.objective_weights(config, spec)
  grams = feedforward.style_targets(random_params, spec,
                                    [image_io.load_image(files['painting'], size=64)])
  photo = jnp.asarray(image_io.load_image(Path(files['photos']) / 'a.png'), jnp.float32)[None]

  # The transformer in its other formulation ('fast'; the task trains with 'direct'), the
  # program the arbitrary job runs at this size.
  reference = jax.jit(lambda y: feedforward.batch_loss_terms_reference(
      y, photo, random_params, grams, weights, spec)['total'])

  def loss(e):
    return float(reference(ghiasi.transform(gparams, photo / 255., jnp.asarray(e)[None]) * 255.))

  before, after = loss(init), loss(style.embedding)
  assert after < 0.95 * before, (before, after)
  totals = [t for r in metrics.read_records(run_dir / 'metrics.jsonl') for t in r['step_totals']]
  assert len(totals) == STEPS and totals[-1] < totals[0]
  np.testing.assert_allclose(totals[0], before, rtol=1e-3)


def test_interrupted_refinement_resumes_to_the_same_embedding(refined, files, random_params,
                                                              tmp_path,
                                                              interrupt_content_at):
  full, _ = refined
  out = tmp_path / 'painting.npz'

  config = _config(files, out)
  task = task_lib.embedding_task(config, random_params)
  interrupt_content_at(task, 3)
  run_config = config.copy_and_resolve_references()
  run_config.output = str(task_lib.run_directory(config))
  with pytest.raises(interrupt.Interrupted, match=f'wrote {re.escape(str(out))}.*resume with'
                     ) as e:
    loop_lib.train(run_config, task, quiet=True)
  assert e.value.step == 3 and ghiasi_style.load(out).embedding.shape == (100,)
  resumed = train_job.run(_config(files, out, resume=True), random_params, quiet=True)
  assert resumed['start_step'] == 3 and resumed['steps'] == STEPS
  np.testing.assert_allclose(ghiasi_style.load(out).embedding, ghiasi_style.load(full).embedding,
                             rtol=1e-5, atol=1e-6)


def _arbitrary(files, tmp_path, name, **kw):
  c = arbitrary_schema.arbitrary_config()
  c.update(dict(content=files['photo'], output=str(tmp_path / f'{name}.png'),
                weights=files['weights'], quiet=True))
  c.update(kw)
  jobs.run(c)
  return image_io.load_image(tmp_path / f'{name}.png')


def test_arbitrary_job_takes_the_style_file_alone_mixed_and_with_strength(refined, files,
                                                                          tmp_path):
  out, _ = refined
  gparams = ghiasi.load(files['weights'])
  emb = jnp.asarray(ghiasi_style.load(out).embedding)[None]
  photo = image_io.load_image(files['photo'])
  x = jnp.asarray(photo, jnp.float32)[None] / 255.
  other = jnp.asarray(task_lib.predicted_embedding(gparams,
                                                   image_io.load_image(files['painting2'])))[None]
  own = jnp.asarray(task_lib.predicted_embedding(gparams, photo))[None]

  def want(e):
    return np.round(np.asarray(ghiasi.transform(gparams, x, e))[0] * 255.)

  for name, kw, e in (('alone', dict(style=str(out)), emb),
                      ('mixed', dict(style=f'{out},{files["painting2"]}',
                                     style_blend_weights='0.25,0.75'), 0.25 * emb + 0.75 * other),
                      ('strength', dict(style=str(out), strength=0.5), 0.5 * emb + 0.5 * own)):
    got = _arbitrary(files, tmp_path, name, **kw).astype(np.float32)
    assert np.abs(got - want(e)).max() <= 1., name
  # The file really changes the result: the painting's predicted embedding gives another image.
  assert np.abs(want(emb) - want(other)).mean() > 0.5


def _write_style(path, embedding, **meta):
  arr = np.asarray(embedding)
  m = {'format': ghiasi_style.FORMAT, 'format_version': 1, 'name': 'x', 'shape': list(arr.shape),
       'dtype': arr.dtype.str, 'sha256': ghiasi_style.checksum(arr) if arr.size else '',
       'info': {}}
  m.update(meta)
  fileio.write_npz(path, {'embedding': arr}, m)
  return path


def test_bad_style_files_are_one_clear_error(refined, tmp_path):
  out, _ = refined
  good = ghiasi_style.load(out).embedding
  raw = Path(out).read_bytes()
  (tmp_path / 'truncated.npz').write_bytes(raw[:len(raw) // 2])
  (tmp_path / 'junk.npz').write_bytes(b'not a zip file at all')
  cases = {
      'truncated.npz': 'corrupt or truncated',
      'junk.npz': 'corrupt or truncated',
      'missing.npz': 'does not exist',
      'short.npz': (_write_style(tmp_path / 'short.npz', good[:50]), 'shape (50,)')[1],
      'int.npz': (_write_style(tmp_path / 'int.npz', np.arange(100)), 'int64')[1],
      'nan.npz': (_write_style(tmp_path / 'nan.npz', np.full(100, np.nan, np.float32)),
                  'NaN/Inf')[1],
      'edited.npz': (_write_style(tmp_path / 'edited.npz', good + 1,
                                  sha256=ghiasi_style.checksum(good)), 'checksum')[1],
      'newer.npz': (_write_style(tmp_path / 'newer.npz', good, format_version=99),
                    'format version 99')[1],
      'weights.npz': (fileio.write_npz(tmp_path / 'weights.npz', {'a': np.zeros(3)}),
                      'not a Ghiasi style file')[1],
  }
  for name, match in cases.items():
    with pytest.raises(ImageError, match=re.escape(match)) as e:
      ghiasi_style.load(tmp_path / name)
    assert '\n' not in str(e.value) and name in str(e.value), name
  with pytest.raises(ImageError, match=r'shape \(3,\)'):
    ghiasi_style.save(tmp_path / 'bad.npz', np.zeros(3), 'x')
  assert not (tmp_path / 'bad.npz').exists()


def test_bad_inputs_write_nothing(refined, files, random_params, tmp_path):
  out, _ = refined
  for kw, err, match in (
      (dict(strength=1.5), ConfigError, 'strength must be in'),
      (dict(style=f'{out},{files["painting2"]}', style_blend_weights='1,-1'), ConfigError,
       'must be >= 0'),
      (dict(style=f'{out},{files["painting2"]}', style_blend_weights='1'), ConfigError,
       '1 weight'),
      (dict(method='adain'), ConfigError, 'method=ghiasi'),
      (dict(style=str(tmp_path / 'missing.npz')), ImageError, 'does not exist')):
    with pytest.raises(err, match=match):
      _arbitrary(files, tmp_path, 'never', **dict(dict(style=str(out)), **kw))
    assert not (tmp_path / 'never.png').exists() and not (tmp_path / 'never.json').exists()
  for kw, match in ((dict(output=str(tmp_path / 'x.png')), 'must be a style file'),
                    (dict(style=str(out)), 'is a style file'),
                    (dict(style=f'{files["painting"]},{files["painting2"]}'), 'one painting')):
    with pytest.raises(ConfigError, match=match):
      train_job.run(_config(files, tmp_path / 'y.npz', **kw), random_params, quiet=True)
  assert not list(tmp_path.glob('*.run')) and not (tmp_path / 'y.npz').exists()


def test_cli_truncated_style_file_is_one_error_line(refined, files, tmp_path):
  out, _ = refined
  raw = Path(out).read_bytes()
  bad = tmp_path / 'cut.npz'
  bad.write_bytes(raw[:200])
  r = run_cli('--config=configs/arbitrary.py', f'--content={files["photo"]}', f'--style={bad}',
              f'--output={tmp_path / "o.png"}', f'--config.weights={files["weights"]}',
              tmp_path=tmp_path, timeout=120)
  assert r.returncode == 1, r.stderr
  lines = [l for l in r.stderr.strip().splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'corrupt or truncated' in lines[0], r.stderr
  assert not (tmp_path / 'o.png').exists()
