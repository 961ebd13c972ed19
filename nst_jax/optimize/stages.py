"""Coarse-to-fine (``config.stages``): the same problem at growing sizes, each stage starting
from the previous stage's result upsampled, as Gatys et al. 2017 do for large images.
:func:`run_stages` is the one stage loop every run goes through (a run without stages is one
stage).
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from nst_jax.config import schema
from nst_jax.losses import controls
from nst_jax.optimize.loop import Result, optimize
from nst_jax.optimize.problem import Problem, build_problem

StageRunner = Callable[[int, ml_collections.ConfigDict, Problem], Result]


def stage_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """One config per coarse-to-fine stage (``config.stages``), or ``[config]`` without stages.

  Each stage sets ``size`` and ``num_steps``; stages after the first start from the previous
  stage's result (``init='image'``, upsampled by the problem builder).
  """
  stages = controls.parse_stages(config.stages, config.size, config.num_steps)
  if not stages:
    return [config]
  out = []
  for i, (size, steps) in enumerate(stages):
    c = schema.lock(ml_collections.ConfigDict(config.to_dict()))
    c.size, c.num_steps, c.stages = size, steps, ''
    c.resume = False  # The same programs (optimiser history size) when a staged run resumes.
    if i:
      c.init = 'image'
    out.append(c)
  return out


def run_stages(config: ml_collections.ConfigDict, params: Mapping, content: Optional[np.ndarray],
               styles: Sequence[Optional[np.ndarray]], init_image: Optional[np.ndarray] = None,
               masks: Optional[Sequence[np.ndarray]] = None,
               style_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
               run_stage: Optional[StageRunner] = None, first_stage: int = 0
               ) -> list[tuple[ml_collections.ConfigDict, Problem, Result]]:
  """The one stage loop: builds and optimises each stage of :func:`stage_configs` (one stage
  without ``config.stages``), each later stage starting from the previous result.

  ``run_stage(index, stage_config, problem) -> Result`` optimises one stage (default:
  :func:`optimize` with the stage's ``num_steps`` and ``log_every``); the runner passes one that
  adds progress, metrics, checkpoints and Ctrl-C handling. A stage that returns
  ``stopped=True`` ends the loop. Returns (stage config, problem, result) per stage run.
  ``first_stage`` skips the stages before it (a resumed run: ``init_image`` is then the image
  that stage started from).
  """
  if run_stage is None:
    run_stage = lambda i, c, p: optimize(p, params, c.num_steps, c.log_every)
  out: list[tuple[ml_collections.ConfigDict, Problem, Result]] = []
  image = init_image
  for i, c in enumerate(stage_configs(config)):
    if i < first_stage:
      continue
    problem = build_problem(c, params, content, styles, image, masks, style_masks)
    result = run_stage(i, c, problem)
    out.append((c, problem, result))
    if result.stopped:
      break
    image = result.image
  return out
