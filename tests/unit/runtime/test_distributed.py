"""Several processes as one job (jax.distributed): two local CPU processes with a localhost
coordinator and gloo collectives give what one process gives (the benchmark's merged table, a
sweep's outputs, two training steps' parameters); the collectives; an unreachable coordinator
is one error line within the timeout, not a hang.

Each multi-process test starts its processes as subprocesses (``run.py`` or ``python -c``) at
once: the one-process reference beside the two-process pair. The training one is marked slow
(``-m slow``); the others run in CI.
"""

import json
from pathlib import Path
import socket
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest

from nst_jax.config import stylize as stylize_schema
from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError, NSTError
from nst_jax.io import checkpoints
from nst_jax.io import images as image_io
from nst_jax.runtime import distributed

from conftest import ROOT, cli_env, synthetic_image

RUN = str(ROOT / 'run.py')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def env_for(tmp_path: Path) -> dict:
  """The CPU, one device per process (no forced host device count), no compilation cache (the
  processes of a pair would write the same entries at once)."""
  env = cli_env(tmp_path)
  env.pop('XLA_FLAGS', None)
  env['NST_JAX_COMPILE_CACHE'] = 'off'
  return env


def launch(commands: list[list[str]], tmp_path: Path, timeout: float = 240
           ) -> list[tuple[int, str]]:
  """Runs the commands at once in :func:`env_for`; [(returncode, stdout + stderr)]. Past
  ``timeout`` the ones still running are killed (returncode -9), with what they wrote so far."""
  env = env_for(tmp_path)
  logs = [open(tmp_path / f'process{i}.log', 'w+') for i in range(len(commands))]
  procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
           for c, f in zip(commands, logs)]
  deadline = time.monotonic() + timeout
  try:
    for p in procs:
      try:
        p.wait(timeout=max(deadline - time.monotonic(), 0.1))
      except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  out = []
  for p, f in zip(procs, logs):
    f.seek(0)
    out.append((p.returncode, f.read()))
    f.close()
  return out


def pair_flags(prefix: str, port: int, timeout_s: float = 60) -> list[list[str]]:
  """The flags of process 0 and process 1 of a two-process run (``prefix``: ``sweep.`` or
  ``''``, where the config keeps its distributed fields; ``timeout_s=0``: no timeout field)."""
  common = [f'--config.{prefix}distributed=True', f'--config.{prefix}coordinator=127.0.0.1:{port}',
            f'--config.{prefix}num_processes=2']
  if timeout_s:
    common.append(f'--config.{prefix}connect_timeout={timeout_s}')
  return [common + [f'--config.{prefix}process_id={i}'] for i in (0, 1)]


def assert_ok(results):
  for rc, text in results:
    assert rc == 0, text[-3000:]


# --- The helpers in one process, and bad set-ups (no JAX backend is touched).


def test_one_process_helpers_are_the_identity():
  assert distributed.process_count() == 1 and distributed.is_main()
  assert distributed.share([1, 2, 3]) == [1, 2, 3]
  assert distributed.gather({'a': [1.5, 2]}) == [{'a': [1.5, 2]}]
  assert distributed.any_process(True) and not distributed.any_process(False)
  distributed.barrier()


def test_unreachable_coordinator_is_an_error_within_the_timeout():
  port = free_port()  # closed again: nobody listens there
  t0 = time.monotonic()
  with pytest.raises(NSTError, match=f'cannot reach the jax.distributed coordinator at '
                     f'127.0.0.1:{port} within 1.5 s'):
    distributed.initialize(f'127.0.0.1:{port}', 2, 1, timeout_s=1.5)
  assert time.monotonic() - t0 < 5


def test_coordinator_port_in_use_is_an_error_on_process_0():
  with socket.socket() as busy:
    busy.bind(('127.0.0.1', 0))
    busy.listen()
    port = busy.getsockname()[1]
    with pytest.raises(NSTError, match=f'cannot serve the jax.distributed coordinator on port '
                       f'{port}'):
      distributed.initialize(f'127.0.0.1:{port}', 2, 0, timeout_s=5)


