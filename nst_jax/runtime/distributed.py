"""Several processes (hosts) as one job: ``jax.distributed`` set-up and the few collectives the
jobs need.

:func:`initialize` starts ``jax.distributed`` once per process: with no arguments JAX detects
the cluster (SLURM, Open MPI, TPU pods); an explicit coordinator (``host:port``), process count
and index serve anything else (two local processes in the tests). Jobs then split their work
with :func:`share`, wait for each other with :func:`barrier` and let :func:`is_main` (process
0) write the files. With one process every function here is a no-op or the identity.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import jax

T = TypeVar('T')

_initialized = [False]


def initialize(coordinator: str = '', num_processes: int = 0, process_id: int = -1,
               timeout_s: int = 60) -> None:
  """``jax.distributed.initialize`` once (auto-detection when ``coordinator`` is empty)."""
  if _initialized[0]:
    return
  kwargs: dict = {'initialization_timeout': int(timeout_s)}
  if coordinator:
    kwargs.update(coordinator_address=coordinator, num_processes=int(num_processes),
                  process_id=int(process_id))
  jax.distributed.initialize(**kwargs)
  _initialized[0] = True


def process_count() -> int:
  return jax.process_count()


def process_index() -> int:
  return jax.process_index()


def is_main() -> bool:
  """Whether this is process 0 (the one that writes shared files)."""
  return jax.process_index() == 0


def share(items: Sequence[T]) -> list[T]:
  """This process's share of ``items``: every ``process_count()``-th, from its index."""
  return list(items[jax.process_index()::jax.process_count()])
