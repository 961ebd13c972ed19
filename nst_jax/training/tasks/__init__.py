"""Training tasks: what the one training loop (:mod:`nst_jax.training.loop`) optimises.

A task builder takes ``(config, vgg_params)`` and returns a :class:`nst_jax.training.loop.Task`
(initial parameters, the loss of a batch, how to save the model). :data:`TASKS` maps
``config.network`` to its builder; add a task with one module here and one line below.
"""

from __future__ import annotations

from typing import Callable

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.training.loop import Task
from nst_jax.training.tasks import adain, feedforward

TaskBuilder = Callable[..., Task]

TASKS: dict[str, TaskBuilder] = {
    'johnson': feedforward.style_task,   # Johnson et al. 2016 per-style / Dumoulin N-style
    'slim': feedforward.style_task,      # the same task with the slim layout
    'adain': adain.adain_task,           # Huang & Belongie 2017 decoder
}


def get_task(network: str) -> TaskBuilder:
  """The task builder for ``config.network`` (ConfigError naming the known ones)."""
  if network not in TASKS:
    raise ConfigError(f'unknown network {network!r}; choose one of {", ".join(TASKS)}'
                      + schema.did_you_mean(network, TASKS))
  return TASKS[network]


__all__ = ['TASKS', 'Task', 'TaskBuilder', 'get_task']
