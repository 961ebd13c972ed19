"""A folder with a broken photo (fast and arbitrary jobs): the broken one is skipped with a warning
naming it, every other photo is written (completely, nothing half-written), and the run ends with
one error saying how many failed (`error:` line and exit status 1 from run.py)."""

import json

import numpy as np
import pytest

from conftest import SHARED, run_cli, synthetic_image

from nst_jax import jobs
from nst_jax.config import arbitrary as arbitrary_schema
from nst_jax.config import fast as fast_schema
from nst_jax.errors import ImageError
from nst_jax.io import images as image_io
from nst_jax.jobs import fast as fast_lib
from nst_jax.models import ghiasi
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params

# The tiny random network of test_fast.py.
TINY = networks.NetworkConfig(down_widths=(8, 16), residual_blocks=1, up_widths=(8,),
                              in_kernel=5, out_kernel=5, num_styles=3,
                              output_activation='sigmoid')
SHAPE = (37, 51)  # test_arbitrary.py's small content shape (one compiled transform)


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
  d = tmp_path_factory.mktemp('tiny_model')
  return model_io.save_model(d, TINY, network_params.init_params(TINY, seed=3), ['a', 'b', 'c'])


@pytest.fixture
def folder(tmp_path):
  """a.png and c.png (good), b.jpg: the first half of a valid JPEG (truncated)."""
  d = tmp_path / 'photos'
  d.mkdir()
  image_io.save_image(d / 'a.png', synthetic_image(*SHAPE, seed=1))
  image_io.save_image(d / 'c.png', synthetic_image(*SHAPE, seed=3))
  image_io.save_image(tmp_path / 'whole.jpg', synthetic_image(*SHAPE, seed=2))
  data = (tmp_path / 'whole.jpg').read_bytes()
  (d / 'b.jpg').write_bytes(data[:len(data) // 2])
  with pytest.raises(ImageError):  # really broken
    image_io.load_image(d / 'b.jpg')
  return d


def _warnings(err: str, name: str) -> list[str]:
  return [l for l in err.splitlines() if l.startswith('skipping ') and name in l]


def _check_outputs(out, good, expected_json, stylize):
  """Exactly the good photos' outputs (plus the summary), each complete and right."""
  assert sorted(p.name for p in out.iterdir()) == sorted([*(f'{n}.png' for n in good),
                                                          expected_json])
  for n in good:
    np.testing.assert_array_equal(image_io.load_image(out / f'{n}.png'),
                                  stylize(image_io.load_image(out.parent / 'photos' / f'{n}.png')))


def test_fast_folder_skips_the_broken_photo(tmp_path, folder, tiny_model, capsys):
  out = tmp_path / 'out'
  c = fast_schema.fast_config()
  c.update(dict(model=str(tiny_model), content=str(folder), output=str(out), batch_size=2,
                quiet=True))
  with pytest.raises(ImageError, match=r'^1 of 3 photos .*the other 2 were written'):
    fast_lib.run(c)
  err = capsys.readouterr().err
  assert len(_warnings(err, 'b.jpg')) == 1, err
  assert not _warnings(err, 'a.png') and not _warnings(err, 'c.png')
  model = model_io.load_model(tiny_model)
  _check_outputs(out, ['a', 'c'], 'fast.json', lambda im: fast_lib.stylize(model, im, 0))
  summary = json.loads((out / 'fast.json').read_text())
  assert summary['count'] == 2 and summary['failed'] == [str(folder / 'b.jpg')]
  assert summary['files'] == [str(out / 'a.png'), str(out / 'c.png')]


def test_fast_cli_exit_status_and_one_error_line(tmp_path, folder, tiny_model):
  out = tmp_path / 'out'
  r = run_cli('--config=configs/fast.py', f'--model={tiny_model}', f'--content={folder}',
              f'--output={out}', tmp_path=tmp_path)
  assert r.returncode == 1, (r.stdout, r.stderr)
  assert 'Traceback' not in r.stderr
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and '1 of 3 photos' in lines[0], r.stderr
  assert len(_warnings(r.stderr, 'b.jpg')) == 1, r.stderr
  assert sorted(p.name for p in out.iterdir()) == ['a.png', 'c.png', 'fast.json']


@pytest.fixture(scope='session')
def ghiasi_weights(tmp_path_factory):
  pytest.importorskip('onnx')  # conversion-time dependency only (as in test_arbitrary.py)
  return ghiasi.resolve(SHARED / 'weights' / 'magenta',
                        cache_dir=tmp_path_factory.mktemp('ghiasi_weights'))


def test_arbitrary_folder_skips_broken_and_too_small_photos(tmp_path, folder, ghiasi_weights,
                                                            capsys):
  # A readable photo the network refuses (under 16 px): skipped at its batch's dispatch.
  image_io.save_image(folder / 'd.png', synthetic_image(8, 8, seed=4))
  out = tmp_path / 'out'
  style = str(SHARED / 'images' / 'starry_night.jpg')
  c = arbitrary_schema.arbitrary_config()
  c.update(dict(content=str(folder), style=style, output=str(out), weights=str(ghiasi_weights),
                batch_size=1, quiet=True))
  with pytest.raises(ImageError, match=r'^2 of 4 photos .*the other 2 were written'):
    jobs.run(c)
  err = capsys.readouterr().err
  assert len(_warnings(err, 'b.jpg')) == 1 and len(_warnings(err, 'd.png')) == 1, err
  assert 'at least 16 px' in _warnings(err, 'd.png')[0]
  from nst_jax.jobs import arbitrary as arbitrary_lib
  stylizer = arbitrary_lib.ArbitraryStylizer([arbitrary_lib.load_style(style)],
                                             params=ghiasi.load(ghiasi_weights))
  _check_outputs(out, ['a', 'c'], 'arbitrary.json', stylizer)
  summary = json.loads((out / 'arbitrary.json').read_text())
  assert summary['count'] == 2
  assert summary['failed'] == [str(folder / 'b.jpg'), str(folder / 'd.png')]