@pytest.mark.parametrize('args, message', [
    (('localhost', 2, 1), 'HOST:PORT'),
    (('127.0.0.1:99999', 2, 1), 'HOST:PORT'),
    (('127.0.0.1:1234', 2, 2), 'process_id must be below num_processes'),
    (('', 1, 3), 'process_id must be below num_processes'),
])
def test_bad_coordinator_settings_are_config_errors(args, message):
  with pytest.raises(ConfigError, match=message):
    distributed.initialize(*args, timeout_s=1)


def test_cli_unreachable_coordinator_is_one_error_line(tmp_path):
  port = free_port()
  t0 = time.monotonic()
  r = subprocess.run([sys.executable, RUN, '--config=configs/johnson2016_cpu.py',
                      f'--style={tmp_path}/none.png', f'--output={tmp_path}/m',
                      *pair_flags('', port, 2)[1]], cwd=ROOT, env=env_for(tmp_path),
                     capture_output=True, text=True, timeout=60)
  assert r.returncode == 1, r.stderr
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: cannot reach the jax.distributed '
                                                  f'coordinator at 127.0.0.1:{port} within 2 s')
  assert time.monotonic() - t0 < 30


def test_new_fields_leave_checkpoint_keys_as_they_were():
  """Checkpoints written before the distributed fields existed still resume."""
  c = stylize_schema.base_config()
  old = c.to_dict()
  for f in ('coordinator', 'num_processes', 'process_id', 'connect_timeout'):
    del old['sweep'][f]
  assert checkpoints.resume_key(ml_collections.ConfigDict(old)) == checkpoints.resume_key(c)
  c.sweep.coordinator, c.sweep.process_id = '10.0.0.1:1234', 3  # where, not what: same key
  assert checkpoints.resume_key(ml_collections.ConfigDict(old)) == checkpoints.resume_key(c)
  c.sweep.max_batch = 3
  assert checkpoints.resume_key(ml_collections.ConfigDict(old)) != checkpoints.resume_key(c)
  t = train_schema.train_config()
  old = {k: v for k, v in t.to_dict().items() if k not in (
      'distributed', 'coordinator', 'num_processes', 'process_id', 'connect_timeout')}
  t.distributed, t.num_processes = True, 4
  assert checkpoints.resume_key(ml_collections.ConfigDict(old), 'train') == (
      checkpoints.resume_key(t, 'train'))


# --- Two processes.

COLLECTIVES = """
import json, sys
from nst_jax.runtime import distributed as d
d.initialize('127.0.0.1:{port}', 2, int(sys.argv[1]), timeout_s=60)
import jax
d.barrier('start')
me = d.process_index()
print('RESULT ' + json.dumps({{
    'count': d.process_count(), 'devices': len(jax.devices()), 'main': d.is_main(),
    'share': d.share(list(range(5))), 'gather': d.gather({{'p': me, 'x': [0.5] * (3 * me)}}),
    'any1': d.any_process(me == 1), 'none': d.any_process(False)}}))
d.barrier('end')
"""


def _result(text: str) -> dict:
  return json.loads(next(l for l in text.splitlines() if l.startswith('RESULT '))[7:])


def test_collectives_across_two_processes(tmp_path):
  code = COLLECTIVES.format(port=free_port())
  results = launch([[sys.executable, '-c', code, str(i)] for i in (0, 1)], tmp_path, timeout=120)
  assert_ok(results)
  got = [_result(text) for _, text in results]
  gathered = [{'p': 0, 'x': []}, {'p': 1, 'x': [0.5] * 3}]
  assert got[0] == {'count': 2, 'devices': 2, 'main': True, 'share': [0, 2, 4],
                    'gather': gathered, 'any1': True, 'none': False}
  assert got[1] == dict(got[0], main=False, share=[1, 3])


