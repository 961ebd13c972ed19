"""Spatial sharding: one image split over devices along its rows (``config.spatial_shards``).

For images no single device holds, the image, its gradient, the optimiser's history and the
content targets are split along the image's row axis over a 1-D device mesh; the VGG weights
and the (small) Gram targets are replicated. Nothing else changes: the same jitted programs
are compiled for sharded inputs and XLA's SPMD partitioner inserts the halo exchanges the 3x3
convolutions and 2x2 poolings need, and the reductions of the Gram matrices and losses. Results
equal the single-device run within float rounding (tested on 4 forced host CPU devices:
``XLA_FLAGS=--xla_force_host_platform_device_count=4``).

An axis that does not divide evenly by the device count stays replicated (correct, uses more
memory); choose a size whose height (and every layer's, /16 for block 5) divides by the count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nst_jax.runtime import mesh as mesh_lib

AXIS = 'rows'


def _put(x, mesh: Mesh, axis: int | None):
  """Places x on the mesh, split along ``axis`` when that divides evenly, else replicated."""
  if x is None or not hasattr(x, 'shape'):
    return x
  n = mesh.shape[AXIS]
  spec = P()
  if axis is not None and x.ndim > axis and x.shape[axis] % n == 0:
    spec = P(*([None] * axis + [AXIS]))
  return jax.device_put(x, NamedSharding(mesh, spec))


def replicate(tree, mesh: Mesh):
  return jax.tree.map(lambda x: _put(x, mesh, None), tree)


def shard_state(state, mesh: Mesh):
  """Optimiser state: image-shaped leaves (H, W, 3) by rows, flat (m, H*W*3) history by columns,
  everything else replicated."""
  def put(path, x):
    key = str(getattr(path[-1], 'key', '')) if path else ''
    if key in ('S', 'Y') and getattr(x, 'ndim', 0) == 2:
      return _put(x, mesh, 1)
    if getattr(x, 'ndim', 0) == 3:
      return _put(x, mesh, 0)
    return _put(x, mesh, None)
  return jax.tree_util.tree_map_with_path(put, state)


def mesh_of(x) -> Mesh | None:
  """The row mesh ``x`` is split over (None for an array on one device)."""
  sharding = getattr(x, 'sharding', None)
  if not isinstance(sharding, NamedSharding):
    return None
  mesh = sharding.mesh
  return mesh if isinstance(mesh, Mesh) and AXIS in mesh.axis_names and mesh.size > 1 else None


def split_count(x) -> int:
  """How many devices ``x``'s rows are split over (1: on one device, or replicated)."""
  mesh = mesh_of(x)
  return mesh.size if mesh is not None and AXIS in tuple(x.sharding.spec) else 1


def place_state(state, z0):
  """The optimiser state laid out like a sharded problem's image ``z0`` (unchanged when ``z0``
  is on one device): the history split, not replicated, on every device."""
  mesh = mesh_of(z0)
  return state if mesh is None else shard_state(state, mesh)


def as_compiled_for(exe, state):
  """``state`` with each leaf moved to the sharding ``exe`` (a compiled chunk) expects for its
  first argument. XLA picks a chunk's output shardings itself; they need not be the ones its
  input was compiled for, and the next chunk refuses arguments laid out differently."""
  if not any(mesh_of(x) is not None for x in jax.tree.leaves(state)):
    return state
  wanted = exe.input_shardings[0][0]
  def put(x, s):
    return x if x.sharding.is_equivalent_to(s, x.ndim) else jax.device_put(x, s)
  return jax.tree.map(put, state, wanted)


def shard_problem(problem, params: Mapping, n: int) -> tuple[Any, Mapping]:
  """(problem, params) with arrays placed for an ``n``-way row split (n == 1: unchanged)."""
  if n == 1:
    return problem, params
  mesh = mesh_lib.make(AXIS, n, 'spatial_shards')
  t = problem.targets
  rows = lambda d, axis: None if d is None else {k: _put(v, mesh, axis) for k, v in d.items()}
  targets = t._replace(
      content=rows(t.content, 1), style=replicate(t.style, mesh),
      style_means=replicate(t.style_means, mesh), masks=rows(t.masks, 1),
      chain=replicate(t.chain, mesh), chain_means=replicate(t.chain_means, mesh),
      hold=_put(t.hold, mesh, 0), hold_image=_put(t.hold_image, mesh, 0))
  out = dataclasses.replace(problem, targets=targets, z0=_put(problem.z0, mesh, 0),
                            weights=replicate(problem.weights, mesh),
                            hyper=replicate(problem.hyper, mesh))
  return out, replicate(params, mesh)


def from_config(problem, params: Mapping, config) -> tuple[Any, Mapping]:
  """:func:`shard_problem` with ``config.spatial_shards`` (1 = off, 0 = all devices)."""
  n = int(config.get('spatial_shards', 1))
  if n == 1 or (n == 0 and len(jax.devices()) == 1):
    return problem, params
  return shard_problem(problem, params, n)
