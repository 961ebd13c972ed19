"""L-BFGS for image synthesis: the Torch-style variant most runs use, and optax's.

* :func:`lbfgs_torch`: L-BFGS as in ``torch.optim.LBFGS`` without line search, which is what
  the Torch/PyTorch style-transfer codes run: fixed step ``lr`` (1), the first step scaled by
  ``min(1, 1/|g|_1)`` (at least the step that moves the largest pixel by ``first_step``, when that
  hyperparameter is set), curvature pairs kept only when ``y.s > 1e-10``, no tolerance stops; one
  evaluation per step. For float32 histories the two-loop recursion runs in matrix form
  (:func:`_two_loop_matrix`: the history's inner products kept in the state, the coefficients
  from two unit-triangular solves; docs/design/lbfgs.md).
* :func:`lbfgs_optax`: ``optax.lbfgs`` with its zoom line search (several evaluations a step).

Checkpoints store the state without its derivable products (:func:`checkpoint_state`), so the
format is the same for both recursions; :func:`restore_state` recomputes them.
"""

from __future__ import annotations

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from nst_jax.errors import ConfigError
from nst_jax.optimize.method import Method, MethodSpec, _clip


def lbfgs_optax(spec: MethodSpec) -> Method:
  def make():
    return optax.lbfgs(memory_size=spec.history_size,
                       linesearch=optax.scale_by_zoom_linesearch(spec.max_linesearch_steps))

  def init(z, hyper, value_and_grad):
    del hyper, value_and_grad
    return {'z': z, 'opt': make().init(z), 'count': jnp.zeros((), jnp.int32)}

  def step(state, value_and_grad, value_fn):
    del value_and_grad
    tx = make()
    loss, g = optax.value_and_grad_from_state(value_fn)(state['z'], state=state['opt'])
    updates, opt = tx.update(g, state['opt'], state['z'], value=loss, grad=g, value_fn=value_fn)
    z = _clip(optax.apply_updates(state['z'], updates), spec)
    evals = optax.tree_utils.tree_get(opt, 'num_linesearch_steps') + (state['count'] == 0)
    return ({'z': z, 'opt': opt, 'count': state['count'] + 1},
            (loss, evals.astype(jnp.int32)))

  return Method(init, step, lambda s: s['z'])


# L-BFGS-torch's search direction, two ways (the same recursion; float32 results agree to ~1e-6
# relative, both within ~1e-6 of a float64 two-loop: tests/unit/optimize/test_optimizers.py):
# * float32 history: the two-loop recursion in matrix form. With the inner products kept in the
#   state (SY[i, j] = s_i.y_j, YY[i, j] = y_i.y_j, S g and Y g), the recursion's coefficients
#   are two unit-triangular m x m solves, and the image-sized work is three matrix-vector
#   products: one pass over the history for the direction, one to update the products after
#   each step. The loop form makes 2 x m dependent dot/axpy pairs per step instead: ~12 ms of
#   a step at 192x256 on 2 CPU cores against ~7 ms, and 4m small kernels (launches) on a GPU.
# * bfloat16/float16 history: the loop form, reading one half-precision row at a time; the
#   products would need float32 copies of the whole history, which is what that option saves.
DERIVED = ('SY', 'YY', 'Sg', 'Yg')  # L-BFGS-torch state fields recomputable from S, Y and g
FROM_CONFIG = ('first_step',)  # state fields a resumed run takes from its config, not the file


def _dot(a, b):
  return jnp.dot(a, b, precision=lax.Precision.HIGHEST)


def _two_loop(state, m):
  """The two-loop recursion over the circular history (empty slots have rho = 0: no effect)."""
  S, Y, rho, ptr = state['S'], state['Y'], state['rho'], state['ptr']

  def newest_first(i, carry):
    q, al = carry
    j = (ptr - 1 - i) % m
    a = rho[j] * _dot(S[j], q)
    return q - a * Y[j], al.at[j].set(a)

  q, al = lax.fori_loop(0, m, newest_first, (-state['g'].ravel(), jnp.zeros((m,), rho.dtype)))

  def oldest_first(i, r):
    j = (ptr + i) % m
    b = rho[j] * _dot(Y[j], r)
    return r + S[j] * (al[j] - b)

  return lax.fori_loop(0, m, oldest_first, q * state['h_diag'])


