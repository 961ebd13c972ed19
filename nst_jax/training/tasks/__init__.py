"""Training tasks: what the one training loop (:mod:`nst_jax.training.loop`) optimises.

A task builder takes ``(config, vgg_params)`` and returns a :class:`nst_jax.training.loop.Task`
(initial parameters, the loss of a batch, how to save the model). :data:`TASKS` maps
``config.network`` to its builder; add a task with one module here and one line below.
:data:`CHECKS` holds a task's input checks that must run before the output directory is created
(:func:`check_inputs`, called by the train job). :data:`RUN_DIRECTORIES`: tasks whose
``--output`` is one file, and the directory beside it where the loop keeps its files
(:func:`run_directory`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import ml_collections

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.training.loop import Task
from nst_jax.training.tasks import adain, feedforward, finetune, ghiasi_embedding

TaskBuilder = Callable[..., Task]

TASKS: dict[str, TaskBuilder] = {
    'johnson': feedforward.style_task,   # Johnson et al. 2016 per-style / Dumoulin N-style
    'slim': feedforward.style_task,      # the same task with the slim layout
    'adain': adain.adain_task,           # Huang & Belongie 2017 decoder
    'finetune': finetune.finetune_task,  # Dumoulin et al. 2017: new styles in an N-style network
    'ghiasi_embedding': ghiasi_embedding.embedding_task,  # one painting's refined Ghiasi embedding
}

# Input checks that run before anything is written (bad paintings, a base model that is not an
# N-style network): one error line and no half-written output directory.
CHECKS: dict[str, Callable[[ml_collections.ConfigDict], object]] = {
    'adain': adain.check_inputs,         # adain.pretrain_steps and the loss weights
    'finetune': finetune.check_inputs,
    'ghiasi_embedding': ghiasi_embedding.check_inputs,
}

# Tasks whose --output is one file (a style file): the loop's directory beside it.
RUN_DIRECTORIES: dict[str, Callable[[ml_collections.ConfigDict], Path]] = {
    'ghiasi_embedding': ghiasi_embedding.run_directory,
}


def get_task(network: str) -> TaskBuilder:
  """The task builder for ``config.network`` (ConfigError naming the known ones)."""
  if network not in TASKS:
    raise ConfigError(f'unknown network {network!r}; choose one of {", ".join(TASKS)}'
                      + schema.did_you_mean(network, TASKS))
  return TASKS[network]


def check_inputs(config: ml_collections.ConfigDict) -> None:
  """Runs the task's :data:`CHECKS` entry, if it has one (NSTError on bad input)."""
  check = CHECKS.get(str(config.network))
  if check is not None:
    check(config)


def run_directory(config: ml_collections.ConfigDict) -> Path:
  """Where the loop writes its files: ``--output``, or the task's :data:`RUN_DIRECTORIES` entry."""
  where = RUN_DIRECTORIES.get(str(config.network))
  return where(config) if where is not None else Path(config.output).expanduser()


__all__ = ['CHECKS', 'RUN_DIRECTORIES', 'TASKS', 'Task', 'TaskBuilder', 'check_inputs',
           'get_task', 'run_directory']
