"""The one-pass network benchmark (nst_jax.bench.fast): its variants run the same network, beside
onnxruntime on the same file when it is installed."""

import pytest

from nst_jax.bench import fast as bench_fast
from nst_jax.errors import ConfigError
from nst_jax.models import transformer as networks


def test_impl_choices_name_the_valid_ones():
  assert networks.impl_choices('fast') == (True, True)
  assert networks.impl_choices('direct') == (False, False)
  assert networks.impl_choices('fast_no_winograd', bench=True) == (True, False)
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
