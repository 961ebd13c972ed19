"""The one-pass network benchmark (nst_jax.bench.fast): its variants run the same network, beside
onnxruntime on the same file when it is installed."""

import pytest

from nst_jax.bench import fast as bench_fast
from nst_jax.errors import ConfigError
from nst_jax.models import convolution
from nst_jax.models import transformer as networks


def test_impl_choices_name_the_valid_ones():
  assert networks.impl_choices('fast') == (True, True)
  assert networks.impl_choices('direct') == (False, False)
  assert networks.impl_choices('fast_no_winograd', bench=True) == (True, False)
  assert networks.impl_choices('fast_xla', bench=True) == (True, True)
  assert not networks.use_native('fast_xla') and not networks.use_native('direct')
  with pytest.raises(ConfigError, match='valid: fast, direct$'):
    networks.impl_choices('fast_no_winograd')  # a benchmark variant, not a user's choice
  with pytest.raises(ConfigError, match='fast_no_winograd'):
    networks.impl_choices('winograd', bench=True)


def test_bench_without_winograd_matches_onnxruntime(monkeypatch):
  """At a size where Winograd would run (its position limit lowered), the variant without it is
  the same network: onnxruntime's output within float rounding, and the JSON says which ran."""
  pytest.importorskip('onnxruntime')
  monkeypatch.setattr(networks, 'WINOGRAD_MIN_POSITIONS', 1)
  r = bench_fast.bench_network('multistyle26', size=48, repeats=1, impl='fast_no_winograd')
  assert r['impl'] == 'fast_no_winograd' and r['HxW'] == '48x48'
  assert r['max_abs_diff_vs_onnxruntime'] < 1e-4
  assert r['seconds_per_image'] > 0 and r['onnxruntime_seconds_per_image'] > 0


def test_bench_on_and_off_the_native_convolution_match_onnxruntime():
  pytest.importorskip('onnxruntime')
  for impl in ('fast', 'fast_xla'):
    r = bench_fast.bench_network('multistyle26', size=40, repeats=1, impl=impl)
    assert r['impl'] == impl and r['max_abs_diff_vs_onnxruntime'] < 1e-4


@pytest.mark.skipif(not convolution.fused_conv_available(), reason='native convolution off')
def test_layer_times_cover_every_conv():
  r = bench_fast.layer_times('multistyle26', size=32, repeats=1)
  names = [row['layer'] for row in r['layers']]
  assert names[:3] == ['contract_0', 'contract_1', 'contract_2'] and len(names) == 3 + 12 + 3
  assert names[-1] == 'expand_2 (space-to-depth)'
  assert r['layers'][1]['input'] == [1, 32, 32, 32] and r['layers'][3]['input'] == [1, 8, 8, 32]
  assert r['total_ms'] > 0 and all(row['ms'] > 0 for row in r['layers'])
