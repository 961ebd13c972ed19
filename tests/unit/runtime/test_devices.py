"""conv_dtype='auto' per device kind (faked devices) and the refusal of a precision a device
cannot run."""

import types

import jax
import pytest

from nst_jax.errors import ConfigError
from nst_jax.runtime import devices


def _dev(platform, kind='fake', capability=None):
  d = types.SimpleNamespace(platform=platform, device_kind=kind)
  if capability is not None:
    d.compute_capability = capability
  return d


@pytest.mark.parametrize('device', [
    _dev('cpu', 'cpu'), _dev('gpu', 'NVIDIA H100 80GB HBM3', '9.0'), _dev('tpu', 'TPU v5 lite'),
    _dev('METAL', 'Apple M2')])
def test_auto_resolves_per_platform(device):
  want = devices.AUTO_CONV_DTYPE.get(devices.device_class(device), 'float32')
  assert devices.default_conv_dtype(device) == want
  assert devices.resolve_conv_dtype('auto', device) == want
  for name in devices.CONV_DTYPES:  # these devices run both precisions when asked
    assert devices.resolve_conv_dtype(name, device) == name


@pytest.mark.parametrize('flags, want', [
    ({'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, 'bfloat16'),  # Xeon with AMX
    ({'avx512f', 'avx512_bf16'}, 'float32'),                           # EPYC: no AMX
    (set(), 'float32')])
def test_auto_on_cpus_by_their_flags(flags, want):
  cpu = _dev('cpu', 'cpu')
  assert devices.default_conv_dtype(cpu, flags) == want
  # Accelerators ignore the host's CPU flags.
  assert devices.default_conv_dtype(_dev('gpu', 'NVIDIA H100', '9.0'), flags) == 'float32'


def test_cpu_flags_read_from_cpuinfo(tmp_path):
  f = tmp_path / 'cpuinfo'
  f.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16 amx_bf16\n\n'
               'processor\t: 1\nflags\t\t: fpu sse2 avx512_bf16 amx_bf16\n')
  assert devices.cpu_flags(str(f)) == frozenset({'fpu', 'sse2', 'avx512_bf16', 'amx_bf16'})
  assert devices.cpu_flags(str(tmp_path / 'missing')) == frozenset()
  # This machine: 'auto' follows its own flags.
  assert jax.devices()[0].platform == 'cpu'
  want = 'bfloat16' if 'amx_bf16' in devices.cpu_flags() else 'float32'
  assert devices.resolve_conv_dtype('auto') == want


def test_a_precision_the_device_cannot_run_names_what_it_can():
  old = _dev('gpu', 'Tesla V100-SXM2-16GB', '7.0')
  assert devices.supported_conv_dtypes(old) == ('float32',)
  with pytest.raises(ConfigError, match=r'cannot run on Tesla V100.*it can run float32$'):
    devices.resolve_conv_dtype('bfloat16', old)
  assert devices.resolve_conv_dtype('float32', old) == 'float32'
  assert devices.resolve_conv_dtype('auto', old) == 'float32'
  with pytest.raises(ConfigError, match="unknown conv_dtype 'half'; choose one of auto"):
    devices.resolve_conv_dtype('half')
