"""Structure: every preset loads, configs are locked with nearest-name errors, the job registry,
run.py's flag mapping, metrics streams and Ctrl-C. Random VGG19 and synthetic images only: none
of these needs ../shared."""

import json
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest

from nst_jax.config import schema
from nst_jax.config import stylize as stylize_schema
from nst_jax.optimize import problem
from nst_jax.io import metric_writers as metrics
from nst_jax import jobs
from nst_jax.jobs import stylize as stylize_lib
from nst_jax.optimize.sweeps import run as sweep_run
from nst_jax.errors import ConfigError

from conftest import ROOT, cli_env, run_cli

PRESETS = sorted(p for p in (ROOT / 'configs').glob('*.py') if p.name != '__init__.py')


@pytest.mark.parametrize('path', PRESETS, ids=[p.stem for p in PRESETS])
def test_every_config_file_loads_locked_with_a_job(path):
  c = schema.load_preset(path)
  assert isinstance(c, ml_collections.ConfigDict) and c.is_locked
  assert c.job in jobs.ALL_JOBS, f'{path.name}: job {c.job!r} has no runner (jobs.ALL_JOBS)'
  if c.job == 'stylize':
    problem.validate(c)
  doc = __import__(f'configs.{path.stem}', fromlist=['_']).__doc__ or ''
  assert 'run.py' in doc, f'{path.name}: the docstring must give the command that runs it'


def test_presets_import_each_other_as_a_package():
  from configs import gatys2015, novak2016  # pylint: disable=import-outside-toplevel
  assert novak2016.get_config().pooling == gatys2015.get_config().pooling


def test_misspelt_override_names_the_nearest_field():
  from nst_jax import stylize  # pylint: disable=import-outside-toplevel
  img = np.zeros((8, 8, 3), np.uint8)
  with pytest.raises(ConfigError, match="'num_stpes'.*did you mean 'num_steps'"):
    stylize(img, img, num_stpes=5)  # Raises before loading weights or compiling anything.
  c = stylize_schema.base_config()
  with pytest.raises(ConfigError, match="did you mean 'optimizer.learning_rate'"):
    schema.override(c, {'optimizer.lerning_rate': 1.})
  with pytest.raises(ConfigError, match='num_steps'):
    schema.override(c, {'num_steps': 'many'})
  schema.override(c, {'optimizer': {'name': 'adam'}, 'size': 64})
  assert (c.optimizer.name, c.size) == ('adam', 64)
  with pytest.raises(AttributeError):  # base_config() is locked: no silent new fields
    c.num_stpes = 5


def test_flags_set_fields_of_the_same_name_or_fail():
  c = stylize_schema.base_config()
  schema.apply_fields(c, {'content': 'a.jpg', 'output_dir': 'out', 'mask': None})
  assert (c.content, c.output_dir, c.mask) == ('a.jpg', 'out', '')
  with pytest.raises(ConfigError, match='--model does not apply to this config'):
    schema.apply_fields(c, {'model': 'x.onnx'})


def test_job_registry():
  assert jobs.get_job('stylize') is stylize_lib.run
  c = stylize_schema.base_config()
  schema.override(c, {'job': 'nope'})
  with pytest.raises(ConfigError, match="unknown job 'nope'; choose one of .*stylize"):
    jobs.run(c)


