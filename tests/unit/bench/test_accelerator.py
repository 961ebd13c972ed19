"""The accelerator suite (python -m nst_jax.bench.accelerator): the --smoke run on the CPU prints
one JSON line per target with the expected keys, and without --smoke the CPU is refused with one
line and exit status 1. The search of the largest image is checked against a linear scan."""

import json
import math
import subprocess
import sys

from conftest import ROOT, cli_env
import pytest

from nst_jax.bench.accelerator import __main__ as cli
from nst_jax.bench.accelerator import inputs as inputs_lib
from nst_jax.bench.accelerator import targets
from nst_jax.optimize import memory

KEYS = {'target', 'value', 'unit', 'goal', 'goal_source', 'met', 'device', 'size', 'seconds',
        'smoke'}


def _suite(tmp_path, *args, timeout=300):
  return subprocess.run([sys.executable, '-m', 'nst_jax.bench.accelerator', *args], cwd=ROOT,
                        env=cli_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def _lines(text):
  return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
  """The whole --smoke suite, once: (exit status, {target: line}, stderr)."""
  r = _suite(tmp_path_factory.mktemp('smoke'), '--smoke')
  lines = [json.loads(line) for line in _lines(r.stdout)]
  return r.returncode, lines, r.stderr


def test_smoke_prints_one_line_per_target(smoke):
  rc, lines, err = smoke
  assert rc == 0, err[-3000:]
  assert [line['target'] for line in lines] == list(targets.TARGETS)
  for line in lines:
    assert KEYS <= set(line), line
    assert 'error' not in line, line
    assert line['device'] == 'cpu' and line['smoke'] is True and line['met'] is None, line
    assert isinstance(line['value'], (int, float)) and math.isfinite(line['value']), line
    assert line['value'] > 0, line
    assert line['unit'] == targets.UNITS[line['target']], line
    assert line['goal'].split()[0] in ('<', '>', '>='), line
  # The one line saying there is no accelerator, on stderr.
  assert sum('no GPU or TPU found' in line for line in err.splitlines()) == 1, err[-2000:]


def test_smoke_lines_are_consistent(smoke):
  plan = inputs_lib.smoke_plan()
  by = {line['target']: line for line in smoke[1]}
  lb = by['lbfgs_500']
  assert lb['evals'] == plan.lbfgs_evals
  assert lb['value'] == pytest.approx(lb['seconds_per_eval'] * plan.lbfgs_evals, rel=1e-3,
                                      abs=1e-3)
  assert max(int(v) for v in lb['size'].split('x')) == plan.lbfgs_size
  for name, k in zip(('sweep_k8', 'sweep_k32'), plan.sweep_ks):
    s = by[name]
    assert s['k'] == k
    assert s['value'] == pytest.approx(s['sequential_s'] / s['batch_s'], rel=1e-2)
  side = f'{plan.net_size}x{plan.net_size}'
  assert by['fast_1024']['size'] == by['ghiasi_1024']['size'] == side
  g = by['ghiasi_1024']
  assert g['value'] == pytest.approx(g['predict_ms'] + g['transform_ms'], abs=0.02)
  v = by['video_1080p']
  assert v['frames'] == plan.video_frames and v['goal'] == f">= {v['clip_fps']:.4g}"
  t = by['train_johnson2016']
  assert t['minutes_for_40k_steps'] == pytest.approx(40_000 / t['value'] / 60, rel=1e-2)
  m = by['max_image']
  assert m['value'] == m['estimated_size'] and m['tries'] == 1
  assert max(int(v) for v in m['size'].split('x')) == m['value']


def test_cpu_without_smoke_exits_1_with_one_line(tmp_path):
  r = _suite(tmp_path, timeout=120)
  assert r.returncode == 1
  assert r.stdout == ''
  err = _lines(r.stderr)
  assert len(err) == 1 and err[0].startswith('error: no GPU or TPU found'), r.stderr


def test_unknown_target_is_one_error_line(capsys):
  assert cli.main(['--only=lbfgs_500,nope']) == 1
  err = _lines(capsys.readouterr().err)
  assert len(err) == 1 and "unknown target 'nope'" in err[0]


def test_largest_size_matches_a_linear_scan(tmp_path):
  """The bisection gives what checking every size of the range gives (estimates only)."""
  plan = inputs_lib.smoke_plan()
  inp = inputs_lib.Inputs(plan, tmp_path)
  size = 96  # a memory size half-way between the estimates at 96 and 112 px
  peaks = [targets.estimated_peak_mb(inp, s) for s in (size, size + plan.max_step)]
  limit = (peaks[0] + peaks[1]) / 2 / 1024 / memory.SAFETY
  found = targets.largest_size(inp, limit)
  c = targets._max_config(inp, limit)
  fitting = [s for s in range(plan.max_lo, plan.max_hi + 1, plan.max_step)
             if targets._fits(c, inp, s)]
  assert found == max(fitting) == size
  assert targets.largest_size(inp, 1e-3) == 0  # nothing fits in a megabyte


def test_goals():
  assert targets.goal_fields('lbfgs_500', 2.9)['met'] is True
  assert targets.goal_fields('lbfgs_500', 3.1)['met'] is False
  assert targets.goal_fields('video_1080p', 24., 24.)['met'] is True
  assert targets.goal_fields('train_johnson2016', 2.7)['met'] is False  # 40k steps > 4 h
  assert targets.goal_fields('fast_1024', None)['met'] is None
  overrides, steps = targets._preset_overrides('johnson2016')
  assert steps == 40_000 and 'style_layer_weights' in overrides and 'num_steps' not in overrides
  assert set(targets.GOALS) == set(targets.TARGETS) == set(targets.UNITS)
  assert memory.SAFETY < 1
