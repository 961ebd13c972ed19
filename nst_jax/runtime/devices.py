"""What the device offers: the convolution precision a run uses when its config says ``auto``.

``conv_dtype='auto'`` resolves per device kind (:data:`AUTO_CONV_DTYPE`, keyed by
:func:`device_class`), each choice from the quality-at-time curves
(``bench.time_to_quality``, 256 px, the default preset from the photo):

* CPUs with AMX bfloat16 tiles (``amx_bf16`` in ``/proc/cpuinfo``, Intel Xeon 4th generation
  and later): ``bfloat16``. On the 2-core Xeon a VGG19 evaluation took 0.17 s against float32's
  0.26 s at 192x256, and with L-BFGS's first step floored (``optimizer.first_step``, set by the
  default preset) the curves matched float32's quality at each step count
  (docs/results/2026-12-07-bfloat16-default.md).
* Other CPUs, those with only ``avx512_bf16`` included: ``float32``. On the 2-core EPYC
  (avx512_bf16, no AMX) a whole 100-step run was no faster in bfloat16 (49 s against 55 s
  cold; docs/results/2026-12-03-time-to-quality.md).
* GPUs and TPUs: ``float32`` until their curves are measured (``conv_dtype=bfloat16`` is there
  to try; a GPU without bfloat16 units, compute capability below 8.0, refuses it).

``conv_dtype=float32`` is always available. A run's summary JSON records the resolved value.
"""

from __future__ import annotations

import functools
from typing import Iterable, Optional

import jax

from nst_jax.errors import ConfigError

CONV_DTYPES = ('float32', 'bfloat16')
CONV_DTYPE_CHOICES = ('auto',) + CONV_DTYPES
# Device class (device_class) -> what 'auto' means there (the module docstring: measurements).
AUTO_CONV_DTYPE = {'cpu': 'float32', 'cpu_amx': 'bfloat16', 'gpu': 'float32', 'tpu': 'float32'}


@functools.lru_cache(maxsize=None)
def cpu_flags(path: str = '/proc/cpuinfo') -> frozenset:
  """This machine's CPU feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
  try:
    with open(path, encoding='utf-8', errors='replace') as f:
      for line in f:
        if line.startswith('flags'):
          return frozenset(line.split(':', 1)[1].split())
  except OSError:
    pass
  return frozenset()


def device_class(device=None, flags: Optional[Iterable[str]] = None) -> str:
  """The key of :data:`AUTO_CONV_DTYPE` for ``device``: its platform, ``'cpu_amx'`` for a CPU
  with AMX bfloat16 tiles (``flags``: the CPU's feature flags, default :func:`cpu_flags`)."""
  device = device if device is not None else jax.devices()[0]
  if device.platform == 'cpu':
    return 'cpu_amx' if 'amx_bf16' in (cpu_flags() if flags is None else set(flags)) else 'cpu'
  return device.platform


def _gpu_capability(device) -> Optional[float]:
  cap = getattr(device, 'compute_capability', None)
  try:
    return float(cap) if cap is not None else None
  except (TypeError, ValueError):
    return None


def supported_conv_dtypes(device=None) -> tuple[str, ...]:
  """The convolution precisions ``device`` (default: the first device) can run."""
  device = device if device is not None else jax.devices()[0]
  if device.platform == 'gpu':
    cap = _gpu_capability(device)
    if cap is not None and cap < 8.0:
      return ('float32',)
  return CONV_DTYPES


def default_conv_dtype(device=None, flags: Optional[Iterable[str]] = None) -> str:
  """What ``conv_dtype='auto'`` means on ``device`` (default: the first device; ``flags``: as in
  :func:`device_class`)."""
  return AUTO_CONV_DTYPE.get(device_class(device, flags), 'float32')


def resolve_conv_dtype(name: str, device=None) -> str:
  """``auto`` -> this device's default; a named precision is checked against the device."""
  if name not in CONV_DTYPE_CHOICES:
    raise ConfigError(f'unknown conv_dtype {name!r}; choose one of {", ".join(CONV_DTYPE_CHOICES)}')
  device = device if device is not None else jax.devices()[0]
  if name == 'auto':
    return default_conv_dtype(device)
  can = supported_conv_dtypes(device)
  if name not in can:
    raise ConfigError(f'conv_dtype={name} cannot run on {device.device_kind} '
                      f'({device.platform}); it can run {", ".join(can)}')
  return name
