"""The jobs ``run.py`` runs: a registry from ``config.job`` to the module that runs it.

Each job is one module here with ``run(config, **kwargs) -> dict`` (the summary it also writes
beside its output). :data:`ALL_JOBS` maps job names to those modules (the pattern of scenic's
``train_lib/trainers.py``); a module is imported only when its job runs, so ``run.py
--config=configs/fast.py`` never loads the optimisation code. Add a job with one line here.

* ``stylize``: optimisation (Gatys et al.; a batched sweep when ``config.sweep.axes`` is set),
  :mod:`nst_jax.jobs.stylize`.
* ``fast``: a trained feed-forward network (Johnson, Dumoulin), :mod:`nst_jax.jobs.fast`.
* ``arbitrary``: any painting in one pass (Ghiasi, AdaIN), :mod:`nst_jax.jobs.arbitrary`.
* ``train``: train a feed-forward network or the AdaIN decoder, :mod:`nst_jax.jobs.train`.
* ``benchmark``: every method on every photo x painting pair, scored by the evaluation harness,
  :mod:`nst_jax.jobs.benchmark`.

Photos, folders and videos for the one-pass jobs go through :mod:`nst_jax.jobs.media`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import ml_collections

from nst_jax.config import schema
from nst_jax.errors import ConfigError

ALL_JOBS: dict[str, str] = {
    'stylize': 'nst_jax.jobs.stylize',
    'fast': 'nst_jax.jobs.fast',
    'arbitrary': 'nst_jax.jobs.arbitrary',
    'train': 'nst_jax.jobs.train',
    'benchmark': 'nst_jax.jobs.benchmark',
}


def get_job(name: str) -> Callable[..., dict]:
  """The ``run`` function of job ``name`` (ConfigError naming the known jobs and the nearest)."""
  if name not in ALL_JOBS:
    raise ConfigError(f'unknown job {name!r}; choose one of {", ".join(sorted(ALL_JOBS))}'
                      + schema.did_you_mean(name, ALL_JOBS))
  return importlib.import_module(ALL_JOBS[name]).run


def run(config: ml_collections.ConfigDict, **kwargs: Any) -> dict:
  """Runs the job ``config.job`` (default ``stylize``); returns the summary it writes.

  ``kwargs`` go to the job (``stylize`` takes ``params=`` VGG19 params and ``quiet=``).
  Raises NSTError subclasses for user errors and :class:`nst_jax.runtime.interrupt.Interrupted`
  when a signal stopped the job after saving its work.
  """
  return get_job(str(config.get('job', 'stylize')))(config, **kwargs)
