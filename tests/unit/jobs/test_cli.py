"""run.py end to end in a subprocess: a real run writes PNG + JSON; bad input gives one clear
line and exit status 1, never a traceback."""

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from conftest import IMAGES, SHARED_H5, run_cli

TUBINGEN = str(IMAGES / 'tubingen.jpg')
STARRY = str(IMAGES / 'starry_night.jpg')


def test_run_writes_png_and_json(tmp_path, random_weights_file):
  out = tmp_path / 'sub' / 'result.png'
  r = run_cli('--config=configs/gatys2015.py', f'--content={TUBINGEN}', f'--style={STARRY}',
              f'--output={out}', f'--weights={random_weights_file}', '--config.size=32',
              '--config.num_steps=3', '--config.log_every=3', '--config.optimizer.name=adam',
              '--config.optimizer.learning_rate=5', tmp_path=tmp_path)
  assert r.returncode == 0, r.stderr
  assert out.is_file()
  summary = json.loads(out.with_suffix('.json').read_text())
  assert summary['config']['size'] == 32 and summary['config']['optimizer']['name'] == 'adam'
  assert summary['steps'] == 3 and len(summary['loss_history']) == 3
  assert '3/3' in r.stderr  # progress line


def test_second_run_loads_its_programs_and_gives_the_same_image(tmp_path, random_weights_file):
  """The path of every returning user: a warm process runs the executables a cold one stored
  (L-BFGS, the default optimiser). A stored program that needed registrations made while
  lowering crashed here once (a segfault: a triangular solve's LAPACK custom call)."""
  args = ['--config=configs/gatys2015.py', f'--content={TUBINGEN}', f'--style={STARRY}',
          f'--weights={random_weights_file}', '--config.size=32', '--config.num_steps=4',
          '--config.log_every=2', f'--config.compile_cache={tmp_path / "cc"}']
  outs, loaded = [], []
  for name in ('cold', 'warm'):
    out = tmp_path / f'{name}.png'
    r = run_cli(*args, f'--output={out}', tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded.append(json.loads(out.with_suffix('.json').read_text())['timings']['executables_loaded'])
    outs.append(np.asarray(Image.open(out)))
  assert loaded[0] == 0 and loaded[1] >= 2, loaded
  np.testing.assert_array_equal(outs[0], outs[1])


def test_programs_read_from_jax_cache_are_not_stored_whole(tmp_path, random_weights_file):
  """A run whose programs come from JAX's own cache (the executable store emptied, as after a
  source change) must not store them: re-serialised and loaded by the next process, XLA:CPU
  missed some of their kernels and the third run crashed ('Function wrapped_reverse not
  found')."""
  cache = tmp_path / 'cc'
  args = ['--config=configs/luminance_only.py', f'--content={TUBINGEN}', f'--style={STARRY}',
          f'--weights={random_weights_file}', '--config.size=32', '--config.num_steps=2',
          f'--config.compile_cache={cache}']
  outs = []
  for i in range(3):
    if i == 1:
      shutil.rmtree(cache / 'executables')
    out = tmp_path / f'run{i}.png'
    r = run_cli(*args, f'--output={out}', tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    outs.append(np.asarray(Image.open(out)))
  for o in outs[1:]:
    np.testing.assert_array_equal(outs[0], o)


def _assert_clean_error(r, *needles):
  assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
  assert 'Traceback' not in r.stderr, r.stderr
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1, r.stderr
  for n in needles:
    assert n in lines[0], lines[0]


BASE = ['--config=configs/gatys2015.py', '--config.size=32', '--config.num_steps=1']


@pytest.fixture
def corrupt_jpg(tmp_path):
  p = tmp_path / 'corrupt.jpg'
  p.write_bytes(Path(TUBINGEN).read_bytes()[:2000])
  return p


def test_missing_image(tmp_path):
  r = run_cli(*BASE, f'--content={tmp_path}/nope.jpg', f'--style={STARRY}',
              f'--output={tmp_path}/o.png', f'--weights={SHARED_H5}', tmp_path=tmp_path)
  _assert_clean_error(r, 'nope.jpg')


def test_corrupt_image(tmp_path, corrupt_jpg):
  r = run_cli(*BASE, f'--content={TUBINGEN}', f'--style={corrupt_jpg}',
              f'--output={tmp_path}/o.png', f'--weights={SHARED_H5}', tmp_path=tmp_path)
  _assert_clean_error(r, 'corrupt.jpg')


def test_unknown_layer(tmp_path):
  r = run_cli(*BASE, f'--content={TUBINGEN}', f'--style={STARRY}', '--config.style_layers=conv9_1',
              f'--output={tmp_path}/o.png', f'--weights={SHARED_H5}', tmp_path=tmp_path)
  _assert_clean_error(r, 'conv9_1', 'valid names')


def test_wrong_weights_file(tmp_path):
  bad = tmp_path / 'weights.h5'
  bad.write_bytes(SHARED_H5.read_bytes()[:1 << 20])  # truncated
  r = run_cli(*BASE, f'--content={TUBINGEN}', f'--style={STARRY}', f'--output={tmp_path}/o.png',
              f'--weights={bad}', tmp_path=tmp_path)
  _assert_clean_error(r, str(bad))


def test_non_positive_size(tmp_path):
  r = run_cli('--config=configs/gatys2015.py', '--config.size=0', f'--content={TUBINGEN}',
              f'--style={STARRY}', f'--output={tmp_path}/o.png', f'--weights={SHARED_H5}',
              tmp_path=tmp_path)
  _assert_clean_error(r, 'size')


def test_unwritable_output(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  r = run_cli(*BASE, f'--content={TUBINGEN}', f'--style={STARRY}',
              f'--output={blocker}/o.png', f'--weights={SHARED_H5}', tmp_path=tmp_path)
  _assert_clean_error(r, str(blocker))


@pytest.mark.slow  # a whole subprocess run; the NaN path itself is tested in-process (test_engine)
def test_nan_loss_exits_nonzero_and_keeps_image(tmp_path, random_weights_file):
  out = tmp_path / 'o.png'
  r = run_cli(*BASE, f'--content={TUBINGEN}', f'--style={STARRY}', f'--output={out}',
              f'--weights={random_weights_file}', '--config.style_weight=nan', tmp_path=tmp_path)
  _assert_clean_error(r, 'NaN')
  assert out.is_file()
