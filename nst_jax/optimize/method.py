"""The interface every optimiser implements, and its static and numeric settings.

Every method has the same pure interface so one ``lax.scan`` drives them all (and ``vmap`` can
batch them for sweeps)::

    state = method.init(z, hyper, value_and_grad)
    state, (loss, evals) = method.step(state, value_and_grad, value_fn)
    z = method.image(state)

``hyper`` holds the numeric hyperparameters (learning rate, decay rate, betas, ...) as arrays,
so they can be traced and vmapped; :class:`MethodSpec` holds the static choices. The methods
themselves: :mod:`nst_jax.optimize.optimizers` (the registry and the optax first-order methods)
and :mod:`nst_jax.optimize.lbfgs`. After every step the pixels are projected back into
``[0, image_range]``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.errors import ConfigError

OPTIMIZERS = ('lbfgs_torch', 'lbfgs', 'adam', 'sgd', 'rmsprop', 'nadam')
SCHEDULES = ('constant', 'exponential')
HYPER_KEYS = ('learning_rate', 'decay_rate', 'b1', 'b2', 'eps', 'momentum', 'rms_decay')
# Numeric optimizer fields that are not hyperparameters of their own name: bf16_first_step is
# L-BFGS-torch's ``first_step`` where the convolutions run in bfloat16 (0 otherwise).
OTHER_NUMERIC_KEYS = ('bf16_first_step',)
HISTORY_DTYPES = ('float32', 'bfloat16', 'float16')


class MethodSpec(NamedTuple):
  """Static optimiser choices (hashable)."""
  name: str = 'lbfgs_torch'
  schedule: str = 'constant'
  decay_steps: int = 100
  staircase: bool = False
  history_size: int = 100
  max_linesearch_steps: int = 20
  lo: float = 0.
  hi: float = 255.
  history_dtype: str = 'float32'  # storage of L-BFGS-torch's (s, y) pairs (2 x history x pixels)


class Method(NamedTuple):
  init: Callable[..., Any]
  step: Callable[..., Any]
  image: Callable[[Any], jax.Array]


def spec_and_hyper(ocfg, image_range: float = 255., conv_dtype: str = 'float32'
                   ) -> tuple[MethodSpec, dict]:
  """Splits an optimiser ConfigDict into its static spec and numeric hyperparameters.

  ``conv_dtype``: the run's resolved convolution precision. Under bfloat16, L-BFGS-torch's first
  step is floored by ``bf16_first_step`` (``first_step`` in :mod:`nst_jax.optimize.lbfgs`): its
  usual first step moves pixels by far less than bfloat16 operands resolve. Under float32 Torch's
  rule stands (a floor of 1 level cost float32 runs quality at 10-25 steps).
  """
  if ocfg.name not in OPTIMIZERS:
    raise ConfigError(f'unknown optimizer {ocfg.name!r}; choose one of {", ".join(OPTIMIZERS)}')
  if ocfg.schedule not in SCHEDULES:
    raise ConfigError(f'unknown schedule {ocfg.schedule!r}; choose one of {", ".join(SCHEDULES)}')
  if int(ocfg.history_size) < 1 or int(ocfg.decay_steps) < 1:
    raise ConfigError('optimizer.history_size and optimizer.decay_steps must be >= 1')
  history_dtype = str(ocfg.get('history_dtype', 'float32'))
  if history_dtype not in HISTORY_DTYPES:
    raise ConfigError(f'unknown optimizer.history_dtype {history_dtype!r}; choose one of '
                      f'{", ".join(HISTORY_DTYPES)}')
  spec = MethodSpec(ocfg.name, ocfg.schedule, int(ocfg.decay_steps), bool(ocfg.staircase),
                    int(ocfg.history_size), int(ocfg.max_linesearch_steps), 0., float(image_range),
                    history_dtype)
  hyper = {k: jnp.asarray(float(ocfg[k]), jnp.float32) for k in HYPER_KEYS}
  floor = float(ocfg.get('bf16_first_step', 0.))
  if floor < 0:
    raise ConfigError(f'optimizer.bf16_first_step must be >= 0 (pixel levels), got {floor}')
  hyper['first_step'] = jnp.asarray(floor if conv_dtype == 'bfloat16' else 0., jnp.float32)
  return spec, hyper


def fit_history(spec: MethodSpec, num_steps: int, extendable: bool) -> MethodSpec:
  """Caps L-BFGS-torch's history at ``num_steps`` pairs: a longer history is never filled, and
  its empty slots (rho = 0) leave the two-loop recursion unchanged, so results are the same while
  2 x (history - num_steps) image-sized vectors are not allocated. Not for runs that may be
  extended later (checkpoints), whose state must keep the full history."""
  if spec.name != 'lbfgs_torch' or extendable or num_steps < 1:
    return spec
  return spec._replace(history_size=min(spec.history_size, int(num_steps)))


def history_bytes(spec: MethodSpec, pixels: int) -> int:
  """Bytes of the optimiser's image-sized history (L-BFGS pairs) for ``pixels`` (H*W) pixels."""
  if spec.name not in ('lbfgs_torch', 'lbfgs'):
    return 0
  item = 2 if spec.name == 'lbfgs_torch' and spec.history_dtype != 'float32' else 4
  return 2 * spec.history_size * 3 * pixels * item


def learning_rate_at(count, hyper: dict, spec: MethodSpec) -> jax.Array:
  """The scheduled learning rate at optimisation step ``count``."""
  if spec.schedule == 'constant':
    return hyper['learning_rate']
  p = count / spec.decay_steps
  if spec.staircase:
    p = jnp.floor(p)
  return hyper['learning_rate'] * hyper['decay_rate'] ** p


def _clip(z, spec):
  return jnp.clip(z, spec.lo, spec.hi)


def init_evals(spec: MethodSpec) -> int:
  """Objective evaluations spent by ``init`` (L-BFGS-torch evaluates the starting point)."""
  return 1 if spec.name == 'lbfgs_torch' else 0