def test_import_contracts_hold():
  """The layers and no-circle contracts of .importlinter (lazy imports included) hold."""
  lint = Path(sys.executable).with_name('lint-imports')
  r = subprocess.run([str(lint) if lint.exists() else 'lint-imports'], cwd=ROOT,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and 'broken' in r.stdout and ' 0 broken' in r.stdout, r.stdout[-3000:]


def test_package_rules_a_reader_relies_on():
  """No module over 600 lines, no private JAX, no print() in library code (bench CLIs may
  print their JSON), no lab notes in comments."""
  package = ROOT / 'nst_jax'
  for f in sorted(package.rglob('*.py')):
    text = f.read_text()
    name = f.relative_to(ROOT)
    assert len(text.splitlines()) <= 600, f'{name} has {len(text.splitlines())} lines'
    assert 'jax._src' not in text, f'{name} uses private JAX'
    assert not re.search(r'(?i)\bissue \d+', text), f'{name} has an issue-number lab note'
    if 'bench' not in f.parts:
      assert not re.search(r'(?<![\w.])print\(', text), f'{name} prints; use nst_jax.io.log'


def test_cli_misspelt_config_field_is_one_error_line(tmp_path):
  r = run_cli('--config=configs/gatys2015.py', '--config.num_stpes=5', tmp_path=tmp_path,
              timeout=120)
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and "did you mean 'num_steps'" in lines[0], r.stderr


def test_ctrl_c_saves_image_checkpoint_metrics_then_resumes(tmp_path, synthetic_files,
                                                           random_weights_file, random_params):
  out = tmp_path / 'o.png'
  args = [sys.executable, str(ROOT / 'run.py'), '--config=configs/gatys2015.py',
          f'--content={synthetic_files["content"]}', f'--style={synthetic_files["style"]}',
          f'--output={out}', f'--weights={random_weights_file}', '--config.size=32',
          '--config.conv_impl=direct', '--config.optimizer.name=adam',
          '--config.optimizer.learning_rate=2', '--config.log_every=2']
  proc = subprocess.Popen([*args, '--config.num_steps=100000'], cwd=ROOT, env=cli_env(tmp_path),
                          stderr=subprocess.PIPE, text=True)
  metrics_file = tmp_path / 'o.metrics.jsonl'
  deadline = time.time() + 240
  while time.time() < deadline and not metrics.read_records(metrics_file):
    time.sleep(0.2)  # Wait for the first chunk's record (written and flushed per chunk).
  assert metrics.read_records(metrics_file), 'no metrics record after the first chunk'
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  assert 'Traceback' not in err, err
  last = [l for l in err.splitlines() if l.strip()][-1]
  assert last.startswith('interrupted at step ') and 'resume with: python' in last, err
  assert '--config.resume=True' in last and str(out) in last, last
  step = int(last.split()[3].rstrip(':'))
  assert step >= 2 and step % 2 == 0
  assert out.is_file() and (tmp_path / 'o.ckpt.npz').is_file()
  assert not list(tmp_path.glob('.*'))  # nothing half-written
  records = metrics.read_records(metrics_file)
  assert [r['step'] for r in records] == list(range(2, step + 1, 2))
  assert {'total', 'content', 'style', 'tv', 'evals', 'chunk_s', 'images_per_s'} <= set(records[0])
  assert json.loads((tmp_path / 'o.config.json').read_text())['size'] == 32
  summary = json.loads((tmp_path / 'o.json').read_text())
  assert summary['interrupted'] and summary['steps'] == step
  assert summary['terms_history'][-1]['total'] == records[-1]['total']  # built from the records
  # Resume for 2 more steps (in-process: reuses compiled programs): continues from the
  # checkpoint and keeps the metrics history.
  c = schema.load_preset('gatys2015')
  schema.override(c, {
      'content': synthetic_files['content'], 'style': synthetic_files['style'],
      'output': str(out), 'size': 32, 'conv_impl': 'direct', 'optimizer.name': 'adam',
      'optimizer.learning_rate': 2., 'log_every': 2, 'num_steps': step + 2, 'resume': True,
      'weights': str(random_weights_file)})
  summary = jobs.run(c, params=random_params, quiet=True)
  assert summary['steps'] == step + 2 and len(summary['loss_history']) == step + 2
  assert 'interrupted' not in json.loads((tmp_path / 'o.json').read_text())
  assert [r['step'] for r in metrics.read_records(metrics_file)] == list(range(2, step + 3, 2))


def test_sweep_stops_after_the_current_chunk(random_params, synthetic_files, tmp_path):
  c = stylize_schema.base_config()
  c.content, c.style, c.size, c.num_steps, c.log_every = (synthetic_files['content'],
                                                          synthetic_files['style'], 32, 4, 2)
  c.optimizer.name, c.optimizer.learning_rate = 'adam', 2.
  c.sweep.axes, c.sweep.max_batch, c.sweep.cost_analysis = 'style_weight=1,10,100', 2, False
  with metrics.MetricsWriter(tmp_path, c, quiet=True) as writer:
    result = sweep_run.execute(c, random_params, writer=writer, stop=lambda: True)
  assert result.stopped and result.total == 3
  assert [o.index for o in result.outcomes] == [0, 1]  # the running chunk; the next not started
  assert all(len(o.losses) == 2 for o in result.outcomes)  # at the step where it stopped
  recs = metrics.read_records(tmp_path / 'metrics.jsonl')
  assert [(r['group'], r['chunk'], r['step'], r['configs']) for r in recs] == [(1, 1, 2, 2)]
  assert json.loads((tmp_path / 'config.json').read_text())['sweep']['axes'] == c.sweep.axes
