"""Several processes (hosts) as one job: ``jax.distributed`` set-up and the few collectives the
jobs need.

:func:`initialize` starts ``jax.distributed`` once per process: with no arguments JAX detects
the cluster (SLURM, Open MPI, TPU pods); an explicit coordinator (``host:port``), process count
and index serve anything else (two local processes in the tests). Jobs then split their work
with :func:`share`, wait for each other with :func:`barrier`, collect small results with
:func:`gather`, agree on stopping with :func:`any_process`, build global arrays from host data
with :func:`global_array` and let :func:`is_main` (process 0) write the files. With one process
every function here is a no-op or the identity.

A set-up that cannot finish (a coordinator nobody listens on, a process that never starts)
raises :class:`~nst_jax.errors.NSTError` after ``timeout_s`` instead of hanging: JAX itself
aborts the process (SIGABRT, no Python exception) when its own connection deadline passes, so the
coordinator is probed first and JAX's deadline is set beyond ours. On CPUs the cross-process
collectives are gloo's (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Optional, Sequence, TypeVar

import jax
import numpy as np

from nst_jax.errors import ConfigError, NSTError

T = TypeVar('T')

_initialized = [False]

# JAX's own deadline is ours plus this: our clear error comes first, JAX's abort never does.
_JAX_GRACE_S = 60


def _split_address(coordinator: str) -> tuple[str, int]:
  host, sep, port = coordinator.rpartition(':')
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ConfigError(f'coordinator must be HOST:PORT (e.g. 10.0.0.1:12345), got {coordinator!r}')
  return host.strip('[]'), int(port)


def _wait_for_coordinator(host: str, port: int, deadline: float, timeout_s: float) -> None:
  """Returns once something accepts TCP connections at ``host:port``; NSTError at ``deadline``."""
  last: Optional[OSError] = None
  while True:
    left = deadline - time.monotonic()
    if left <= 0:
      break
    try:
      with socket.create_connection((host, port), timeout=min(2., left)):
        return
    except OSError as e:
      last = e
      time.sleep(min(0.25, max(deadline - time.monotonic(), 0.)))
  why = f' ({last.strerror or last})' if last is not None else ''
  raise NSTError(f'cannot reach the jax.distributed coordinator at {host}:{port} within '
                 f'{timeout_s:g} s{why}: start process 0 with the same coordinator, check the '
                 'address and that the port is open between the hosts')


def _check_port_free(host: str, port: int) -> None:
  """Process 0 serves the coordinator on ``port``: a clear error if something already does."""
  family = socket.AF_INET6 if ':' in host else socket.AF_INET
  with socket.socket(family, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind(('', port))
    except OSError as e:
      raise NSTError(f'process 0 cannot serve the jax.distributed coordinator on port {port} '
                     f'({e.strerror or e}): choose another port') from e


def initialize(coordinator: str = '', num_processes: int = 0, process_id: int = -1,
               timeout_s: float = 300) -> None:
  """``jax.distributed.initialize`` once (cluster auto-detection when ``coordinator`` is empty).

  ``coordinator`` is ``HOST:PORT`` of process 0 (which serves it); ``num_processes`` (``<= 0``:
  detect) and ``process_id`` (``< 0``: detect) go with it where no cluster tells them. Raises
  NSTError when no cluster is detected, when JAX has already started its backend (call this
  before any computation), when the coordinator cannot be reached or the processes have not
  all connected within ``timeout_s``.
  """
  if _initialized[0] or jax.distributed.is_initialized():
    _initialized[0] = True
    return
  timeout_s = float(timeout_s)
  if timeout_s <= 0:
    raise ConfigError(f'the distributed connect timeout must be positive, got {timeout_s:g}')
  deadline = time.monotonic() + timeout_s
  kwargs: dict[str, Any] = {'initialization_timeout': int(timeout_s) + _JAX_GRACE_S}
  if num_processes > 0:
    kwargs['num_processes'] = int(num_processes)
  if process_id >= 0:
    kwargs['process_id'] = int(process_id)
  if num_processes > 0 and process_id >= num_processes:
    raise ConfigError(f'process_id must be below num_processes ({num_processes}), got '
                      f'{process_id}')
  if coordinator:
    host, port = _split_address(coordinator)
    kwargs['coordinator_address'] = coordinator
    if process_id == 0:
      _check_port_free(host, port)
    elif process_id > 0:
      _wait_for_coordinator(host, port, deadline, timeout_s)
  if jax.config.values.get('jax_cpu_collectives_implementation') is None:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  # JAX blocks until every process has registered, and aborts the process (no exception) past
  # its deadline: it runs on a daemon thread, so we can give up with a clear error first.
  failure: list[BaseException] = []

  def connect() -> None:
    try:
      jax.distributed.initialize(**kwargs)
    except BaseException as e:  # pylint: disable=broad-except  # Re-raised below.
      failure.append(e)

  thread = threading.Thread(target=connect, daemon=True, name='nst-distributed-init')
  thread.start()
  thread.join(max(deadline - time.monotonic(), 0.) + 1.)
  if thread.is_alive():
    n = f'all {num_processes}' if num_processes > 0 else 'all'
    raise NSTError(f'jax.distributed did not start within {timeout_s:g} s: {n} processes must '
                   f'start and reach the coordinator{f" {coordinator}" if coordinator else ""} '
                   '(check num_processes, each process_id and that every process is running)')
  if failure:
    e = failure[0]
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if any(m in msg for m in ('coordinator_address should be defined', 'must be defined')):
      msg = ('no cluster detected (SLURM, Open MPI or a TPU pod); give the coordinator '
             'HOST:PORT, num_processes and process_id explicitly')
    raise NSTError(f'jax.distributed could not start: {msg}') from e
  _initialized[0] = True


def initialize_from(fields: Any) -> None:
  """:func:`initialize` from a config's ``coordinator``, ``num_processes``, ``process_id`` and
  ``connect_timeout`` fields (the sweep and training configs name them alike)."""
  initialize(str(fields.coordinator), int(fields.num_processes), int(fields.process_id),
             float(fields.connect_timeout))


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


def barrier(name: str = 'nst_jax') -> None:
  """Waits until every process has reached the barrier ``name`` (every process must call it,
  in the same order). A process that died is reported by JAX's heartbeat, which ends the job."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def gather(obj: Any) -> list[Any]:
  """Every process's JSON-able ``obj``, in process order, on every process (an all-gather: it
  is a barrier too). Meant for small results (summaries, timings), not arrays of data."""
  data = json.dumps(obj, sort_keys=True, allow_nan=True).encode()
  if jax.process_count() == 1:
    return [json.loads(data)]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  sizes = np.asarray(multihost_utils.process_allgather(np.array([len(data)], np.int32)))
  sizes = sizes.reshape(-1)
  buf = np.zeros(int(sizes.max()), np.uint8)
  buf[:len(data)] = np.frombuffer(data, np.uint8)
  rows = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
  return [json.loads(bytes(row[:int(n)]).decode()) for row, n in zip(rows, sizes)]


def any_process(flag: bool) -> bool:
  """Whether ``flag`` is true on any process (every process must call it at the same point):
  a stop requested on one host (Ctrl-C, a time limit) stops them all at the same step."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.any(np.asarray(multihost_utils.process_allgather(np.array([bool(flag)])))))


def global_array(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
  """A global array of ``sharding`` from the host value ``x``, which every process holds whole
  (e.g. a batch that is a function of the step): each process puts only its devices' slices."""
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
