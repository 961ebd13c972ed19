"""The optimisation loop: a whole chunk of steps as one jitted ``lax.scan``.

:func:`chunk_fn` runs ``length`` steps of the configured method (:mod:`nst_jax.optimize.
optimizers`) on the objective (:mod:`nst_jax.losses.objective`); :func:`optimize` drives a
problem through chunks of ``log_every`` steps with one host sync per chunk (progress, the NaN
check, intermediate images), memoising each compiled chunk (:mod:`nst_jax.runtime.
compile_cache`) and stopping cleanly between chunks when asked.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
import time
from typing import Any, Callable, Mapping, Optional

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import NonFiniteLossError
from nst_jax.io import images as image_io
from nst_jax.io import checkpoints
from nst_jax.losses import controls, objective
from nst_jax.optimize import lbfgs
from nst_jax.optimize import method as method_lib
from nst_jax.optimize import optimizers, spatial
from nst_jax.optimize.problem import Problem
from nst_jax.runtime import compile_cache

# ---------------------------------------------------------------------------------------------
# Jitted pieces. Params, targets and weights are arguments (not closed-over constants), so the
# 80 MB of weights never become HLO literals and one compiled program serves any inputs.


def _fns(params: Mapping, targets: objective.Targets, weights: objective.Weights,
         spec: objective.Spec, key: Optional[jax.Array] = None) -> tuple[Callable, Callable]:
  value_fn = lambda z: objective.objective(z, params, targets, weights, spec, key)
  return value_fn, jax.value_and_grad(value_fn)


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def init_state(z0: jax.Array, params: Mapping, targets: objective.Targets,
               weights: objective.Weights, hyper: dict, spec: objective.Spec,
               mspec: method_lib.MethodSpec) -> Any:
  """The optimiser's initial state at ``z0``.

  A sampling objective (``spec.stochastic``: random projections or positions) adds its PRNG key
  to the state (``state['key']``, from ``weights.key``): every step splits off the key its
  evaluations use, so the run is reproducible from its seed and a checkpoint resumes exactly.
  """
  key = weights.key if spec.stochastic else None
  _, value_and_grad = _fns(params, targets, weights, spec, key)
  state = optimizers.make_method(mspec).init(z0, hyper, value_and_grad)
  return state if key is None else dict(state, key=key)


def chunk_fn(state: Any, params: Mapping, targets: objective.Targets,
             weights: objective.Weights, spec: objective.Spec, mspec: method_lib.MethodSpec,
             length: int) -> tuple[Any, tuple[jax.Array, jax.Array]]:
  """``length`` optimisation steps as one ``lax.scan``; returns (state, (losses, evals))."""
  method = optimizers.make_method(mspec)
  def body(s: Any, _: Any) -> tuple[Any, tuple[jax.Array, jax.Array]]:
    if spec.stochastic:  # This step's key; the state carries the next one.
      carry, key = jax.random.split(s['key'])
      value_fn, value_and_grad = _fns(params, targets, weights, spec, key)
      s = {k: v for k, v in s.items() if k != 'key'}
      s, (loss, evals) = method.step(s, value_and_grad, value_fn)
      s = dict(s, key=carry)
    else:
      value_fn, value_and_grad = _fns(params, targets, weights, spec)
      s, (loss, evals) = method.step(s, value_and_grad, value_fn)
    return s, (loss / weights.loss_scale, evals)
  return lax.scan(body, state, None, length=length)


run_chunk = jax.jit(chunk_fn, static_argnames=('spec', 'mspec', 'length'), donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('spec',))
def terms(z: jax.Array, params: Mapping, targets: objective.Targets, weights: objective.Weights,
          spec: objective.Spec) -> dict[str, jax.Array]:
  """The weighted loss terms at ``z`` (content, style, tv, total, ...)."""
  return objective.loss_terms(z, params, targets, weights, spec)


@dataclasses.dataclass
class Result:
  image: np.ndarray                  # uint8 (H, W, 3)
  losses: list[float]                # objective (unscaled) at every step's evaluation
  evals: int                         # objective+gradient evaluations, line searches included
  steps: int
  terms: list[dict]                  # loss terms at each chunk boundary, with their step
  timings: dict
  state: Any = None
  stopped: bool = False              # stopped early by ``stop()`` (e.g. Ctrl-C), not finished


def optimize(problem: Problem, params: Mapping, num_steps: int, chunk: int = 50,
             on_chunk: Optional[Callable[[int, Any, dict], None]] = None,
             state: Any = None, start_step: int = 0, history: Optional[dict] = None,
             profile_dir: str = '', stop: Optional[Callable[[], bool]] = None) -> Result:
  """Runs ``num_steps`` steps in jitted chunks; calls ``on_chunk(step, state, info)`` after each.

  ``info`` holds the chunk's loss ``terms`` (with ``step``), the ``evals`` so far, ``timings``, the
  ``history`` and ``chunk_s`` (the chunk's run time). After each chunk, if ``stop()`` is true (e.g.
  :class:`nst_jax.runtime.interrupt.StopOnSignal`), returns early with ``stopped=True`` and the
  state and image of the last finished chunk. Raises NonFiniteLossError (with ``.image`` = the last
  finite image and ``.step``) if the objective becomes NaN or Inf.
  """
  p = problem
  args = (params, p.targets, p.weights)
  t0 = time.perf_counter()
  timings = {'compile_s': 0., 'run_s': 0.}
  if state is None:
    # The starting point's evaluation runs once: direct convolutions, compiled ~5x
    # faster than Winograd's and with less memory; the gradient differs by float rounding only.
    init_exe, seconds = compile_cache.compiled(init_state, p.z0, *args, p.hyper,
                                               spec=p.spec._replace(conv_impl='direct'),
                                               mspec=p.mspec)
    timings['compile_s'] += seconds
    state = init_exe(p.z0, *args, p.hyper)
  state = spatial.place_state(state, p.z0)  # a split image: its history split too
  hist = history or {'losses': [], 'evals': method_lib.init_evals(p.mspec), 'terms': []}
  compiled = {}
  step = start_step
  last_good = np.asarray(state_image(state, p))
  stopped = False
  while step < num_steps:
    n = min(chunk, num_steps - step)
    if n not in compiled:  # Memoised per shapes: a second run of the same problem reuses it.
      compiled[n], seconds = compile_cache.compiled(run_chunk, state, *args, spec=p.spec,
                                                    mspec=p.mspec, length=n)
      timings['compile_s'] += seconds
    state = spatial.as_compiled_for(compiled[n], state)
    tr = time.perf_counter()
    if profile_dir and step == start_step:
      with jax.profiler.trace(profile_dir):
        with jax.profiler.StepTraceAnnotation('chunk', step_num=step):
          state, (chunk_losses, evals) = compiled[n](state, *args)
          chunk_losses = np.asarray(chunk_losses)
    else:
      state, (chunk_losses, evals) = compiled[n](state, *args)
      chunk_losses = np.asarray(chunk_losses)
    chunk_s = time.perf_counter() - tr
    timings['run_s'] += chunk_s
    z_device = state_image(state, p)
    z = np.asarray(z_device)
    if not np.all(np.isfinite(chunk_losses)) or not np.all(np.isfinite(z)):
      bad = step + int(np.argmin(np.isfinite(chunk_losses))) if not np.all(
          np.isfinite(chunk_losses)) else step + n
      err = NonFiniteLossError(
          f'the loss became NaN/Inf at step {bad}; stopped, keeping the image of step {step}. '
          'Lower the learning rate or the loss weights (or raise loss_scale for L-BFGS).')
      err.image, err.step = render(p, last_good), step
      raise err
    step += n
    last_good = z
    hist['losses'].extend(float(v) for v in chunk_losses)
    hist['evals'] += int(np.sum(evals))
    terms_exe, seconds = compile_cache.compiled(terms, z_device, *args, spec=p.spec._replace(
        conv_impl=objective.target_spec(p.spec).conv_impl))  # direct: cheap to compile
    timings['compile_s'] += seconds
    t = {k: float(v) for k, v in terms_exe(z_device, *args).items()}
    t['step'] = step
    hist['terms'].append(t)
    if on_chunk is not None:
      on_chunk(step, state, {'terms': t, 'evals': hist['evals'], 'timings': timings,
                             'history': hist, 'chunk_s': chunk_s})
    if stop is not None and step < num_steps and stop():
      stopped = True
      break
  timings['total_s'] = time.perf_counter() - t0
  steps_run = step - start_step
  timings['s_per_step'] = timings['run_s'] / steps_run if steps_run else 0.
  image = render(p, last_good)
  return Result(image, hist['losses'], hist['evals'], step, hist['terms'], timings, state,
                stopped)


def state_image(state: Any, problem: Problem) -> jax.Array:
  return optimizers.make_method(problem.mspec).image(state)


def render(problem: Problem, z: Any) -> np.ndarray:
  """The uint8 RGB result of an optimiser-domain image: held pixels composed from the content,
  and the content's chroma put back for ``color_control`` luminance / original_colors."""
  x = objective.compose(jnp.asarray(z), problem.targets, problem.spec)
  image = image_io.to_uint8(np.asarray(objective.to_image(x, problem.spec)))
  if problem.color_control in ('luminance', 'original_colors') and problem.content is not None:
    image = controls.original_colors(image, problem.content)
  return image


# --- Checkpoints of the loop's state (the format: nst_jax.io.checkpoints).


def save_checkpoint(path: Path, state: Any, step: int, history: dict, key: str,
                    extra: Optional[dict] = None,
                    extra_arrays: Optional[Mapping[str, np.ndarray]] = None) -> None:
  """Writes an optimiser state (its checkpoint form), step and loss history atomically;
  ``extra`` joins the JSON metadata and ``extra_arrays`` are stored beside the leaves."""
  checkpoints.save(path, lbfgs.checkpoint_leaves(state), step, key,
                   {'history': history, **(extra or {})}, extra_arrays)


def load_checkpoint(path: Path, template_state: Any, key: str) -> tuple[Any, int, dict]:
  """Returns (state, step, history) restored into the structure of ``template_state``."""
  meta, leaves = checkpoints.read(path, key)
  state = lbfgs.state_from_leaves(leaves, template_state, f'checkpoint {path}')
  return state, int(meta['step']), meta['history']
