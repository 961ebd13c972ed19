"""Style losses that match feature *distributions* rather than Gram matrices. Pure and jittable.

Every loss works on ONE image's features of ONE layer, ``(H, W, C)`` channels last, against a
target computed once from the style's ``(Hs, Ws, C)`` features of the same layer; style and image
sizes may differ. Option arguments (kernel, order, samples, projections) are static Python
values; a bad one raises :class:`nst_jax.errors.ConfigError`.

================== ================================================= ===== ===================
loss               source                                            masks normalisation
================== ================================================= ===== ===================
mean_std           Li, Wang, Liu & Hou 2017, BN statistics matching  yes   mean over channels
mmd (linear/poly)  Li et al. 2017, MMD^2 / Z (Z = C, C^2)            yes   area-normalised
mmd (gaussian)     Li et al. 2017, MMD^2 / Z on sampled positions    no    Z = C
cmd                Kalischek, Wegner & Schindler 2021 (CMD, K=5)     yes   sum of L2 norms
histogram          Risser, Wilmot & Barnes 2017; Zhang et al. 2022   no    mean over M x C
sliced_wasserstein Heitz, Vanhoey, Chambon & Belcour 2021            no    mean over M x P
================== ================================================= ===== ===================

Masks are guided-Gram-style position weights: an ``(H, W)`` map in [0, 1] gives the weights
``mask^2 / sum(mask^2)`` (as :func:`nst_jax.losses.gram.gram` and
:func:`nst_jax.losses.gram.feature_mean`), so a masked statistic is the statistic of the region.

Sorted-value losses compare quantile functions: when the style has ``Ms`` positions and the image
``M``, the style's sorted values (at quantiles ``(j + 0.5) / Ms``) are linearly interpolated at the
image's quantiles ``(i + 0.5) / M`` (:func:`quantiles`); with ``Ms == M`` this is the identity.
They sort with :func:`nst_jax.losses.sorting.sort`: ``jnp.sort``'s values and gradient, fast on
CPUs (a native radix-sort custom call where it can be built, XLA's integer-key sort elsewhere).

Nothing here builds an (M x M) matrix over all positions: the Gaussian MMD works on ``samples``
positions, the others are O(M C) (sorts, moments) or O(M C^2) (the Gram).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError
from nst_jax.losses import gram as gram_lib
from nst_jax.losses.sorting import sort

MMD_KERNELS = ('linear', 'poly', 'gaussian')
_HI = jax.lax.Precision.HIGHEST


# --- Shared helpers -----------------------------------------------------------------------------

def _flat(features: jax.Array, mask: Optional[jax.Array] = None):
  """(H, W, C) features -> (M, C) rows, and the (M, 1) position weights (None: uniform 1/M)."""
  if features.ndim != 3:
    raise ConfigError(f'distribution losses take one layer of one image, (H, W, C) features; got '
                      f'shape {tuple(features.shape)}')
  h, w, c = features.shape
  x = features.reshape(h * w, c)
  if mask is None:
    return x, None
  if tuple(mask.shape) != (h, w):
    raise ConfigError(f'mask of shape {tuple(mask.shape)} does not match the layer\'s {h}x{w} '
                      'positions')
  m2 = jnp.square(mask.astype(features.dtype)).reshape(h * w, 1)
  return x, m2 / jnp.maximum(jnp.sum(m2), 1e-8)


def _mean(x: jax.Array, wts: Optional[jax.Array]) -> jax.Array:
  return jnp.mean(x, axis=0) if wts is None else jnp.sum(wts * x, axis=0)


def _safe_sqrt(v: jax.Array) -> jax.Array:
  """sqrt with a zero (not NaN) gradient at 0: a dead (constant) channel has std 0, and a matched
  moment a zero difference."""
  pos = v > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.)), 0.)


def quantiles(sorted_values: jax.Array, m: int) -> jax.Array:
  """(Ms, ...) values sorted along axis 0 -> (m, ...) at the quantiles ``(i + 0.5) / m``.

  Value ``j`` sits at quantile ``(j + 0.5) / Ms``; between two, the quantile function is linear,
  and it is held constant beyond the first and last. With ``m == Ms`` the values come back as
  they are (no arithmetic, so an image equal to the style has loss 0 exactly).
  """
  ms = sorted_values.shape[0]
  if ms == m:
    return sorted_values
  # Static sizes: the read positions are computed in float64 NumPy at trace time (float32 would
  # round them by up to 1/64 of a step at a million positions).
  pos = np.clip((np.arange(m, dtype=np.float64) + 0.5) * (ms / m) - 0.5, 0., ms - 1.)
  lo = np.floor(pos).astype(np.int32)
  hi = np.minimum(lo + 1, ms - 1)
  frac = jnp.asarray((pos - lo).reshape((m,) + (1,) * (sorted_values.ndim - 1)),
                     sorted_values.dtype)
  return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def _check_int(value, name: str, low: int, what: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ConfigError(f'{name} must be an integer >= {low} ({what}); got {value!r}')
  return value


# --- Mean and standard deviation (Li et al. 2017, BN statistics) ----------------------------------

def mean_std_target(features: jax.Array, mask: Optional[jax.Array] = None) -> dict:
  """The per-channel mean and standard deviation of the style's features: ``{'mean', 'std'}``,
  each (C,). See :func:`mean_std_loss`."""
  x, wts = _flat(features, mask)
  mu = _mean(x, wts)
  return {'mean': mu, 'std': _safe_sqrt(_mean(jnp.square(x - mu), wts))}


def mean_std_loss(features: jax.Array, target: dict,
                  mask: Optional[jax.Array] = None) -> jax.Array:
  """BN-statistics matching of Li, Wang, Liu & Hou 2017 ("Demystifying Neural Style Transfer",
  IJCAI; arXiv:1701.01036, Sec. 4.2, the BN style loss):

    L = 1/C sum_c (mu_x^c - mu_s^c)^2 + (sigma_x^c - sigma_s^c)^2

  with the per-channel mean ``mu`` and the *population* standard deviation ``sigma``
  (``1/M sum (x - mu)^2``, as the authors' ``bn_loss.py``; no epsilon). With a mask both are the
  region's weighted statistics (weights ``mask^2 / sum(mask^2)``). Their code multiplies the
  term by the layer's ``M`` (and the loss weight 1e3): that factor belongs to a preset.
  """
  x, wts = _flat(features, mask)
  mu = _mean(x, wts)
  sigma = _safe_sqrt(_mean(jnp.square(x - mu), wts))
  return jnp.mean(jnp.square(mu - target['mean']) + jnp.square(sigma - target['std']))


# --- Maximum mean discrepancy (Li et al. 2017) ----------------------------------------------------

def _check_kernel(kernel: str) -> None:
  if kernel not in MMD_KERNELS:
    raise ConfigError(f'unknown mmd_kernel {kernel!r}; choose one of {", ".join(MMD_KERNELS)}')


def _sample_rows(x: jax.Array, samples: int, key) -> jax.Array:
  """``samples`` distinct rows of (M, C) ``x`` drawn with ``key``; all rows, in order, when
  ``samples >= M`` (no key needed)."""
  m = x.shape[0]
  if samples >= m:
    return x
  idx = jax.random.permutation(key, m)[:samples]
  return x[idx]


def _gaussian_rows(features: jax.Array, mask: Optional[jax.Array], samples: int) -> jax.Array:
  """The (M, C) rows the gaussian MMD samples from, after its option checks (no masks)."""
  if mask is not None:
    raise ConfigError('mmd_kernel=gaussian defines no per-region statistics (it samples '
                      'positions): use mmd_kernel=linear or poly with masks')
  _check_int(samples, 'style_samples', 2, 'positions sampled by the gaussian MMD')
  return _flat(features)[0]


def mmd_target(features: jax.Array, mask: Optional[jax.Array] = None, kernel: str = 'poly',
               samples: int = 1024, key=None) -> dict:
  """The style side of :func:`mmd_loss`.

  linear: ``{'mean'}``; poly: ``{'mean', 'gram'}`` (area-normalised, :func:`gram.gram`);
  gaussian: ``{'samples'}``, ``min(samples, Ms)`` distinct style positions drawn with ``key``
  (a fixed ``PRNGKey(0)`` when None: one sample of the style for the whole run) -- all of them,
  in order, when ``samples >= Ms``.
  """
  _check_kernel(kernel)
  if kernel == 'gaussian':
    x = _gaussian_rows(features, mask, samples)
    key = jax.random.PRNGKey(0) if key is None else key
    return {'samples': _sample_rows(x, samples, key)}
  x, wts = _flat(features, mask)
  out = {'mean': _mean(x, wts)}
  if kernel == 'poly':
    out['gram'] = gram_lib.gram(features, mask)
  return out


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  d = (jnp.sum(jnp.square(a), 1)[:, None] + jnp.sum(jnp.square(b), 1)[None, :]
       - 2. * jnp.matmul(a, b.T, precision=_HI))
  return jnp.maximum(d, 0.)


def _mean_offdiag_sq_dist(x: jax.Array) -> jax.Array:
  """``mean_{i != j} |x_i - x_j|^2`` in closed form: ``(2n sum|x|^2 - 2|sum x|^2) / (n(n-1))``."""
  n = x.shape[0]
  s = 2. * n * jnp.sum(jnp.square(x)) - 2. * jnp.sum(jnp.square(jnp.sum(x, 0)))
  return s / max(n * (n - 1), 1)


def gaussian_bandwidth(x: jax.Array, y: jax.Array) -> jax.Array:
  """``2 sigma^2`` of the Gaussian kernel: the mean squared distance of the sampled pairs.

  The authors' ``mmd_loss.py`` sets ``gamma = 1 / mean(d^2)`` over its pairs -- weights 1/4
  (x, x'), 1/4 (y, y') and 1/2 (x, y) -- i.e. ``k = exp(-d^2 / mean(d^2))``, recomputed every
  step from both samples and held constant in the backward pass. Here: the same weighting over
  all pairs of the two samples, in closed form (after centring, which distances ignore and which
  keeps the float32 differences of large sums accurate), under ``stop_gradient``.
  """
  centre = (jnp.mean(x, 0) + jnp.mean(y, 0)) / 2.
  x, y = x - centre, y - centre
  cross = (jnp.mean(jnp.sum(jnp.square(x), 1)) + jnp.mean(jnp.sum(jnp.square(y), 1))
           - 2. * jnp.dot(jnp.mean(x, 0), jnp.mean(y, 0), precision=_HI))
  bw = (_mean_offdiag_sq_dist(x) + _mean_offdiag_sq_dist(y) + 2. * cross) / 4.
  return jax.lax.stop_gradient(jnp.maximum(bw, jnp.finfo(x.dtype).tiny))


def _gaussian_mmd2(x: jax.Array, y: jax.Array) -> jax.Array:
  """Biased (V-statistic) MMD^2 of two samples under the Gaussian kernel: >= 0, 0 iff equal."""
  bw = gaussian_bandwidth(x, y)
  off = lambda d: jnp.where(jnp.eye(d.shape[0], dtype=bool), 0., d)
  kxx = jnp.exp(-off(_sq_dists(x, x)) / bw)
  kyy = jnp.exp(-off(_sq_dists(y, y)) / bw)
  kxy = jnp.exp(-_sq_dists(x, y) / bw)
  return jnp.maximum(jnp.mean(kxx) + jnp.mean(kyy) - 2. * jnp.mean(kxy), 0.)


def mmd_loss(features: jax.Array, target: dict, mask: Optional[jax.Array] = None,
             kernel: str = 'poly', c: float = 0., samples: int = 1024, key=None) -> jax.Array:
  """Squared maximum mean discrepancy of Li, Wang, Liu & Hou 2017 ("Demystifying Neural Style
  Transfer", Sec. 3-4): ``L = MMD^2[F, S] / Z`` with, over the positions' feature vectors,

    MMD^2 = 1/M^2 sum_ij k(x_i, x_j) + 1/Ms^2 sum_ij k(s_i, s_j) - 2/(M Ms) sum_ij k(x_i, s_j)

  * linear, ``k = x.y``: ``MMD^2 = |mu_x - mu_s|^2``; ``Z = C``.
  * poly, ``k = (x.y + c)^2``: ``MMD^2 = |G_x - G_s|_F^2 + 2c |mu_x - mu_s|^2`` with the
    area-normalised Grams ``G = F^T F / M`` -- closed form, no pairwise matrix, the cost of a
    Gram; ``Z = C^2``. With ``c = 0`` it is the Gram loss: exactly
    ``gram.style_loss(loss_norm='tf_tutorial')`` and 4x ``loss_norm='gatys'`` (the paper's
    ``1/(4 N^2 M^2) sum (G - A)^2 = MMD^2 / (4 N^2)``). ``c < 0`` (not a PSD kernel) is refused.
  * gaussian, ``k = exp(-|x - y|^2 / (2 sigma^2))`` with ``2 sigma^2`` the mean squared distance
    of the sampled pairs (:func:`gaussian_bandwidth`, as the authors' code, multiplier 1), on
    ``min(samples, M)`` distinct image positions drawn with ``key`` (every call a fresh sample)
    against the target's style sample; ``Z = C``. No masks.

  The Z's are those of the authors' ``neural-style.py``, which divides the linear and Gaussian
  gradients by ``C M`` and the poly one by ``C^2 M``; the ``M`` there undoes their un-normalised
  sums (and the Gaussian's sum over pairs), so per layer it is ``M/2 * MMD^2/C`` (linear),
  ``M/4 * MMD^2/C^2`` (poly) and ``1/4 * MMD^2/C`` (Gaussian), times the kernel's loss weight
  (2e3, 1e-1, 3e14): layer and loss weights belong to a preset.

  Deviation, Gaussian kernel: the paper and code use the linear-time estimator (disjoint pairs
  of all positions), which can be negative; here the biased quadratic estimator on sampled
  positions (>= 0, zero for equal samples, an O(samples^2) kernel matrix per side). With
  ``samples >= M`` and ``>= Ms`` no sampling happens: an image equal to the style gives 0.
  """
  _check_kernel(kernel)
  _, _, ch = features.shape
  if kernel == 'gaussian':
    x = _gaussian_rows(features, mask, samples)
    if key is None and samples < x.shape[0]:
      raise ConfigError('mmd_kernel=gaussian samples positions: mmd_loss needs a PRNG key')
    return _gaussian_mmd2(_sample_rows(x, samples, key), target['samples']) / ch
  x, wts = _flat(features, mask)
  dmu2 = jnp.sum(jnp.square(_mean(x, wts) - target['mean']))
  if kernel == 'linear':
    return dmu2 / ch
  if isinstance(c, (int, float)) and c < 0:
    raise ConfigError(f'mmd_c must be >= 0 (the kernel (x.y + c)^2 is not positive definite '
                      f'for c < 0); got {c}')
  dg2 = jnp.sum(jnp.square(gram_lib.gram(features, mask) - target['gram']))
  if isinstance(c, (int, float)) and c == 0:
    return dg2 / ch ** 2
  return (dg2 + 2. * c * dmu2) / ch ** 2


# --- Central moment discrepancy (Kalischek et al. 2021) -------------------------------------------

def _power_sums_fwd(d, wts, order):
  out, p = [], d
  for _ in range(2, order + 1):
    p = p * d
    out.append(jnp.sum(wts * p, axis=0))
  return jnp.stack(out), (d, wts)


def _power_sums_bwd(order, res, g):
  d, wts = res
  # d/dd: w * sum_k k g_k d^(k-1) = w * d * P(d), P(t) = sum_k k g_k t^(k-2) (Horner).
  p = order * g[order - 2]
  for k in range(order - 1, 1, -1):
    p = p * d + k * g[k - 2]
  # d/dw: sum_c sum_k g_k d^k = sum_c d^2 Q(d), Q(t) = sum_k g_k t^(k-2).
  q = g[order - 2]
  for k in range(order - 1, 1, -1):
    q = q * d + g[k - 2]
  return wts * d * p, jnp.sum(jnp.square(d) * q, axis=1, keepdims=True)


def _power_sums_impl(d, wts, order):
  """``S_k = sum_i w_i d_i^k`` for k = 2..order: (order - 1, C) from (M, C) ``d`` and (M, 1)
  weights ``w``. Its own VJP evaluates ``sum_k k g_k d^(k-1)`` by Horner's rule, so the backward
  pass keeps only ``d`` instead of every power (autodiff's order - 1 (M, C) residuals)."""
  return _power_sums_fwd(d, wts, order)[0]


_power_sums = jax.custom_vjp(_power_sums_impl, nondiff_argnums=(2,))
_power_sums.defvjp(_power_sums_fwd, _power_sums_bwd)


def _central_moments(features: jax.Array, mask: Optional[jax.Array], order: int):
  """Mean (C,) and central moments c_2..c_order (order - 1, C) of ``sigmoid(features)``."""
  x, wts = _flat(jax.nn.sigmoid(features), mask)
  if wts is None:
    wts = jnp.full((x.shape[0], 1), 1. / x.shape[0], x.dtype)
  mu = jnp.sum(wts * x, axis=0)
  return mu, _power_sums(x - mu, wts, order)


def cmd_target(features: jax.Array, mask: Optional[jax.Array] = None, order: int = 5) -> dict:
  """The style side of :func:`cmd_loss`: ``{'mean': (C,), 'moments': (order - 1, C)}`` of the
  sigmoid-bounded features."""
  _check_int(order, 'cmd_order', 2, 'the highest central moment of style_loss=cmd')
  mu, moments = _central_moments(features, mask, order)
  return {'mean': mu, 'moments': moments}


def cmd_loss(features: jax.Array, target: dict, mask: Optional[jax.Array] = None,
             order: int = 5) -> jax.Array:
  """Central moment discrepancy of Kalischek, Wegner & Schindler 2021 ("In the light of feature
  distributions: moment matching for Neural Style Transfer", CVPR; arXiv:2103.07208), the CMD of
  Zellinger et al. 2017 applied per layer:

    CMD_K = 1/|b-a| |E(x) - E(s)|_2 + sum_{k=2..K} 1/|b-a|^k |c_k(x) - c_k(s)|_2,
    c_k(x) = E((x - E(x))^k)  (per channel; |.|_2 over the C channels, not squared)

  The features are bounded by a sigmoid, as the authors' code (``torch.sigmoid`` of each layer
  before the moments) -- so ``[a, b] = [0, 1]`` and every order's factor is 1, as their weights
  ``(1, 1, 1, 1, 1)``; K = ``order`` (theirs: 5). Note: their code takes the sigmoid of the
  *pre-activation* conv outputs (conv1_1 ... conv5_1 before ReLU); these features are whatever
  the caller passes (in this codebase post-ReLU, so the sigmoid sees ``max(z, 0)``). The
  per-layer weights ``1e3 / C^2`` of their ``main.py`` belong to a preset. With a mask the
  moments are the region's (weights ``mask^2 / sum(mask^2)``). ``order < 2``: ConfigError.
  """
  _check_int(order, 'cmd_order', 2, 'the highest central moment of style_loss=cmd')
  if target['moments'].shape[0] != order - 1:
    raise ConfigError(f'cmd target has {target["moments"].shape[0] + 1} moments, the loss wants '
                      f'order={order}: compute the target with the same cmd_order')
  mu, moments = _central_moments(features, mask, order)
  loss = _safe_sqrt(jnp.sum(jnp.square(mu - target['mean'])))
  return loss + jnp.sum(_safe_sqrt(jnp.sum(jnp.square(moments - target['moments']), axis=1)))


# --- Exact histogram matching (Risser et al. 2017; Zhang et al. 2022) -----------------------------

def histogram_target(features: jax.Array) -> dict:
  """The style's per-channel sorted values: ``{'sorted': (Ms, C)}``."""
  x, _ = _flat(features)
  return {'sorted': sort(x, axis=0)}


def histogram_loss(features: jax.Array, target: dict) -> jax.Array:
  """Exact per-channel histogram matching by sorting:

    L = 1/(M C) sum_c sum_i (sort(x^c)_i - T^c_i)^2

  with ``T^c`` the style's sorted values of channel c at the image's quantiles (:func:`quantiles`;
  the sorted values themselves when ``Ms == M``). Its gradient ``2/(MC) (x - T[rank(x)])`` pulls
  each activation to the style value of the same rank: the histogram loss of Risser, Wilmot &
  Barnes 2017 (arXiv:1701.08893, Sec. 4: ``|O - R(O)|^2`` with ``R`` the histogram remapping,
  here exact instead of 256 bins) and the EFDM style loss of Zhang et al. 2022 (CVPR,
  arXiv:2203.07740: Sort-Matching, ``mse(x, sorted_s[argsort(argsort(x))])`` in the authors'
  ``net.py``, which needs equal sizes). For equal sizes it is the mean over channels of the
  1-D squared Wasserstein distance ``W2^2`` of the channel's values. No masks.
  """
  x, _ = _flat(features)
  t = quantiles(target['sorted'], x.shape[0])
  return jnp.mean(jnp.square(sort(x, axis=0) - t))


# --- Sliced Wasserstein (Heitz et al. 2021) -------------------------------------------------------

def sliced_wasserstein_target(features: jax.Array, key=None) -> dict:
  """The style's features as (Ms, C) rows: ``{'features'}`` (the directions change every call,
  so the projections cannot be precomputed). ``key`` is accepted and unused (callers pass one to
  every sampled loss's target)."""
  del key
  x, _ = _flat(features)
  return {'features': x}


def random_directions(key, projections: int, channels: int, dtype=jnp.float32) -> jax.Array:
  """(projections, channels) directions uniform on the unit sphere: normalised Gaussians."""
  v = jax.random.normal(key, (projections, channels), dtype)
  return v / jnp.sqrt(jnp.sum(jnp.square(v), axis=1, keepdims=True))


def sliced_wasserstein_loss(features: jax.Array, target: dict, key,
                            projections: int = 0) -> jax.Array:
  """Sliced Wasserstein loss of Heitz, Vanhoey, Chambon & Belcour 2021 ("A Sliced Wasserstein
  Loss for Neural Texture Synthesis", CVPR; arXiv:2006.07229, Sec. 3 / Fig. 2):

    L = 1/(P M) sum_p sum_i (sort(x . v_p)_i - T_p,i)^2

  over ``P`` random unit directions ``v_p`` drawn from ``key`` (fresh every call: the paper
  redraws them during optimisation), ``T_p`` the sorted projections of the style at the image's
  quantiles (:func:`quantiles`). ``projections=0`` means P = C, the layer's channels, as the
  paper and both official codes (``Ndirection = dim``; ``torch.mean`` over directions and
  positions). Each direction's term is the 1-D squared Wasserstein distance ``W2^2`` of the
  projected distributions. ``projections < 0``: ConfigError. No masks.
  """
  _check_int(projections, 'sw_projections', 0, 'random directions of style_loss='
             'sliced_wasserstein; 0 = the layer\'s channels')
  x, _ = _flat(features)
  s = target['features']
  p = projections or x.shape[1]
  v = random_directions(key, p, x.shape[1], x.dtype)
  # (P, M) rows: each direction's projections contiguous, as the sort takes them (no transposes).
  px = sort(jnp.matmul(v, x.T, precision=_HI), axis=1)
  ps = sort(jnp.matmul(v, s.T, precision=_HI), axis=1)
  return jnp.mean(jnp.square(px - quantiles(ps.T, x.shape[0]).T))