def _unit_triangular_solve(n: jax.Array, b: jax.Array, lower: bool) -> jax.Array:
  """x with (I + n) x = b, ``n`` strictly lower (or upper) triangular: substitution, the
  two-loop's own order. (No LAPACK custom call: programs stay loadable from the executable
  cache, whose warm runs never lower a triangular solve that would register it.)"""
  m = b.shape[0]

  def row(i, x):
    k = i if lower else m - 1 - i
    return x.at[k].set(b[k] - _dot(n[k], x))

  return lax.fori_loop(0, m, row, jnp.zeros_like(b))


def _two_loop_matrix(state, m):
  """The two-loop recursion from the stored inner products (see above).

  In newest-first order k, loop one's a_k = rho_k s_k.q_k with q_k = -g - sum_{l<k} a_l y_l,
  i.e. (I + diag(rho) L) a = -rho * (S g) with L the strictly lower part of [s_k.y_l]; loop two's
  c_k = a_k - b_k solves (I + diag(rho) U) c = a - h rho * (Y q), U the strictly upper part of
  [y_k.s_l], Y q = -Y g - [y_k.y_l] a. The direction is -h g - h Y^T a + S^T c.
  """
  rho, h, g = state['rho'], state['h_diag'], state['g'].ravel()
  idx = (state['ptr'] - 1 - jnp.arange(m)) % m  # newest first
  ro = rho[idx]
  sy = state['SY'][idx][:, idx]
  a = _unit_triangular_solve(ro[:, None] * jnp.tril(sy, -1), -ro * state['Sg'][idx], True)
  yq = -state['Yg'][idx] - _dot(state['YY'][idx][:, idx], a)
  c = _unit_triangular_solve(ro[:, None] * jnp.triu(sy.T, 1), a - h * ro * yq, False)
  a_slots, c_slots = jnp.zeros_like(a).at[idx].set(a), jnp.zeros_like(c).at[idx].set(c)
  return -h * g + _dot(c_slots, state['S']) - h * _dot(a_slots, state['Y'])


def checkpoint_state(state):
  """What a checkpoint stores of an optimiser state: all but the :data:`DERIVED` products, so
  checkpoints keep one format whichever way the direction is computed (older ones resume), and
  none of :data:`FROM_CONFIG`."""
  if isinstance(state, dict) and 'h_diag' in state:  # L-BFGS-torch's
    return {k: v for k, v in state.items() if k not in DERIVED + FROM_CONFIG}
  return state


def restore_state(saved, template):
  """The inverse of :func:`checkpoint_state`: ``saved`` (its structure) completed like
  ``template``, the products recomputed from the restored history, :data:`FROM_CONFIG` fields
  from ``template``."""
  if isinstance(template, dict) and 'h_diag' in template:
    state = dict(saved, **{k: template[k] for k in FROM_CONFIG if k in template})
    return derive_products(state) if 'SY' in template else state
  return saved


def checkpoint_leaves(state) -> list:
  """The arrays a checkpoint stores for ``state`` (those of :func:`checkpoint_state`)."""
  return jax.tree.leaves(checkpoint_state(state))


def state_from_leaves(leaves, template, what: str):
  """The state :func:`checkpoint_leaves` stored, rebuilt in ``template``'s structure and dtypes
  (derived products recomputed); ConfigError naming ``what`` if the arrays do not fit it."""
  stored = checkpoint_state(template)
  ref = jax.tree.leaves(stored)
  if len(ref) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(leaves, ref)):
    raise ConfigError(f'{what} does not match this optimiser state; delete it')
  state = jax.tree.unflatten(jax.tree.structure(stored),
                             [jnp.asarray(a, b.dtype) for a, b in zip(leaves, ref)])
  return restore_state(state, template)


def derive_products(state):
  """``state`` with the inner products of the matrix form computed from S, Y and g (any leading
  batch axes, as in sweeps)."""
  S, Y = state['S'], state['Y']
  g = state['g'].reshape(*S.shape[:-2], -1)
  prod = lambda a, b: jnp.einsum('...in,...jn->...ij', a, b, precision=lax.Precision.HIGHEST)
  return dict(state, SY=prod(S, Y), YY=prod(Y, Y), Sg=prod(S, g[..., None, :])[..., 0],
              Yg=prod(Y, g[..., None, :])[..., 0])


