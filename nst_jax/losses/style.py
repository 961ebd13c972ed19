"""The style term as one static choice: the registry of style losses (``config.style_loss``).

Every entry is a pair of pure functions over VGG19 features: a *target* computed once per style
image, and a *loss* of the image being optimised against it. The Gram matrix (Gatys et al.,
:mod:`nst_jax.losses.gram`) keeps its own path in the objective (blended Grams, Novak's shift and
chain, exactly as before); the losses that followed it live here:

================== ============================================= ======= ======= ============
style_loss         source                                        regions sampled module
================== ============================================= ======= ======= ============
gram               Gatys, Ecker & Bethge 2015 (eq. 4)            yes     no      gram
mean_std           Li, Wang, Liu & Hou 2017 (BN statistics)      yes     no      distribution
mmd                Li et al. 2017 (linear / poly / gaussian)     lin/poly gauss  distribution
cmd                Kalischek, Wegner & Schindler 2021            yes     no      distribution
histogram          Risser, Wilmot & Barnes 2017; Zhang 2022      no      no      distribution
sliced_wasserstein Heitz, Vanhoey, Chambon & Belcour 2021        no      yes     distribution
mrf                Li & Wand 2016 (CNNMRF)                       no      no      patches
strotss            Kolkin, Salavon & Shakhnarovich 2019          no      yes     strotss
nnst               Kolkin, Kalogerakis, Shechtman & S. 2022      no      yes     neighbors
================== ============================================= ======= ======= ============

Several style images are combined by weighting their losses (the blend weights of
:func:`nst_jax.losses.objective.compute_targets`, per style, region and layer): for the Gram loss
that has the same gradient as blending the Grams; for distribution losses it is the mixture's
natural generalisation. Sampled losses draw their positions or projections from a PRNG key the
optimisation loop carries in the optimiser state and splits every step, so a run is reproducible
from its seed and resumes exactly.

Losses that define per-region statistics (weighted moments) take the region masks of spatial
control and the style masks; the others raise a ConfigError naming the loss when masks are given.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.losses import distribution, neighbors, patches, strotss

STYLE_LOSSES = ('gram', 'mean_std', 'mmd', 'cmd', 'histogram', 'sliced_wasserstein', 'mrf',
                'strotss', 'nnst')
MMD_KERNELS = ('linear', 'poly', 'gaussian')
CONTENT_LOSSES = ('mse', 'self_similarity')


class Options(NamedTuple):
  """Static options of the style losses (hashable; a field of the objective's Spec)."""
  mmd_kernel: str = 'poly'        # linear | poly | gaussian
  mmd_c: float = 0.               # poly kernel (x.y + c)^2; 0 = the Gram loss (Li et al. 2017)
  cmd_order: int = 5              # highest central moment K (Kalischek et al. 2021: 5)
  sw_projections: int = -1        # random directions per layer; -1 = the layer's channels
  mrf_patch_size: int = 3         # CNNMRF: 3x3 feature patches
  mrf_stride: int = 1
  samples: int = 1024             # positions sampled per step (mmd gaussian, strotss)


class StyleLoss(NamedTuple):
  name: str
  regions: Callable[[Options], bool]   # whether masks (regions, style masks) are defined
  sampled: Callable[[Options], bool]   # whether the loss needs a fresh key every step
  target: Callable[..., Any]           # (feats, layers, pixels, masks, opts) -> pytree
  loss: Callable[..., jax.Array]       # (feats, pixels, target, lw, key, masks, opts, layers)


def _per_layer(target_fn: Callable[..., Any], loss_fn: Callable[..., jax.Array],
               target_kw: Callable[[Options, int], dict], loss_kw: Callable[[Options, int], dict],
               masked: Callable[[Options], bool], sampled: Callable[[Options], bool],
               name: str) -> StyleLoss:
  """A loss defined per layer: targets per layer, terms summed with the layer weights."""
  def target(feats, layers, pixels, masks, opts):
    del pixels
    out = {}
    for l in layers:
      f = feats[l]
      kw = target_kw(opts, f.shape[-1])
      if masks is not None:
        kw['mask'] = masks[l]
      out[l] = target_fn(f, **kw)
    return out

  def loss(feats, pixels, target, layer_weights, key, masks, opts, layers):
    del pixels
    total = jnp.zeros((), jnp.float32)
    for i, l in enumerate(layers):  # Not the target's keys: pytrees sort them.
      f = feats[l]
      kw = loss_kw(opts, f.shape[-1])
      if masks is not None:
        kw['mask'] = masks[l]
      if sampled(opts):
        kw['key'] = jax.random.fold_in(key, i)
      total = total + layer_weights[i] * loss_fn(f, target[l], **kw)
    return total

  return StyleLoss(name, masked, sampled, target, loss)


def _strotss_loss() -> StyleLoss:
  def target(feats, layers, pixels, masks, opts):
    del masks
    return strotss.strotss_target({l: feats[l] for l in layers}, pixels, opts.samples)

  def loss(feats, pixels, target, layer_weights, key, masks, opts, layers):
    del masks
    feats = {l: feats[l] for l in layers}
    # One hypercolumn over all style layers: the layer weights scale the term as a whole.
    return jnp.sum(layer_weights) * strotss.strotss_loss(
        feats, pixels, target, key, samples=opts.samples)

  return StyleLoss('strotss', lambda o: False, lambda o: True, target, loss)


_never = lambda o: False
_always = lambda o: True
_none = lambda o, c: {}

REGISTRY: dict[str, StyleLoss] = {
    'mean_std': _per_layer(distribution.mean_std_target, distribution.mean_std_loss,
                           _none, _none, _always, _never, 'mean_std'),
    'mmd': _per_layer(
        distribution.mmd_target, distribution.mmd_loss,
        # A fixed sample of the style's positions (the image's is redrawn every step).
        lambda o, c: {'kernel': o.mmd_kernel, 'samples': o.samples,
                      'key': jax.random.PRNGKey(0)},
        lambda o, c: {'kernel': o.mmd_kernel, 'c': o.mmd_c, 'samples': o.samples},
        lambda o: o.mmd_kernel != 'gaussian', lambda o: o.mmd_kernel == 'gaussian', 'mmd'),
    'cmd': _per_layer(distribution.cmd_target, distribution.cmd_loss,
                      lambda o, c: {'order': o.cmd_order}, lambda o, c: {'order': o.cmd_order},
                      _always, _never, 'cmd'),
    'histogram': _per_layer(distribution.histogram_target, distribution.histogram_loss,
                            _none, _none, _never, _never, 'histogram'),
    'sliced_wasserstein': _per_layer(
        distribution.sliced_wasserstein_target, distribution.sliced_wasserstein_loss,
        _none, lambda o, c: {'projections': c if o.sw_projections < 0 else o.sw_projections},
        _never, _always, 'sliced_wasserstein'),
    'mrf': _per_layer(
        patches.mrf_target, patches.mrf_loss,
        lambda o, c: {'patch_size': o.mrf_patch_size, 'stride': o.mrf_stride},
        lambda o, c: {'patch_size': o.mrf_patch_size, 'stride': o.mrf_stride},
        _never, _never, 'mrf'),
    'strotss': _strotss_loss(),
    'nnst': _per_layer(neighbors.nnst_target, neighbors.nnst_loss, _none, _none, _never, _always,
                       'nnst'),
}


def get(name: str) -> StyleLoss:
  """The registry entry of a (non-Gram) style loss; ConfigError with the nearest name."""
  if name not in REGISTRY:
    raise ConfigError(f'unknown style_loss {name!r}; choose one of {", ".join(STYLE_LOSSES)}'
                      + schema.did_you_mean(name, STYLE_LOSSES))
  return REGISTRY[name]


def options(config: Any) -> Options:
  """The :class:`Options` of a ``stylize`` config (validated: ConfigError when out of range)."""
  o = Options(str(config.mmd_kernel), float(config.mmd_c), int(config.cmd_order),
              int(config.sw_projections), int(config.mrf_patch_size), int(config.mrf_stride),
              int(config.style_samples))
  validate(str(config.style_loss), o, str(config.content_loss))
  return o


def validate(name: str, o: Options, content_loss: str = 'mse') -> None:
  """ConfigError for an unknown loss or an option out of range (before anything is compiled)."""
  if name != 'gram':
    get(name)
  if content_loss not in CONTENT_LOSSES:
    raise ConfigError(f'unknown content_loss {content_loss!r}; choose one of '
                      f'{", ".join(CONTENT_LOSSES)}' + schema.did_you_mean(content_loss,
                                                                           CONTENT_LOSSES))
  if o.mmd_kernel not in MMD_KERNELS:
    raise ConfigError(f'unknown mmd_kernel {o.mmd_kernel!r}; choose one of '
                      f'{", ".join(MMD_KERNELS)}')
  if o.cmd_order < 2:
    raise ConfigError(f'cmd_order (the highest central moment of style_loss=cmd) must be >= 2, '
                      f'got {o.cmd_order}')
  if o.sw_projections == 0 or o.sw_projections < -1:
    raise ConfigError(f'sw_projections (random directions of style_loss=sliced_wasserstein) '
                      f'must be >= 1, or -1 for the layer\'s channel count; got '
                      f'{o.sw_projections}')
  if o.mrf_patch_size < 1 or o.mrf_stride < 1:
    raise ConfigError(f'mrf_patch_size and mrf_stride must be >= 1, got {o.mrf_patch_size} '
                      f'and {o.mrf_stride}')
  if o.samples < 2:
    raise ConfigError(f'style_samples (positions sampled per step) must be >= 2, got '
                      f'{o.samples}')


def needs_key(name: str, o: Options, content_loss: str = 'mse') -> bool:
  """Whether an objective with this style (and content) loss samples (needs a key per step)."""
  return content_loss == 'self_similarity' or (name != 'gram' and get(name).sampled(o))


def check_masks(name: str, o: Options, masked: bool) -> None:
  """ConfigError naming the loss when masks (regions or style masks) are given to a loss that
  defines no per-region statistics."""
  if masked and name != 'gram' and not get(name).regions(o):
    kernel = f' with mmd_kernel={o.mmd_kernel}' if name == 'mmd' else ''
    ok = [n for n in STYLE_LOSSES if n == 'gram' or REGISTRY[n].regions(Options())]
    raise ConfigError(f'style_loss={name}{kernel} defines no per-region statistics, so it '
                      'cannot be used with masks, labels or style masks; losses that can: '
                      + ', '.join(ok))


def check_size(name: str, o: Options, layers: Sequence[str], strides: Mapping[str, int],
               shape: Sequence[int], what: str) -> None:
  """ConfigError when a layer's feature map cannot hold one MRF patch (before compiling)."""
  if name != 'mrf':
    return
  for l in layers:
    h, w = (int(shape[0]) // strides[l], int(shape[1]) // strides[l])
    if min(h, w) < o.mrf_patch_size:
      raise ConfigError(f'mrf_patch_size={o.mrf_patch_size} does not fit {l} of {what} '
                        f'({h}x{w} positions at {shape[0]}x{shape[1]} px): raise size, use a '
                        'smaller patch or shallower layers')


def loss_temp_bytes(name: str, o: Options, layer_shapes: Sequence[tuple[int, int, int]]) -> int:
  """Bytes of the style loss's own temporaries in one evaluation (value and gradient), beyond
  the Gram path's: the formula of the memory estimate. ``layer_shapes``: (h, w, C) of each style
  layer at the optimised image's size (style images are assumed of similar size)."""
  if name in ('gram', 'mean_std', 'mmd') and not (name == 'mmd' and o.mmd_kernel == 'gaussian'):
    return 0
  total = 0
  n = o.samples
  for h, w, c in layer_shapes:
    m = h * w
    if name == 'cmd':
      total += 3 * m * c * 4                         # centred features (its own VJP keeps them)
    elif name == 'histogram':
      # sorted values, int64 packed keys (2), permutation, target, cotangent
      total += 6 * m * c * 4
    elif name == 'sliced_wasserstein':
      p = c if o.sw_projections < 0 else o.sw_projections
      # image: projections, packed keys (2), permutation, sorted, cotangent; style: projections,
      # sorted, quantiles
      total += 9 * m * p * 4 + m * c * 4
    elif name == 'mmd':
      total += 6 * n * n * 4 + 4 * n * c * 4         # three kernel matrices and cotangents
    elif name == 'mrf':
      # losses.patches: the style's and the image's patches (D = k^2 C values each), a block
      # of correlations, the features (the target's patches counted here too).
      d, n_p = o.mrf_patch_size ** 2 * c, -(-h // o.mrf_stride) * -(-w // o.mrf_stride)
      total += 4 * (n_p * d + n_p) + 4 * (3 * n_p * d + min(256, n_p) * n_p + m * c)
  if name == 'nnst':
    # losses.neighbors: the sampled, centred and normalised image and style features (and the
    # image's cotangents), the matched rows and one block of scores, per layer, and when the map
    # is sampled its full-size cotangent (the gather's transpose). An upper bound of XLA:CPU's
    # memory_analysis at 24x32x512 ... 192x256x64 (1.1-1.8x); the style's whole features are
    # the target.
    for h, w, c in layer_shapes:
      st = neighbors.grid_stride(h, w)
      kept = (h // st) * (w // st)   # sampled positions (``n`` is STROTSS's sample count)
      total += 4 * (5 * kept * c + min(neighbors.DEFAULT_CHUNK, kept) * kept
                    + (h * w * c if st > 1 else 0))
  if name == 'strotss':
    # losses.strotss: 5 draws of style hypercolumns (m), the image's (n), cost matrices and
    # moments over D = channels + RGB.
    d, m = sum(c for _, _, c in layer_shapes) + 3, 5 * n
    total += 4 * (m * d + d + d * d) + 4 * (3 * m * d + 3 * n * m + 2 * d * d + 4 * n * d)
  return total


def self_similarity(feats: Mapping[str, jax.Array], content: Mapping[str, jax.Array],
                    pixels: jax.Array, content_pixels: jax.Array, key: jax.Array, o: Options
                    ) -> jax.Array:
  """STROTSS's content term (``content_loss=self_similarity``): the image's and the content's
  self-similarity of sampled hypercolumns, RGB included as in the authors' code
  (:func:`nst_jax.losses.strotss.self_similarity_loss`)."""
  return strotss.self_similarity_loss(feats, content, key, samples=o.samples, pixels=pixels,
                                      content_pixels=content_pixels)
