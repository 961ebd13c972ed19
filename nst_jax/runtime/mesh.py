"""The one place device meshes are built: a 1-D mesh over the visible devices.

Three things shard over devices, each along one named axis: sweeps (``'batch'``: one
configuration per slot), training (``'batch'``: data-parallel), and spatial sharding of one big
image (``'rows'``). Each asks :func:`make` for its mesh. With ``jax.distributed`` the devices
are every process's (``jax.devices()`` is global), so a mesh spans hosts.
"""

from __future__ import annotations

from typing import Optional

import jax
from jax.sharding import Mesh
import numpy as np

from nst_jax.errors import ConfigError


def make(axis: str, n: int = 0, what: str = 'devices') -> Mesh:
  """A 1-D mesh named ``axis`` over the first ``n`` devices (``n <= 0``: all of them); a
  ConfigError naming ``what`` asked for them when fewer are visible."""
  devices = jax.devices()
  n = len(devices) if n <= 0 else n
  if n > len(devices):
    raise ConfigError(f'{what}={n} but only {len(devices)} devices are visible; use at most '
                      f'{len(devices)} (or 0 for all)')
  return Mesh(np.asarray(devices[:n]), (axis,))


def batch_mesh(shard: bool, batch_size: Optional[int] = None) -> Optional[Mesh]:
  """The ``('batch',)`` mesh over every device when ``shard`` and there are several, else None;
  ``batch_size`` (if given) must divide evenly over the devices."""
  n = jax.device_count()
  if not shard or n == 1:
    return None
  if batch_size is not None and batch_size % n:
    raise ConfigError(f'batch_size {batch_size} must be a multiple of the {n} devices to shard '
                      'it (or set --config.shard=False)')
  return make('batch')
