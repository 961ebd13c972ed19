"""Sweeps: expansion, grouping, batched == single runs, chunking, sharding, contact sheet, CSV."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nst_jax.config import schema
from nst_jax.config import stylize
from nst_jax.optimize import loop
from nst_jax.optimize import problem as problem_lib
from nst_jax.optimize.sweeps import batch as batch_lib
from nst_jax.optimize.sweeps import grid as grid_lib
from nst_jax.optimize.sweeps import report
from nst_jax.optimize.sweeps import run as run_lib
from nst_jax.models import vgg
from nst_jax.errors import ConfigError

from conftest import IMAGES, ROOT

CONTENT, STYLE = str(IMAGES / 'tubingen.jpg'), str(IMAGES / 'starry_night.jpg')
STYLE2 = str(IMAGES / 'the_scream.jpg')


@pytest.fixture(scope='session')
def params(random_params):
  """Sweep tests are structural (a batch equals its single runs, chunking, sharding, outputs):
  a randomly initialised VGG19 serves them as well as the real weights."""
  return random_params


def small_config(axes: str, mode: str = 'product', steps: int = 3, **sweep_fields):
  c = stylize.base_config()
  c.content, c.style, c.size, c.num_steps, c.log_every = CONTENT, STYLE, 32, steps, 2
  c.optimizer.name, c.optimizer.learning_rate = 'adam', 2.
  c.optimizer.decay_steps, c.optimizer.decay_rate = 1, 0.5
  c.conv_impl = 'direct'  # Winograd compiles 10-25 s per program: one run below keeps it
  c.sweep.axes, c.sweep.mode, c.sweep.cost_analysis = axes, mode, False
  c.sweep.update(sweep_fields)
  return c


# --- Expansion and grouping (no compilation).


def test_product_expansion_first_axis_slowest():
  axes, points = grid_lib.expand(small_config('content_weight=1,2; style_weight=3,4,5'))
  assert [a.name for a in axes] == ['content_weight', 'style_weight']
  assert points == [{'content_weight': c, 'style_weight': s} for c in '12' for s in '345']
  cfg = grid_lib.materialize(small_config('content_weight=1'), points[5])
  assert (cfg.content_weight, cfg.style_weight, cfg.sweep.axes) == (2., 5., '')


def test_zip_expansion_and_list_values():
  c = small_config('style_layers=conv1_1+conv2_1,conv3_1; optimizer.learning_rate=0.1,1e-2; '
                   'seed=1,2', mode='zip')
  axes, points = grid_lib.expand(c)
  assert len(points) == 2 and points[1] == {'style_layers': 'conv3_1',
                                            'optimizer.learning_rate': '1e-2', 'seed': '2'}
  first, second = (grid_lib.materialize(c, p) for p in points)
  assert first.style_layers == 'conv1_1,conv2_1' and second.optimizer.learning_rate == 0.01
  assert second.seed == 2 and isinstance(second.seed, int)


@pytest.mark.parametrize('axes, mode, message', [
    ('content_weight=1,2; style_weight=1', 'zip', 'equal length'),
    ('no_such_field=1,2', 'product', 'not a config field'),
    ('optimizer=1', 'product', 'not a config field'),
    ('content_weight=abc', 'product', 'not a valid float'),
    ('content_weight', 'product', 'FIELD=V1,V2'),
    ('seed=1; seed=2', 'product', 'twice'),
    ('style_layers=conv9_9', 'product', 'unknown VGG19 layer'),
    ('content_weight=1', 'diagonal', 'sweep.mode'),
])
def test_expansion_errors(axes, mode, message):
  c = small_config(axes, mode)
  with pytest.raises(ConfigError, match=message):
    _, points = grid_lib.expand(c)
    [grid_lib.materialize(c, p) for p in points]


def test_grouping_by_static_fields():
  c = small_config('optimizer.name=adam,sgd; optimizer.learning_rate=1,2; pooling=max,avg; '
                   'content_weight=1,2; optimizer.schedule=constant,exponential; '
                   'style_layers=conv1_1,conv2_1+conv3_1')
  _, points = grid_lib.expand(c)
  configs = [grid_lib.materialize(c, p) for p in points]
  groups = grid_lib.group_indices(configs)
  assert len(groups) == 4 and all(len(g) == 16 for g in groups)   # optimiser kind x pooling
  for g in groups:
    assert len({(configs[i].optimizer.name, configs[i].pooling) for i in g}) == 1
  assert grid_lib.group_indices(configs[:1] * 3) == [[0, 1, 2]]
  mixed = batch_lib.same_schedules([configs[0], configs[2]])  # pylint: disable=protected-access
  assert {m.optimizer.schedule for m in mixed} == {'exponential'}
  assert [m.optimizer.decay_rate for m in mixed] == [1., 0.5]


def test_chunk_plan():
  plan = batch_lib.chunk_plan(5, 2, 1)
  assert [list(p) for p in plan] == [[0, 1], [2, 3], [4, 4]]
  plan = batch_lib.chunk_plan(3, 16, 4)                               # padded to the device count
  assert [list(p) for p in plan] == [[0, 1, 2, 2]]
  assert [len(p) for p in batch_lib.chunk_plan(10, 4, 1)] == [4, 4, 4]


# --- Batched runs with the real weights (32 px, 3 Adam steps).

ZIP_AXES = ('style_layers=conv1_1+conv2_1,conv1_2+conv3_3,conv2_1; '
            'optimizer.learning_rate=2,6,4; optimizer.schedule=constant,exponential,constant; '
            f'seed=0,1,2; style={STYLE},{STYLE2},{STYLE}+{STYLE2}; style_blend_weights=1,1,1+3; '
            'gram_shift=0,-1,0')


@pytest.fixture(scope='module')
def zipped(params):
  c = small_config(ZIP_AXES, mode='zip')
  c.init, c.tv_weight = 'blend', 1e-3
  return c, run_lib.execute(c, params)


def test_batch_layer_vectors(params):
  c = small_config(ZIP_AXES, mode='zip')
  _, points = grid_lib.expand(c)
  batch = batch_lib.build_batch([grid_lib.materialize(c, p) for p in points], params,
                            batch_lib.ImageCache())
  assert batch.spec.style_layers == ('block1_conv1', 'block1_conv2', 'block2_conv1',
                                     'block3_conv3')
  np.testing.assert_allclose(batch.weights.style_layers, [[.5, 0, .5, 0], [0, .5, 0, .5],
                                                          [0, 0, 1, 0]])
  np.testing.assert_allclose(batch.blend, [[1, 0], [0, 1], [.25, .75]])
  assert batch.z0.shape == (3, 24, 32, 3) and batch.hyper['learning_rate'].shape == (3,)


def test_batch_equals_single_runs(zipped, params):
  c, result = zipped
  images = batch_lib.ImageCache()
  for o in result.outcomes:
    styles = [images(p) for p in o.config.style.split(',')]
    problem = problem_lib.build_problem(o.config, params, images(CONTENT), styles)
    single = loop.optimize(problem, params, c.num_steps, c.log_every)
    np.testing.assert_allclose(o.pixels, np.asarray(single.state['z']), atol=2e-3, rtol=0)
    np.testing.assert_allclose(o.losses, single.losses, rtol=2e-5)
    assert o.terms['total'] == pytest.approx(single.terms[-1]['total'], rel=2e-5)
    assert o.finite and o.evals == single.evals


@pytest.mark.slow  # ~30 s idle; the per-config (controls) path is also test_style_objective's
def test_batch_with_a_mask_equals_single_runs(params):
  from nst_jax.losses import controls
  c = small_config('content_weight=1,30')
  c.content, c.mask, c.preserve_weight = str(IMAGES / 'brad_pitt.jpg'), str(
      IMAGES / 'brad_pitt_mask.png'), 1.
  result = run_lib.execute(c, params)
  images = batch_lib.ImageCache()
  for o in result.outcomes:
    masks, _ = controls.config_masks(o.config, 1)
    problem = problem_lib.build_problem(o.config, params, images(o.config.content), [images(STYLE)],
                                   None, masks)
    single = loop.optimize(problem, params, c.num_steps, c.log_every)
    np.testing.assert_array_equal(o.pixels, single.image)       # rendered: held pixels composed
    assert o.terms['hold'] == pytest.approx(single.terms[-1]['hold'], rel=1e-5)


def test_chunking_gives_the_same_images(zipped, params):
  c, whole = zipped
  c = c.copy_and_resolve_references()
  c.sweep.max_batch = 2
  chunked = run_lib.execute(c, params)
  assert [o.chunk for o in chunked.outcomes] == [0, 0, 1]
  assert [ch['configs'] for ch in chunked.groups[0]['timings']['chunks']] == [2, 1]
  for a, b in zip(whole.outcomes, chunked.outcomes):
    np.testing.assert_allclose(a.pixels, b.pixels, atol=2e-3, rtol=0)


SHARD_SCRIPT = """
import json, sys
import jax, numpy as np
from nst_jax.config import schema
from nst_jax.config import stylize
from nst_jax.optimize.sweeps import batch as batch_lib
from nst_jax.optimize.sweeps import grid as grid_lib
from nst_jax.optimize.sweeps import report
from nst_jax.optimize.sweeps import run as run_lib
from nst_jax.models import weights
c = stylize.base_config()
c.content, c.style, c.size, c.num_steps, c.log_every = sys.argv[2], sys.argv[3], 32, 2, 2
c.optimizer.name, c.optimizer.learning_rate, c.conv_impl = 'adam', 3., 'direct'
c.sweep.axes = 'style_weight=1e2,1e3,1e4; content_layers=conv4_2,conv3_1+conv5_1'
params = weights.load_vgg19(sys.argv[1])
runs = {}
for shard in (True, False):
  c.sweep.shard = shard
  runs[shard] = run_lib.execute(c, params)
