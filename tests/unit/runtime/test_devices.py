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
  want = devices.AUTO_CONV_DTYPE.get(device.platform, 'float32')
  assert devices.default_conv_dtype(device) == want
  assert devices.resolve_conv_dtype('auto', device) == want
  for name in devices.CONV_DTYPES:  # these devices run both precisions when asked
    assert devices.resolve_conv_dtype(name, device) == name


def test_auto_is_float32_where_the_curves_say_so():
  # bfloat16 stalled L-BFGS from the photo on the CPU (docs/results): every platform float32.
  assert set(devices.AUTO_CONV_DTYPE.values()) == {'float32'}
  assert devices.resolve_conv_dtype('auto') == 'float32'
  assert jax.devices()[0].platform == 'cpu'


def test_a_precision_the_device_cannot_run_names_what_it_can():
  old = _dev('gpu', 'Tesla V100-SXM2-16GB', '7.0')
  assert devices.supported_conv_dtypes(old) == ('float32',)
  with pytest.raises(ConfigError, match=r'cannot run on Tesla V100.*it can run float32$'):
    devices.resolve_conv_dtype('bfloat16', old)
  assert devices.resolve_conv_dtype('float32', old) == 'float32'
  assert devices.resolve_conv_dtype('auto', old) == 'float32'
  with pytest.raises(ConfigError, match="unknown conv_dtype 'half'; choose one of auto"):
    devices.resolve_conv_dtype('half')