def _sweep_command(out: Path, files: dict, weights: Path, *extra: str) -> list[str]:
  return [sys.executable, RUN, '--config=configs/gatys2015.py', f'--content={files["content"]}',
          f'--style={files["style"]}', f'--weights={weights}', f'--output_dir={out}',
          '--config.size=32', '--config.num_steps=2', '--config.log_every=1',
          '--config.optimizer.name=adam', '--config.optimizer.learning_rate=2',
          '--config.conv_impl=direct', '--config.init=content', '--config.content_layers=conv2_2',
          '--config.style_layers=conv1_1,conv2_1', '--config.sweep.cost_analysis=False',
          '--config.sweep.axes=content_weight=1,10;style_weight=1e3,1e4', *extra]


def test_sweep_over_two_processes_equals_one_process(tmp_path, synthetic_files,
                                                     random_weights_file):
  one, two, other = tmp_path / 'one', tmp_path / 'two', tmp_path / 'other'
  flags = pair_flags('sweep.', free_port())
  results = launch([_sweep_command(one, synthetic_files, random_weights_file),
                    _sweep_command(two, synthetic_files, random_weights_file, *flags[0]),
                    _sweep_command(other, synthetic_files, random_weights_file, *flags[1])],
                   tmp_path)
  assert_ok(results)
  assert not [p for p in other.iterdir()], 'process 1 wrote files'
  a, b = (json.loads((d / 'results.json').read_text()) for d in (one, two))
  assert len(a['devices']) == 1 and len(b['devices']) == 2
  assert len(a['results']) == len(b['results']) == 4
  for x, y in zip(a['results'], b['results']):
    assert x['values'] == y['values'] and x['image'] == y['image']
    for k in ('content', 'style', 'total'):
      np.testing.assert_allclose(y['terms'][k], x['terms'][k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(y['loss_history'], x['loss_history'], rtol=1e-5)
    pa, pb = (image_io.load_image(d / x['image']).astype(int) for d in (one, two))
    assert np.abs(pa - pb).max() <= 1
  losses = [r['terms']['total'] for r in a['results']]
  assert len(set(losses)) == 4  # the four configs differ: an image per config, not one copy


def _train_command(out: Path, photos: Path, style: str, weights: Path, *extra: str) -> list[str]:
  return [sys.executable, RUN, '--config=configs/johnson2016_cpu.py', f'--style={style}',
          f'--weights={weights}', f'--output={out}', f'--config.data_dir={photos}',
          '--config.crop_size=32', '--config.batch_size=2', '--config.style_size=32',
          '--config.num_steps=2', '--config.chunk=1', '--config.max_minutes=0',
          '--config.sample_every=0', '--config.save_every=0', '--config.flip=False',
          '--config.scale_max=1.0', '--config.conv_impl=direct', '--config.learning_rate=1e-3',
          '--config.content_layers=relu2_2', '--config.style_layers=relu1_1,relu2_1',
          '--config.style_layer_weights=', '--config.progress=none',
          # No residual blocks: a norm's shift followed by another norm gets a zero gradient, and
          # Adam turns its rounding noise into +-learning_rate steps (nothing to compare).
          '--config.net.residual_blocks=0', '--config.net.down_widths=8,16',
          '--config.net.up_widths=8', *extra]


@pytest.mark.slow  # ~30 s on 2 cores (three processes compiling a training step at once)
def test_training_over_two_processes_equals_one_process(tmp_path, synthetic_files,
                                                        random_weights_file):
  """Data-parallel over two processes (one device each, the batch of 2 split between them, the
  gradient all-reduce across processes) gives one process's parameters after two steps."""
  photos = tmp_path / 'photos'  # Two crop-sized photos: every batch holds both (the losses of
  photos.mkdir()                # the two steps are comparable), one on each process.
  for i in range(2):
    image_io.save_image(photos / f'p{i}.png', synthetic_image(32, 32, 10 + i))
  one, two, other = tmp_path / 'one', tmp_path / 'two', tmp_path / 'other'
  flags = pair_flags('', free_port())
  cmd = lambda out, *x: _train_command(out, photos, synthetic_files['style'],
                                       random_weights_file, *x)
  results = launch([cmd(one), cmd(two, *flags[0]), cmd(other, *flags[1])], tmp_path)
  assert_ok(results)
  assert not [p for p in other.iterdir()], 'process 1 wrote files'
  sa, sb = (json.loads((d / 'train.json').read_text()) for d in (one, two))
  assert (sa['processes'], len(sa['devices']), sb['processes'], len(sb['devices'])) == (1, 1, 2, 2)
  ta, tb = ([h['total'] for h in s['history']] for s in (sa, sb))
  assert ta[1] < ta[0]  # it trains
  np.testing.assert_allclose(tb, ta, rtol=1e-5)
  with np.load(one / 'model.npz') as a, np.load(two / 'model.npz') as b:
    assert a.files == b.files
    for k in a.files:  # Adam moves every parameter by ~1e-3 a step
      np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=2e-5, err_msg=k)


# Gatys et al. with plain convolutions, Adam and shallow layers: quick to compile.
PRESET = '''"""run.py --config=THIS (a test preset)"""
from nst_jax.config.schema import load_preset


def get_config():
  c = load_preset('gatys2015')
  c.conv_impl = 'direct'
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2.
  c.content_layers, c.style_layers = 'conv2_2', 'conv1_1,conv2_1'
  return c
'''


def test_benchmark_over_two_processes_equals_one_process(tmp_path, random_weights_file):
  """Each process runs its share of the pairs and writes its part; after the barrier process 0
  merges them: the table equals one process's (timings aside)."""
  d = tmp_path / 'inputs'
  for i in range(2):
    image_io.save_image(d / 'contents' / f'photo{i}.png', synthetic_image(32, 40, 10 + i))
    image_io.save_image(d / 'styles' / f'paint{i}.png', synthetic_image(40, 40, 20 + i))
  (d / 'gatys_direct.py').write_text(PRESET)
  one, two = tmp_path / 'one', tmp_path / 'two'
  cmd = lambda out, *x: [sys.executable, RUN, '--config=configs/benchmark.py',
                         f'--content={d / "contents"}', f'--style={d / "styles"}',
                         f'--output_dir={out}', f'--config.methods={d / "gatys_direct.py"}',
                         '--config.size=40', '--config.steps=2', f'--weights={random_weights_file}',
                         '--config.cell_size=32', '--config.quiet=True', *x]
  flags = pair_flags('', free_port())
  results = launch([cmd(one), cmd(two, *flags[0]), cmd(two, *flags[1])], tmp_path)
  assert_ok(results)
  a, b = (json.loads((o / 'results.json').read_text()) for o in (one, two))
  assert sorted(p.name for p in (two / 'parts').iterdir()) == ['results.0.json', 'results.1.json']
  shares = [json.loads((two / 'parts' / f'results.{i}.json').read_text())['rows'] for i in (0, 1)]
  assert [len(r) for r in shares] == [2, 2]  # two pairs each
  untimed = lambda rows: [{k: v for k, v in r.items() if k not in ('seconds', 'compile_s')}
                          for r in rows]
  ra, rb = untimed(a['rows']), untimed(b['rows'])
  assert len(ra) == 4 and [r['image'] for r in ra] == [r['image'] for r in rb]
  for x, y in zip(ra, rb):
    assert {k: v for k, v in x.items() if k != 'metrics'} == (
        {k: v for k, v in y.items() if k != 'metrics'})
    assert list(x['metrics']) == list(y['metrics'])
    np.testing.assert_allclose(list(y['metrics'].values()), list(x['metrics'].values()),
                               rtol=1e-4, atol=1e-6, err_msg=x['image'])
  same = ('key', 'contents', 'styles', 'methods', 'metrics', 'pairs', 'missing', 'unreadable')
  assert {k: a.get(k) for k in same} == {k: b.get(k) for k in same}
  assert a['pairs'] == 4 and a['missing'] == []