diff = max(float(np.max(np.abs(a.pixels - b.pixels)))
           for a, b in zip(runs[True].outcomes, runs[False].outcomes))
print(json.dumps({'devices': jax.device_count(), 'diff': diff,
                  'n_devices': [g['n_devices'] for g in runs[True].groups],
                  'padded': [ch['padded'] for ch in runs[True].groups[0]['timings']['chunks']],
                  'finite': all(o.finite for o in runs[True].outcomes)}))
"""


@pytest.mark.slow  # ~30 s idle (a subprocess with 4 host devices); run with -m slow
def test_sharded_equals_unsharded_on_4_host_devices(params, tmp_path):
  from nst_jax.models import weights
  npz = tmp_path / 'vgg19.npz'
  weights.save_params({k: {n: np.asarray(a) for n, a in v.items()} for k, v in params.items()},
                      npz)
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', SHARD_SCRIPT, str(npz), CONTENT, STYLE],
                        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out['devices'] == 4 and out['n_devices'] == [4] and out['padded'] == [8]
  assert out['finite'] and out['diff'] < 1e-3


# --- Outputs.


def test_contact_sheet_geometry_and_labels():
  points = [{'a': a, 'b': b} for a in '12' for b in 'xyz']
  cells, rows, cols = report.grid(points, ['a', 'b'], ['a'])
  assert cells == [(r, c) for r in range(2) for c in range(3)]
  assert rows == ['a=1', 'a=2'] and cols == ['b=x', 'b=y', 'b=z']
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in points]
  labels = [f'a={p["a"]} b={p["b"]}\nloss=1.5' for p in points]
  sheet, corners = report.contact_sheet(images, labels, cells, rows, cols, title='t',
                                       min_width=60)
  xs, ys = sorted({x for x, _ in corners}), sorted({y for _, y in corners})
  assert len(xs) == 3 and len(ys) == 2
  assert sheet.width >= xs[-1] + 60 and sheet.height > ys[-1] + 40
  arr = np.asarray(sheet)
  for im, (x, y) in zip(images, corners):
    np.testing.assert_array_equal(arr[y:y + 40, x:x + 50], im)       # thumbnail in its cell
    assert (arr[y + 41:y + 70, x:x + 60] < 128).any()                # a label under it
  assert (arr[ys[0]:ys[0] + 12, :xs[0] - 2] < 128).any()             # row header
  assert (arr[:ys[0] - 2, xs[0]:] < 128).any()                       # column header
  # Ragged rows (zip): cells are packed left to right, no column headers.
  zpoints = [{'opt': o, 'lr': l} for o, l in [('sgd', '1'), ('adam', '2'), ('adam', '3')]]
  cells, rows, cols = report.grid(zpoints, ['opt', 'lr'], ['opt'])
  assert cells == [(0, 0), (1, 0), (1, 1)] and rows == ['opt=sgd', 'opt=adam'] and cols is None
  assert report.label('style_layers', 'block1_conv1+conv2_1') == 's_layers=conv1_1,2_1'


def test_run_sweep_writes_sheet_csv_json(params, tmp_path):
  c = small_config('content_weight=1,1e3; optimizer.learning_rate=2,4', steps=2, cell_size=24,
                   cost_analysis=True)
  c.conv_impl = 'auto'  # the CPU default (Winograd) through a whole sweep
  summary = run_lib.run_sweep(c, str(tmp_path), params, quiet=True)
  files = sorted(p.name for p in tmp_path.glob('*.png'))
  assert len(files) == 5 and 'contact_sheet.png' in files
  with open(tmp_path / 'results.csv') as fh:
    rows = list(csv.DictReader(fh))
  assert len(rows) == 4
  assert set(rows[0]) >= {'index', 'group', 'chunk', 'content_weight', 'optimizer.learning_rate',
                          'loss_content', 'loss_style', 'loss_tv', 'loss_total', 'loss_initial',
                          'steps', 'evals', 'finite', 'group_compile_s', 'chunk_run_s',
                          'run_s_per_config', 'image'}
  assert [(r['content_weight'], r['optimizer.learning_rate']) for r in rows] == [
      ('1', '2'), ('1', '4'), ('1e3', '2'), ('1e3', '4')]
  data = json.loads((tmp_path / 'results.json').read_text())
  assert len(data['results']) == 4 and len(data['groups']) == 1
  assert data['groups'][0]['flops_per_step'] > 4 * 1e8                 # 4 configs, 24x32 px
  for r, j in zip(rows, data['results']):
    assert float(r['loss_total']) == pytest.approx(j['terms']['total'], rel=1e-6)
    assert (tmp_path / r['image']).is_file() and len(j['loss_history']) == 2
    assert j['config']['content_weight'] == float(r['content_weight'])
  from PIL import Image
  sheet = Image.open(tmp_path / 'contact_sheet.png')
  assert sheet.width >= 2 * 120 and sheet.height >= 2 * 18           # 2 x 2 cells (24 px thumbs)
  assert summary['contact_sheet'] == 'contact_sheet.png'
  from nst_jax.io import metric_writers as metrics  # One metrics record per chunk (2 steps, log_every 2: one chunk).
  recs = metrics.read_records(tmp_path / 'metrics.jsonl')
  assert [(r['group'], r['chunk'], r['step'], r['configs']) for r in recs] == [(1, 1, 2, 4)]
  assert json.loads((tmp_path / 'config.json').read_text())['sweep']['axes'] == c.sweep.axes


def test_presets_expand():
  expected = {'sweep_optimizers.py': (12, 4), 'sweep_loss_weights.py': (18, 1),
              'sweep_layers.py': (12, 1)}
  for name, (n, n_groups) in expected.items():
    c = schema.load_preset(ROOT / 'configs' / name)
    _, points = grid_lib.expand(c)
    configs = [grid_lib.materialize(c, p) for p in points]
    assert len(configs) == n and len(grid_lib.group_indices(configs)) == n_groups, name
  c = schema.load_preset(ROOT / 'configs' / 'sweep_layers.py')
  _, points = grid_lib.expand(c)
  mixed = grid_lib.materialize(c, points[2])
  assert vgg.parse_layers(mixed.style_layers) == (
      'block1_conv1', 'block2_conv2', 'block3_conv3', 'block4_conv2', 'block5_conv3')


def _stop_at(n):
  calls = [0]
  def stop():
    calls[0] += 1
    return calls[0] >= n
  return stop


def test_stopped_sweep_resumes_to_the_uninterrupted_result(params, tmp_path):
  """Stop inside group 1's second chunk, resume and stop inside group 2's first chunk, resume to
  the end (each time through the npz checkpoint): every output equals the straight sweep's."""
  c = small_config('content_weight=1,2,3;size=32,40', steps=4, max_batch=2)
  c.content_layers, c.style_layers = 'conv2_2', 'conv1_1,conv2_1'  # a short VGG prefix: fast
  straight = run_lib.execute(c, params)
  key, path = run_lib.sweep_key(c), tmp_path / run_lib.CHECKPOINT
  prog = run_lib.Progress()
  first = run_lib.execute(c, params, stop=_stop_at(3), progress=prog)
  assert first.stopped and prog.partial_group == 0 and sorted(prog.finished) == [0, 2]
  run_lib.save_progress(path, prog, key)
  prog = run_lib.load_progress(path, c, key)
  second = run_lib.execute(c, params, stop=_stop_at(2), progress=prog)
  assert second.stopped and prog.partial_group == 1 and sorted(prog.finished) == [0, 2, 4]
  assert list(prog.groups) == [0]
  run_lib.save_progress(path, prog, key)
  prog = run_lib.load_progress(path, c, key)
  resumed = run_lib.execute(c, params, progress=prog)
  assert not resumed.stopped and len(resumed.outcomes) == len(straight.outcomes) == 6
  for a, b in zip(resumed.outcomes, straight.outcomes):
    assert (a.index, a.group, a.chunk, a.evals, a.finite) == (b.index, b.group, b.chunk,
                                                              b.evals, b.finite)
    # Bit-identical on CPU (the same programs from the same states); a margin for accelerators.
    np.testing.assert_allclose(a.pixels, b.pixels, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)
    for t in b.terms:
      np.testing.assert_allclose(a.terms[t], b.terms[t], rtol=1e-6)
  other = c.copy_and_resolve_references()
  other.sweep.axes = 'content_weight=1,2,4;size=32,40'
  with pytest.raises(ConfigError, match='different configuration'):
    run_lib.load_progress(path, other, run_lib.sweep_key(other))


