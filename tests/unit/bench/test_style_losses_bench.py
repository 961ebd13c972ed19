"""bench.style_losses end to end at a tiny size: the entries it runs, its baseline timed first
and last, the ratios against their mean, and the sort implementation it records."""

import json
import subprocess
import sys

from conftest import IMAGES, ROOT, SHARED


def test_style_losses_bench_runs_and_reports_ratios(tmp_path):
  out = tmp_path / 'cost.jsonl'
  cmd = [sys.executable, '-m', 'nst_jax.bench.style_losses', '--size=32', '--steps=1',
         '--repeats=1', '--only=histogram,preset/heitz2021', f'--json={out}',
         f'--content={IMAGES / "tubingen.jpg"}', f'--style={IMAGES / "starry_night.jpg"}',
         f'--weights={SHARED / "weights" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"}']
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(x) for x in out.read_text().splitlines()]
  entries = [r['entry'] for r in lines[:-1]]
  assert entries == ['gram', 'histogram', 'preset/heitz2021', 'gram_last']
  summary = lines[-1]
  grams = summary['gram_seconds']
  assert len(grams) == 2 and all(g > 0 for g in grams)
  for r in lines[:-1]:
    assert abs(r['ratio_to_gram'] - r['seconds_per_eval'] / (sum(grams) / 2)) < 2e-3
    assert r['sort'] in ('native', 'xla') and r['HxW'].startswith('24x')
  assert lines[2]['style_loss'] == 'sliced_wasserstein' and len(lines[2]['style_layers']) > 20
