"""Optimisers for image synthesis: the registry (:data:`METHODS`), and the optax first-order
methods. The interface every method implements is :mod:`nst_jax.optimize.method`; the L-BFGS
variants are :mod:`nst_jax.optimize.lbfgs`.

Methods:
  * ``sgd``, ``adam``, ``rmsprop``, ``nadam`` (optax), learning rate constant or exponentially
    decayed ``lr * decay_rate ** (step / decay_steps)`` (``staircase`` floors the exponent).
  * ``lbfgs``: ``optax.lbfgs`` with its zoom line search (several evaluations per step).
  * ``lbfgs_torch``: L-BFGS as in ``torch.optim.LBFGS`` without line search, which is what the
    Torch/PyTorch style-transfer codes run: fixed step ``lr`` (1), the first step scaled by
    ``min(1, 1/|g|_1)``, curvature pairs kept only when ``y.s > 1e-10``, no tolerance stops.
    One evaluation per step.
After every step the pixels are projected back into ``[0, image_range]``.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.optimize import lbfgs
from nst_jax.optimize.method import OPTIMIZERS, Method, MethodSpec, _clip, learning_rate_at


def _optax_transform(spec: MethodSpec, hyper: dict) -> optax.GradientTransformation:
  """The optax transform without the learning rate (applied by the caller with the schedule)."""
  if spec.name == 'sgd':
    return optax.trace(decay=hyper['momentum'])
  if spec.name == 'adam':
    return optax.scale_by_adam(hyper['b1'], hyper['b2'], hyper['eps'])
  if spec.name == 'nadam':
    return optax.scale_by_adam(hyper['b1'], hyper['b2'], hyper['eps'], nesterov=True)
  if spec.name == 'rmsprop':
    return optax.chain(optax.scale_by_rms(hyper['rms_decay'], hyper['eps']),
                       optax.trace(decay=hyper['momentum']))
  raise ConfigError(f'{spec.name} is not a first-order optax method')


def first_order(spec: MethodSpec) -> Method:
  """An optax first-order method with the configured learning-rate schedule."""
  def init(z, hyper, value_and_grad):
    del value_and_grad
    return {'z': z, 'opt': _optax_transform(spec, hyper).init(z), 'hyper': hyper,
            'count': jnp.zeros((), jnp.int32)}

  def step(state, value_and_grad, value_fn):
    del value_fn
    loss, g = value_and_grad(state['z'])
    direction, opt = _optax_transform(spec, state['hyper']).update(g, state['opt'], state['z'])
    lr = learning_rate_at(state['count'], state['hyper'], spec)
    z = _clip(state['z'] - lr * direction, spec)
    new = {'z': z, 'opt': opt, 'hyper': state['hyper'], 'count': state['count'] + 1}
    return new, (loss, jnp.ones((), jnp.int32))

  return Method(init, step, lambda s: s['z'])


# optimizer.name -> the builder of its Method.
METHODS: dict[str, Callable[[MethodSpec], Method]] = {
    'lbfgs_torch': lbfgs.lbfgs_torch,
    'lbfgs': lbfgs.lbfgs_optax,
    **{name: first_order for name in ('adam', 'sgd', 'rmsprop', 'nadam')},
}


def make_method(spec: MethodSpec) -> Method:
  """The :class:`~nst_jax.optimize.method.Method` that ``spec.name`` names."""
  if spec.name not in METHODS:
    raise ConfigError(f'unknown optimizer {spec.name!r}; choose one of {", ".join(OPTIMIZERS)}'
                      + schema.did_you_mean(spec.name, METHODS))
  return METHODS[spec.name](spec)