def test_run_sweep_ctrl_c_writes_a_checkpoint_and_resume_continues(params, tmp_path,
                                                                    monkeypatch):
  from nst_jax.io import images as image_io
  from nst_jax.runtime import interrupt
  c = small_config('content_weight=1,2,3', steps=4, max_batch=2)
  c.content_layers, c.style_layers = 'conv2_2', 'conv1_1,conv2_1'
  run_lib.run_sweep(c, str(tmp_path / 'b'), params, quiet=True)
  real = interrupt.StopOnSignal

  class StopSoon(real):
    reads = 0

    @property
    def requested(self):
      StopSoon.reads += 1
      return StopSoon.reads >= 3  # inside the second chunk

  with monkeypatch.context() as m:
    m.setattr(interrupt, 'StopOnSignal', StopSoon)
    with pytest.raises(interrupt.Interrupted) as e:
      run_lib.run_sweep(c, str(tmp_path / 'a'), params, quiet=True)
  assert 'resume with: python' in str(e.value) and '--config.resume=True' in str(e.value)
  assert (tmp_path / 'a' / run_lib.CHECKPOINT).is_file()
  c.resume = True
  run_lib.run_sweep(c, str(tmp_path / 'a'), params, quiet=True)
  assert not (tmp_path / 'a' / run_lib.CHECKPOINT).exists()  # spent
  pngs = sorted(p.name for p in (tmp_path / 'b').glob('*.png'))
  assert pngs == sorted(p.name for p in (tmp_path / 'a').glob('*.png')) and len(pngs) == 4
  for name in pngs:
    np.testing.assert_allclose(image_io.load_image(tmp_path / 'a' / name).astype(float),
                               image_io.load_image(tmp_path / 'b' / name).astype(float), atol=1)
