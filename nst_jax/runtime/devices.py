"""What the device offers: the convolution precision a run uses when its config says ``auto``.

``conv_dtype='auto'`` resolves per device kind (:data:`AUTO_CONV_DTYPE`), each choice from a
measurement (docs/results/2026-12-03-time-to-quality.md):

* CPUs: ``float32``, also on CPUs with bfloat16 units (``avx512_bf16``, ``amx_bf16``). On the
  2-core EPYC (avx512_bf16) the quality-at-time curves (``bench.time_to_quality``, 256 px, from
  the photo) show bfloat16 stalling L-BFGS: after 25 steps the style distance was still 0.72
  (the photo barely changed) against float32's 0.25, it caught up only at 100 steps, and a
  whole 100-step run was no faster (49 s against 55 s cold).
* GPUs and TPUs: ``float32`` until their curves are measured (``conv_dtype=bfloat16`` is there
  to try; a GPU without bfloat16 units, compute capability below 8.0, refuses it).

``conv_dtype=float32`` is always available. A run's summary JSON records the resolved value.
"""

from __future__ import annotations

from typing import Optional

import jax

from nst_jax.errors import ConfigError

CONV_DTYPES = ('float32', 'bfloat16')
CONV_DTYPE_CHOICES = ('auto',) + CONV_DTYPES
# Device platform -> what 'auto' means there (see the module docstring for the measurements).
AUTO_CONV_DTYPE = {'cpu': 'float32', 'gpu': 'float32', 'tpu': 'float32'}


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


def default_conv_dtype(device=None) -> str:
  """What ``conv_dtype='auto'`` means on ``device`` (default: the first device)."""
  device = device if device is not None else jax.devices()[0]
  return AUTO_CONV_DTYPE.get(device.platform, 'float32')


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
