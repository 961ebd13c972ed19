"""The benchmark job: 2 contents x 2 styles of synthetic 40-48 px images through every kind of
method with random weights (an optimisation preset for 2 steps, a tiny trained-format fast
network, Ghiasi's networks and an AdaIN decoder, all randomly initialised); the table, the
summary and the contact sheet; resume (a rerun writes nothing new; an interrupted run resumed
equals a straight one); unreadable images; bad inputs; merging the per-process parts; the
bootstrap."""

import json
from pathlib import Path
import time

import numpy as np
import pytest

from conftest import random_lpips_arrays, run_cli, synthetic_image, write_converted

from nst_jax import jobs
from nst_jax.bench.accelerator import inputs as accel_inputs
from nst_jax.config import benchmark as benchmark_schema
from nst_jax.config import schema
from nst_jax.errors import ConfigError, NSTError
from nst_jax.evaluation import metrics as metrics_lib
from nst_jax.io import images as image_io
from nst_jax.jobs import arbitrary as arbitrary_lib
from nst_jax.jobs import benchmark as bench
from nst_jax.jobs import benchmark_report as report
from nst_jax.jobs import fast as fast_lib
from nst_jax.models import adain, ghiasi
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.runtime import interrupt

TINY = networks.NetworkConfig(down_widths=(8, 16), residual_blocks=1, up_widths=(8,),
                              in_kernel=5, out_kernel=5, num_styles=3,
                              output_activation='sigmoid')
SIZE = 48


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  """Folders of 2 photos (40x48) and 2 paintings (48x48), a tiny fast model, random Ghiasi
  weights and a random slim AdaIN decoder."""
  d = tmp_path_factory.mktemp('bench_inputs')
  for i in range(2):
    image_io.save_image(d / 'contents' / f'photo{i}.png', synthetic_image(40, 48, 10 + i))
    image_io.save_image(d / 'styles' / f'paint{i}.png', synthetic_image(48, 48, 20 + i))
  model = model_io.save_model(d / 'fast_model', TINY, network_params.init_params(TINY, seed=3),
                              ['a', 'b', 'c'])
  gpath = accel_inputs.random_ghiasi(d / 'ghiasi_random.npz', seed=0)
  adain.save_decoder(d / 'adain', adain.init_decoder(0, width=0.125), width=0.125)
  preset = d / 'gatys_direct.py'  # an optimisation preset given by its path
  preset.write_text(PRESET)
  diverging = d / 'gatys_diverging.py'  # the same with a learning rate that makes the loss NaN
  diverging.write_text(PRESET.replace('= 2.', "= float('nan')"))
  return {'content': str(d / 'contents'), 'style': str(d / 'styles'), 'model': str(model),
          'ghiasi': str(gpath), 'adain': str(d / 'adain'), 'preset': str(preset),
          'diverging': str(diverging)}


# Gatys et al. with plain convolutions and Adam: quicker to compile than L-BFGS and Winograd.
PRESET = '''"""run.py --config=THIS (a test preset)"""
from nst_jax.config.schema import load_preset


def get_config():
  c = load_preset('gatys2015')
  c.conv_impl = 'direct'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2.
  return c
'''


def _config(inputs, out, weights, **kw):
  c = benchmark_schema.benchmark_config()
  schema.override(c, {
      'content': inputs['content'], 'style': inputs['style'], 'output_dir': str(out),
      'methods': f'{inputs["preset"]},fast:{inputs["model"]}:1,ghiasi,adain', 'size': SIZE,
      'steps': 2,
      'weights': str(weights), 'ghiasi_weights': inputs['ghiasi'],
      'adain_model': inputs['adain'], 'quiet': True, 'cell_size': 48, **kw})
  return c


def _table(out):
  return json.loads((Path(out) / 'results.json').read_text())


def _results(rows):
  """Rows without their timings (the same cells of two runs agree on everything else)."""
  return [{k: v for k, v in r.items() if k not in ('seconds', 'compile_s')} for r in rows]


@pytest.fixture(scope='module')
def straight(inputs, random_weights_file, random_params, tmp_path_factory):
  out = tmp_path_factory.mktemp('bench_straight')
  summary = jobs.run(_config(inputs, out, random_weights_file), params=random_params)
  return out, summary


