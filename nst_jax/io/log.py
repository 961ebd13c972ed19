"""The library's one line-oriented output channel: the ``nst_jax`` logger.

Library code never calls ``print``: progress goes through the metrics writer
(:mod:`nst_jax.io.metric_writers`), and one-line reports (the memory estimate, ``wrote ...``,
resume hints) through :func:`info` / :func:`warning` here. Both are standard ``logging`` records
of the ``nst_jax`` logger, shown on stderr as plain lines (no absl prefix), so a notebook or a
host program can redirect, silence or reformat them with ``logging`` as usual.

:func:`setup` (called by ``run.py``) chooses what a user sees: nst_jax's INFO lines always;
other libraries' (JAX's, XLA's) only from ``--verbosity=1`` on, WARNING and above by default.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

LOGGER = logging.getLogger('nst_jax')


class _StderrHandler(logging.Handler):
  """Writes plain messages to the *current* ``sys.stderr`` (so pytest's capture and
  ``contextlib.redirect_stderr`` see them)."""

  def emit(self, record: logging.LogRecord) -> None:
    try:
      sys.stderr.write(self.format(record) + '\n')
      sys.stderr.flush()
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)


if not any(isinstance(h, _StderrHandler) for h in LOGGER.handlers):
  _handler = _StderrHandler()
  _handler.setFormatter(logging.Formatter('%(message)s'))
  LOGGER.addHandler(_handler)
  LOGGER.setLevel(logging.INFO)
  LOGGER.propagate = False


def info(message: str) -> None:
  LOGGER.info(message)


def warning(message: str) -> None:
  LOGGER.warning(message)


def setup(verbosity: Optional[int] = None) -> None:
  """Other libraries' log records from ``verbosity`` on (absl's scale: -1 WARNING, 0 INFO,
  1 DEBUG); ``None`` keeps them at WARNING, so JAX's INFO lines ('Unable to initialize backend
  tpu', cache resets) stay out of a user's terminal. nst_jax's own lines are unaffected."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from absl.logging import converter  # pylint: disable=g-import-not-at-top
  level = {None: logging.WARNING, -1: logging.WARNING, 0: logging.INFO}.get(
      verbosity, logging.DEBUG)
  absl_logging.set_verbosity(converter.standard_to_absl(level))
  for name in ('jax', 'absl'):
    logging.getLogger(name).setLevel(level)
