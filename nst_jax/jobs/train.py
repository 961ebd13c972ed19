"""The ``train`` job: trains the network ``config.network`` names and writes a model directory.

``johnson`` / ``slim`` train a per-style (or N-style) feed-forward network
(:mod:`nst_jax.training.tasks.feedforward`); ``adain`` trains the AdaIN decoder
(:mod:`nst_jax.training.tasks.adain`). Both run through the one training loop,
:func:`nst_jax.training.loop.train`; the task registry is :data:`nst_jax.training.tasks.TASKS`.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from nst_jax.config import train as train_schema
from nst_jax.errors import ImageError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.runtime import distributed
from nst_jax.training import loop, tasks


def run(config: ml_collections.ConfigDict, params=None, quiet: bool = False) -> dict:
  """The ``train`` job: builds the task the config names, trains it, returns the summary."""
  loop.validate(config)
  if config.distributed:  # Before anything starts JAX's backend.
    distributed.initialize_from(config)
  # Fail fast, before loading weights, on a bad photo folder.
  image_io.list_images(config.data_dir, 'training photos')
  if config.network == 'adain':
    image_io.list_images(config.style_dir, 'style images')
  else:
    for p in train_schema.style_paths(config):
      if not Path(p).expanduser().is_file():
        raise ImageError(f'style image not found: {p} (check --style)')
  tasks.check_inputs(config)  # e.g. finetune's paintings and base model: before any file exists
  # The loop's directory: --output, or beside it for a task writing one file (a style file).
  run_config = config
  if str(config.network) in tasks.RUN_DIRECTORIES:
    run_config = config.copy_and_resolve_references()
    run_config.output = str(tasks.run_directory(config))
  fileio.check_writable_dir(Path(run_config.output).expanduser(), '--output')
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19(config.weights or None)
  task = tasks.get_task(config.network)(config, params)
  result = loop.train(run_config, task, quiet)
  result.pop('params', None)
  return result