def test_table_summary_sheet_and_images(straight, inputs, random_params):
  out, summary = straight
  methods = [inputs['preset'], f'fast:{inputs["model"]}:1', 'ghiasi', 'adain']
  t = _table(out)
  assert t['metrics'] == list(metrics_lib.METRICS) and t['methods'] == methods
  assert t['contents'] == ['photo0.png', 'photo1.png'] and t['pairs'] == 4
  assert len(t['rows']) == 16 and t['missing'] == []
  assert [(r['content'], r['style'], r['method']) for r in t['rows']] == [
      (c, s, m) for c in t['contents'] for s in t['styles'] for m in methods]
  for r in t['rows']:
    assert (r['height'], r['width']) == (40, 48) and r['seconds'] > 0 and r['compile_s'] >= 0
    assert list(r['metrics']) == list(metrics_lib.METRICS), r
    assert all(np.isfinite(v) for v in r['metrics'].values()), r
  csv_lines = (out / 'results.csv').read_text().splitlines()
  assert csv_lines[0].split(',')[:4] == ['content_image', 'style_image', 'method', 'style_gram']
  assert len(csv_lines) == 17 and csv_lines[0].split(',')[-1] == 'missing'
  # Each method's output, made independently through the public APIs, and its metrics.
  content = image_io.load_image(Path(inputs['content']) / 'photo1.png', size=SIZE)
  style = image_io.load_image(Path(inputs['style']) / 'paint0.png', size=SIZE)
  from nst_jax import stylize  # pylint: disable=import-outside-toplevel
  want = {
      methods[0]: stylize(content, style, schema.load_preset(inputs['preset']), random_params,
                          size=SIZE, num_steps=2),
      methods[1]: fast_lib.stylize(inputs['model'], content, 1),
      'ghiasi': arbitrary_lib.stylize_arbitrary(content, style, 'ghiasi',
                                                params=ghiasi.load(inputs['ghiasi'])),
      'adain': arbitrary_lib.stylize_arbitrary(content, style, 'adain', params=random_params,
                                               model=inputs['adain'])}
  for m, image in want.items():
    row = next(r for r in t['rows'] if (r['content'], r['style'], r['method']) == (
        'photo1.png', 'paint0.png', m))
    got = image_io.load_image(out / row['image'])
    np.testing.assert_array_equal(got, image, err_msg=m)
    ref = metrics_lib.image_metrics(random_params, got, content, style)
    for k in metrics_lib.METRICS:
      assert row['metrics'][k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), (m, k)
  # The summary: per method n = 4 and a mean inside its 95% interval.
  s = json.loads((out / 'summary.json').read_text())
  assert list(s['methods']) == methods and s['bootstrap']['resamples'] == 1000
  for m in methods:
    assert s['methods'][m]['n'] == 4 and s['methods'][m]['missing'] == 0
    rows = [r for r in t['rows'] if r['method'] == m]
    for q in (*metrics_lib.METRICS, 'seconds'):
      d = s['methods'][m]['quantities'][q]
      assert d['mean'] == pytest.approx(np.mean([r['seconds'] if q == 'seconds' else
                                                 r['metrics'][q] for r in rows]))
      assert d['ci95'][0] <= d['mean'] <= d['ci95'][1]
  assert s['methods']['ghiasi']['quantities']['ssim']['higher_is_better']
  assert not s['methods']['ghiasi']['quantities']['cfsd']['higher_is_better']
  header = (out / 'summary.csv').read_text().splitlines()[0].split(',')
  assert header[:4] == ['method', 'n', 'missing', 'style_gram_mean']
  assert len((out / 'summary.csv').read_text().splitlines()) == 5
  sheet = image_io.load_image(out / 'contact_sheet.png')
  assert sheet.shape[0] > 4 * 40 and sheet.shape[1] > 6 * 48
  assert len(list((out / 'images').glob('*.png'))) == 16
  assert summary['rows'] == 16 and summary['ran'] == 16