def lbfgs_torch(spec: MethodSpec) -> Method:
  m = spec.history_size
  hd = jnp.dtype(spec.history_dtype)
  matrix = hd == jnp.float32

  def init(z, hyper, value_and_grad):
    loss, g = value_and_grad(z)
    n = z.size
    state = {'z': z, 'g': g, 'loss': loss, 'S': jnp.zeros((m, n), hd),
             'Y': jnp.zeros((m, n), hd), 'rho': jnp.zeros((m,), z.dtype),
             'ptr': jnp.zeros((), jnp.int32), 'count': jnp.zeros((), jnp.int32),
             'h_diag': jnp.ones((), z.dtype), 'lr': hyper['learning_rate'],
             'first_step': jnp.asarray(hyper.get('first_step', 0.), z.dtype)}
    if matrix:  # The products of an empty history.
      state.update(SY=jnp.zeros((m, m), z.dtype), YY=jnp.zeros((m, m), z.dtype),
                   Sg=jnp.zeros((m,), z.dtype), Yg=jnp.zeros((m,), z.dtype))
    return state

  def step(state, value_and_grad, value_fn):
    del value_fn
    z, g = state['z'], state['g']
    d = (_two_loop_matrix(state, m) if matrix else _two_loop(state, m)).reshape(z.shape)
    first = state['count'] == 0
    # Torch's first step: lr * min(1, 1/|g|_1). With ``first_step`` > 0 the step is at least the
    # one that moves the largest pixel by ``first_step``: Torch's step moves pixels by ~1/N of a
    # level, and with bfloat16 convolutions the gradient does not resolve so small a change, so
    # the first curvature pair was rounding noise and every later step stayed as small.
    t_first = jnp.maximum(jnp.minimum(1., 1. / jnp.sum(jnp.abs(g))) * state['lr'],
                          state['first_step'] / jnp.maximum(jnp.max(jnp.abs(d)), 1e-30))
    t = jnp.where(first, t_first, state['lr'])
    z_new = _clip(z + t * d, spec)
    loss, g_new = value_and_grad(z_new)
    s, y = (z_new - z).ravel(), (g_new - g).ravel()
    ys = _dot(y, s)
    keep = ys > 1e-10
    ptr = state['ptr']
    S = lax.dynamic_update_index_in_dim(
        state['S'], jnp.where(keep, s.astype(hd), state['S'][ptr]), ptr, 0)
    Y = lax.dynamic_update_index_in_dim(
        state['Y'], jnp.where(keep, y.astype(hd), state['Y'][ptr]), ptr, 0)
    rho = state['rho'].at[ptr].set(jnp.where(keep, 1. / jnp.where(keep, ys, 1.), state['rho'][ptr]))
    yy = _dot(y, y)
    h_diag = jnp.where(keep, ys / jnp.where(keep, yy, 1.), state['h_diag'])
    new = {'z': z_new, 'g': g_new, 'loss': loss, 'S': S, 'Y': Y, 'rho': rho,
           'ptr': jnp.where(keep, (ptr + 1) % m, ptr), 'count': state['count'] + 1,
           'h_diag': h_diag, 'lr': state['lr'], 'first_step': state['first_step']}
    if matrix:  # One pass over the new history: its products with the new pair and gradient.
      gn = g_new.ravel()
      sv = _dot(S, jnp.stack([y, gn], 1))     # S y, S g_new
      yv = _dot(Y, jnp.stack([s, y, gn], 1))  # Y s, Y y, Y g_new
      sy = state['SY'].at[:, ptr].set(sv[:, 0]).at[ptr, :].set(yv[:, 0])
      yy_m = state['YY'].at[:, ptr].set(yv[:, 1]).at[ptr, :].set(yv[:, 1])
      new.update(SY=jnp.where(keep, sy, state['SY']), YY=jnp.where(keep, yy_m, state['YY']),
                 Sg=sv[:, 1], Yg=yv[:, 2])
    return new, (loss, jnp.ones((), jnp.int32))

  return Method(init, step, lambda s: s['z'])