def test_rerun_of_a_finished_benchmark_writes_nothing_new(straight, inputs, random_weights_file):
  out, _ = straight
  before = {p: p.stat().st_mtime_ns for p in (out / 'images').glob('*.png')}
  rows = _table(out)['rows']
  t = time.perf_counter()
  summary = jobs.run(_config(inputs, out, random_weights_file))  # no params: none are loaded
  assert time.perf_counter() - t < 15
  assert summary['ran'] == 0 and _table(out)['rows'] == rows
  assert {p: p.stat().st_mtime_ns for p in (out / 'images').glob('*.png')} == before
  # Another benchmark in the same folder is refused, naming what differs.
  with pytest.raises(ConfigError, match=r"size=48 there, 40 here.*another --output_dir"):
    jobs.run(_config(inputs, out, random_weights_file, size=40))


def test_interrupted_run_resumed_equals_the_straight_run(straight, inputs, random_weights_file,
                                                         random_params, tmp_path):
  methods = f'{inputs["preset"]},fast:{inputs["model"]}:1'
  config = _config(inputs, tmp_path, random_weights_file, methods=methods)
  calls = []
  stop = lambda: calls.append(1) or len(calls) == 2  # after the first pair's two images
  with pytest.raises(interrupt.Interrupted, match='interrupted at pair 1: wrote .*results.csv'):
    jobs.run(config, params=random_params, stop=stop)
  part = report.read_part(report.part_path(tmp_path, 0))
  assert len(part['rows']) == 2 and not part['complete']
  t = _table(tmp_path)
  assert len(t['rows']) == 2 and [m['reason'] for m in t['missing']] == ['not run yet'] * 6
  summary = jobs.run(config, params=random_params)
  assert summary['ran'] == 6
  want = [r for r in _table(straight[0])['rows'] if r['method'] in methods.split(',')]
  assert _results(_table(tmp_path)['rows']) == _results(want)
  assert report.read_part(report.part_path(tmp_path, 0))['complete']


def test_unreadable_image_is_skipped_with_one_warning(inputs, random_weights_file, random_params,
                                                      tmp_path, capsys):
  contents = tmp_path / 'contents'
  contents.mkdir()
  for p in Path(inputs['content']).glob('*.png'):
    (contents / p.name).write_bytes(p.read_bytes())
  (contents / 'broken.png').write_bytes(b'not a png')
  config = _config(inputs, tmp_path / 'out', random_weights_file, content=str(contents),
                   methods=f'fast:{inputs["model"]}:1')
  jobs.run(config, params=random_params)
  err = capsys.readouterr().err
  assert len([l for l in err.splitlines() if 'broken.png' in l]) == 1, err
  t = _table(tmp_path / 'out')
  assert len(t['rows']) == 4 and {(m['content'], m['style']) for m in t['missing']} == {
      ('broken.png', 'paint0.png'), ('broken.png', 'paint1.png')}
  assert all('unreadable content image' in m['reason'] for m in t['missing'])
  assert ',broken.png,' not in (tmp_path / 'out' / 'results.csv').read_text().split('\n', 1)[0]
  assert (tmp_path / 'out' / 'contact_sheet.png').is_file()


def test_a_failing_method_is_reported_missing_and_not_retried(inputs, random_weights_file,
                                                              random_params, tmp_path, capsys):
  config = _config(inputs, tmp_path, random_weights_file,
                   methods=f'{inputs["diverging"]},fast:{inputs["model"]}:1')
  summary = jobs.run(config, params=random_params)
  assert summary['ran'] == 4 and summary['methods'][inputs['diverging']]['n'] == 0
  t = _table(tmp_path)
  assert len(t['rows']) == 4 and len(t['missing']) == 4
  assert all('NaN' in m['reason'] and m['method'] == inputs['diverging'] for m in t['missing'])
  assert capsys.readouterr().err.count('failed') == 4
  assert jobs.run(config, params=random_params)['ran'] == 0
  assert (_table(tmp_path)['rows'], _table(tmp_path)['missing']) == (t['rows'], t['missing'])


@pytest.mark.parametrize('fields, match', [
    ({'methods': 'gatys2015,fats'}, r"unknown method 'fats'; a method is one of .*did you mean "
                                    r"'fast'"),
    ({'methods': ' , '}, 'methods is empty'),
    ({'methods': 'ghiasi,ghiasi'}, 'more than once'),
    ({'methods': 'arbitrary'}, 'runs the arbitrary job'),
    ({'methods': 'sweep_layers'}, 'is a sweep'),
    ({'metrics': 'ssim,cfds'}, r"unknown metric 'cfds'.*did you mean 'cfsd'"),
    ({'sheet_metrics': 'ssim', 'metrics': 'cfsd'}, "unknown sheet metric 'ssim'"),
    ({'content': ''}, 'needs --content=DIR'),
    ({'size': 0}, 'size must be >= 16'),
])
def test_bad_inputs_are_one_config_error_and_write_nothing(inputs, random_weights_file, tmp_path,
                                                           fields, match):
  out = tmp_path / 'out'
  with pytest.raises(ConfigError, match=match):
    jobs.run(_config(inputs, out, random_weights_file, **fields))
  assert not out.exists()


def test_a_bad_weights_file_fails_before_anything_is_written(inputs, tmp_path):
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(b'PK\x03\x04 truncated')
  with pytest.raises(NSTError):
    jobs.run(_config(inputs, tmp_path / 'out', bad, methods='ghiasi'))
  assert not (tmp_path / 'out').exists()


def test_cli_unknown_method_is_one_error_line(tmp_path, inputs):
  r = run_cli('--config=configs/benchmark_cpu.py', f'--content={inputs["content"]}',
              f'--style={inputs["style"]}', f'--output_dir={tmp_path / "out"}',
              '--config.methods=gatys2015,adian', tmp_path=tmp_path, timeout=120)
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert r.returncode == 1 and len(lines) == 1, r.stderr
  assert "did you mean 'adain'" in lines[0] and not (tmp_path / 'out').exists()


def test_learned_metrics_over_each_methods_outputs(straight, inputs, random_weights_file,
                                                   random_params, tmp_path):
  """LPIPS (AlexNet head, random converted weights) per method over its saved outputs, added to
  a finished benchmark by a rerun (no image is stylized again); a wrong hash fails first."""
  import shutil
  from nst_jax.evaluation import learned
  from nst_jax.errors import WeightsError
  weights = write_converted(tmp_path / 'alex.npz', 'lpips_alex', random_lpips_arrays('alex', 2))
  out = tmp_path / 'out'
  shutil.copytree(straight[0], out)
  with pytest.raises(WeightsError, match='sha256'):
    jobs.run(_config(inputs, out, random_weights_file, learned=f'lpips_alex={weights}',
                     learned_sha256='lpips_alex=' + '0' * 64), params=random_params)
  s = jobs.run(_config(inputs, out, random_weights_file, learned=f'lpips_alex={weights}'),
               params=random_params)
  assert s['ran'] == 0 and set(s['learned']) == set(s['methods'])
  rows = _table(out)['rows']
  w = learned.load_learned('lpips_alex', weights)
  for method, values in s['learned'].items():
    mine = [r for r in rows if r['method'] == method]
    outs = [image_io.load_image(out / r['image']) for r in mine]
    photos = [image_io.load_image(Path(inputs['content']) / r['content'], size=SIZE)
              for r in mine]
    want = float(np.mean(learned.lpips(w, outs, photos)))
    np.testing.assert_allclose(values['lpips_alex'], want, rtol=1e-5)
    assert values['lpips_alex'] > 0
  assert json.loads((out / 'summary.json').read_text())['learned'] == s['learned']
  with pytest.raises(ConfigError, match='fid_inceptoin|unknown'):
    jobs.run(_config(inputs, out, random_weights_file, learned='fid_inceptoin'))


def test_texture_presets_run_with_the_photo_setting_the_shape(inputs, random_weights_file,
                                                             random_params, tmp_path):
  """mode=texture_synthesis runs (from noise, no content term; the photo sets the output's
  shape); content reconstruction, which has no painting to judge, is refused."""
  preset = tmp_path / 'texture_adam.py'
  preset.write_text(PRESET.replace("load_preset('gatys2015')", "load_preset('texture_synthesis')"))
  summary = jobs.run(_config(inputs, tmp_path / 'out', random_weights_file, methods=str(preset),
                             max_contents=1, max_styles=1), params=random_params)
  (row,) = _table(tmp_path / 'out')['rows']
  assert (row['height'], row['width']) == (40, 48) and row['method'] == str(preset)
  assert all(np.isfinite(v) for v in row['metrics'].values()) and summary is not None
  recon = tmp_path / 'recon.py'
  recon.write_text(PRESET.replace('c.conv_impl',
                                  "c.mode = 'content_reconstruction'\n  c.conv_impl"))
  with pytest.raises(ConfigError, match='mode=content_reconstruction'):
    jobs.run(_config(inputs, tmp_path / 'out2', random_weights_file, methods=str(recon)),
             params=random_params)


def test_method_grammar():
  assert bench.parse_method('fast') == bench.Method('fast', 'fast')
  assert bench.parse_method('fast:7') == bench.Method('fast:7', 'fast', index=7)
  assert bench.parse_method('fast:/m/dir') == bench.Method('fast:/m/dir', 'fast', model='/m/dir')
  assert bench.parse_method(' fast:/m/dir:3') == bench.Method('fast:/m/dir:3', 'fast',
                                                              model='/m/dir', index=3)
  assert bench.parse_method('novak2016').kind == 'optimize'
  assert bench.parse_method('adain').kind == 'adain'
  assert jobs.get_job('benchmark') is bench.run
  for name in ('benchmark', 'benchmark_cpu'):
    c = schema.load_preset(name)
    assert c.job == 'benchmark' and bench.validate(c)


def _row(c, s, m, v=1.):
  return {'content': c, 'style': s, 'method': m, 'metrics': {'ssim': v}, 'seconds': 0.1,
          'compile_s': 0.,
          'height': 8, 'width': 8, 'image': report.image_name(c, s, m)}


def test_merge_parts(tmp_path):
  assert report.merge_parts(tmp_path)['key'] is None
  report.write_part(tmp_path, 0, 2, 'k', [_row('a', 'x', 'm'), _row('b', 'x', 'm')],
                    [{'content': 'a', 'style': 'y', 'method': 'm', 'reason': 'boom'}], True)
  report.write_part(tmp_path, 1, 2, 'k', [_row('a', 'y', 'm', 2.), _row('b', 'x', 'm', 3.)],
                    [{'content': 'b', 'style': 'y', 'method': 'm', 'reason': 'bang'}], False)
  merged = report.merge_parts(tmp_path)
  assert merged['key'] == 'k' and not merged['complete']
  assert [(r['content'], r['style'], r['metrics']['ssim']) for r in merged['rows']] == [
      ('a', 'x', 1.), ('a', 'y', 2.), ('b', 'x', 3.)]  # a result replaces a failure
  assert [(r['content'], r['style']) for r in merged['failed']] == [('b', 'y')]
  rows, missing = report.table(merged, [('a', 'x'), ('a', 'y'), ('b', 'y'), ('c', 'x')], ['m'],
                               {('content', 'c'): 'unreadable content image'})
  assert len(rows) == 2 and [m['reason'] for m in missing] == ['bang', 'unreadable content image']
  report.write_part(tmp_path, 2, 3, 'other', [], [], True)
  with pytest.raises(ConfigError, match='mixes two benchmarks'):
    report.merge_parts(tmp_path)


def test_bootstrap_interval():
  rng = np.random.default_rng(5)
  x = rng.normal(3., 2., size=(400, 2)) * [1., 10.]
  mean, lo, hi = report.bootstrap(x, 1000, seed=0)
  np.testing.assert_allclose(mean, x.mean(0))
  half = 1.96 * x.std(0) / np.sqrt(len(x))  # the normal approximation of the mean's interval
  np.testing.assert_allclose(hi - lo, 2 * half, rtol=0.15)
  np.testing.assert_allclose((hi + lo) / 2, mean, atol=0.25 * half.max())
  again = report.bootstrap(x, 1000, seed=0)
  np.testing.assert_array_equal(again[1], lo)
  assert not np.array_equal(report.bootstrap(x, 1000, seed=1)[1], lo)
  one = report.bootstrap(x[:1], 100)
  np.testing.assert_array_equal(one[1], x[0]) and np.testing.assert_array_equal(one[2], x[0])
  assert np.all(np.isnan(report.bootstrap(np.zeros((0, 2)))[0]))
