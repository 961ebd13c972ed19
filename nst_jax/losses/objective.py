"""The style-transfer objective as a pure function of the image, the targets and the weights.

Static choices that change the program (which layers, pooling, normalisation) live in the hashable
:class:`Spec`; numeric choices (loss weights, per-layer weight vectors, loss scale) live in the
:class:`Weights` pytree of arrays, so a batch of configurations can be vmapped over them.

Perceptual controls (Gatys et al. 2016) and Novak & Nikulin (2016) enter as:
  * regions: ``Targets.style[l]`` is (R, C, C), one guided Gram per region, and
    ``Targets.masks[l]`` the (R, h, w) region masks at that layer's resolution;
  * unstyled (held) pixels: ``Targets.hold`` (H, W) and ``Targets.hold_image``; the optimised
    image is composed as ``(1 - hold) z + hold content`` (``Spec.project``) and/or pulled
    towards the content by a hold term (``Spec.use_hold``, weight ``Weights.preserve``);
  * activation shift ``Weights.gram_shift`` (traced): targets are stored unshifted with their
    feature means (``Targets.style_means``) and shifted exactly by :func:`gram_lib.shift_gram`;
  * correlation chain (``Spec.chain``): cross Grams of neighbouring style layers
    (``Targets.chain``) replace the per-layer Grams; link i has the weight of style layer i.

The style losses that followed the Gram matrix (``Spec.style_loss``, :mod:`nst_jax.losses.style`)
keep one target per style image (``Targets.style`` is then a tuple over the styles) and weight
their losses by ``Targets.style_blend`` (S, R, L); those that sample (sliced Wasserstein, a
gaussian MMD, STROTSS) take the step's PRNG key, which the loop splits from the one it carries in
the optimiser state (starting at ``Weights.key``, from the seed).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nst_jax.errors import ConfigError
from nst_jax.losses import gram as gram_lib
from nst_jax.losses import style as style_lib
from nst_jax.losses import terms as terms_lib
from nst_jax.models import vgg
from nst_jax.runtime import compile_cache, devices


def layer_choice(config: ml_collections.ConfigDict
                 ) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
  """(content layers, style layers, chain) in canonical names, after ``mode`` drops one list.

  Raises ConfigError for unknown or pooling layers, no layers at all, or a chain of one layer.
  """
  content_layers = tuple(vgg.parse_layers(config.content_layers))
  style_layers = tuple(vgg.parse_layers(config.style_layers))
  for layer in content_layers + style_layers:
    if layer.endswith('_pool'):
      raise ConfigError(f'{layer} is a pooling layer; content and style layers must be conv '
                        'layers')
  if config.mode == 'content_reconstruction':
    style_layers = ()
  elif config.mode == 'texture_synthesis':
    content_layers = ()
  if not content_layers and not style_layers:
    raise ConfigError('no content or style layers: nothing to optimise')
  chain = bool(config.chain) and bool(style_layers)
  if chain and len(style_layers) < 2:
    raise ConfigError('chain (correlation chain) needs at least two style layers')
  return content_layers, style_layers, chain


def parse_floats(text: Any, what: str) -> Optional[list[float]]:
  """A comma/space-separated string (or sequence) of numbers as floats; None if empty."""
  if text is None or (isinstance(text, str) and not text.strip()):
    return None
  if isinstance(text, str):
    text = [t for t in text.replace(' ', ',').split(',') if t]
  try:
    return [float(t) for t in text]
  except (TypeError, ValueError):
    raise ConfigError(f'{what} must be comma-separated numbers, got {text!r}') from None


def _layer_weights(text: Any, layers: Sequence[str], what: str) -> Optional[list[float]]:
  values = parse_floats(text, what)
  if values is not None and len(values) != len(layers):
    raise ConfigError(f'{what} has {len(values)} values for {len(layers)} layers {list(layers)}')
  return values


def layer_weight_lists(config: ml_collections.ConfigDict, spec: Spec
                       ) -> tuple[Optional[list], Optional[list]]:
  """The config's per-layer content and style weights (None = 1/L each).

  Explicit ``*_layer_weights`` win; ``layer_weighting='geometric'`` fills in the others.
  """
  content_w = _layer_weights(config.content_layer_weights, spec.content_layers,
                             'content_layer_weights')
  style_w = _layer_weights(config.style_layer_weights, spec.style_layers, 'style_layer_weights')
  if config.layer_weighting == 'geometric':
    base = float(config.geometric_base)
    content_w = content_w or geometric_layer_weights(spec.content_layers, base, True)
    style_w = style_w or geometric_layer_weights(spec.style_layers, base)
  return content_w, style_w


def make_spec(config: ml_collections.ConfigDict) -> Spec:
  """The static part of the objective (layers, pooling, norms); raises ConfigError for bad
  layer choices."""
  content_layers, style_layers, chain = layer_choice(config)
  return Spec(content_layers, style_layers, config.pooling, config.conv_impl,
                        config.loss_norm, config.tv_type, float(config.image_range),
                        use_tv=float(config.tv_weight) != 0., chain=chain,
                        remat=','.join(map(str, vgg.parse_remat(config.remat))),
                        conv_dtype=devices.resolve_conv_dtype(config.conv_dtype),
                        style_loss=str(config.style_loss),
                        style_options=style_lib.options(config),
                        content_loss=str(config.content_loss))


class Spec(NamedTuple):
  """Static (hashable) part of the objective."""
  content_layers: tuple[str, ...]
  style_layers: tuple[str, ...]
  pooling: str = 'max'
  conv_impl: str = 'direct'
  loss_norm: str = 'gatys'
  tv_type: str = 'l2'
  image_range: float = 255.
  use_tv: bool = True
  chain: bool = False            # Novak & Nikulin's correlation chain instead of per-layer Grams
  project: bool = False          # compose held (unstyled) pixels from the content image
  use_hold: bool = False         # add the hold term ``preserve * mean(hold * (x - content)^2)``
  remat: str = 'none'            # VGG blocks rematerialised in the backward pass (vgg.parse_remat)
  conv_dtype: str = 'float32'    # the VGG convolutions' operand dtype (vgg.CONV_DTYPES)
  style_loss: str = 'gram'       # the style term (losses.style.STYLE_LOSSES)
  style_options: style_lib.Options = style_lib.Options()  # its static options
  content_loss: str = 'mse'      # mse (Gatys) | self_similarity (Kolkin et al. 2019)

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))

  @property
  def stochastic(self) -> bool:
    """Whether the objective samples: it then takes a fresh PRNG key every step."""
    return style_lib.needs_key(self.style_loss if self.style_layers else 'gram',
                               self.style_options,
                               self.content_loss if self.content_layers else 'mse')


class Weights(NamedTuple):
  """Numeric (traceable, vmappable) part of the objective."""
  content: jax.Array             # scalar content weight (alpha)
  style: jax.Array               # scalar style weight (beta)
  tv: jax.Array                  # scalar total-variation weight
  content_layers: jax.Array      # (len(spec.content_layers),)
  style_layers: jax.Array        # (len(spec.style_layers),)
  loss_scale: jax.Array          # multiplies the objective the optimiser sees
  gram_shift: jax.Array = 0.     # activation shift in the Gram matrices (Novak: -1)
  preserve: jax.Array = 0.       # weight of the hold term of unstyled pixels (Spec.use_hold)
  key: Optional[jax.Array] = None  # the first PRNG key of a sampling objective (from the seed)


class Targets(NamedTuple):
  """What the image is pulled towards: content features and (blended) style Grams."""
  content: dict[str, jax.Array]  # layer -> (1, H, W, C) content features
  style: dict[str, jax.Array]    # layer -> (C, C) area-normalised Gram, (R, C, C) with regions
  style_means: Optional[dict] = None  # layer -> (C,) / (R, C) feature means (for gram_shift)
  masks: Optional[dict] = None   # layer -> (R, h, w) region masks of the image being optimised
  chain: Optional[dict] = None   # first layer of a link -> (C1, C2) / (R, C1, C2) cross Gram
  chain_means: Optional[dict] = None  # first layer of a link -> ((C1,), (C2,)) means
  hold: Optional[jax.Array] = None    # (H, W) unstyled pixels (1 = held to the content)
  hold_image: Optional[jax.Array] = None  # (H, W, 3) the content, optimiser domain
  style_blend: Optional[jax.Array] = None  # (S, R, L) loss weights of a non-Gram style loss
  content_pixels: Optional[jax.Array] = None  # (H, W, 3) RGB 0..255 (self-similarity content)


def make_weights(spec: Spec, content: float, style: float, tv: float,
                 content_layer_weights=None, style_layer_weights=None,
                 loss_scale: float = 1., gram_shift: float = 0., preserve: float = 0.,
                 seed: int = 0) -> Weights:
  """Builds :class:`Weights`; per-layer weights default to 1/L each. A sampling objective
  (``spec.stochastic``) gets its first key from ``seed``."""
  def per_layer(values, layers):
    if values is None or len(values) == 0:
      return jnp.full((len(layers),), 1. / max(len(layers), 1), jnp.float32)
    return jnp.asarray(values, jnp.float32)
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return Weights(f32(content), f32(style), f32(tv), per_layer(content_layer_weights,
                 spec.content_layers), per_layer(style_layer_weights, spec.style_layers),
                 f32(loss_scale), f32(gram_shift), f32(preserve),
                 jax.random.PRNGKey(int(seed)) if spec.stochastic else None)


def geometric_layer_weights(layers, base: float = 2., rising: bool = False) -> list[float]:
  """Novak & Nikulin's geometric layer weights, normalised to sum to 1.

  ``w_l ~ base^-d(l)`` (style: falling with depth) or ``base^d(l)`` (``rising``: content), with
  ``d(l)`` the layer's position among VGG19's 16 conv layers.
  """
  depth = np.array([vgg.CONV_LAYERS.index(vgg.canonical_layer(l)) for l in layers], np.float64)
  w = float(base) ** (depth if rising else -depth)
  return list(w / w.sum()) if len(w) else []


def to_image(z: jax.Array, spec: Spec) -> jax.Array:
  """Optimiser-domain pixels (0..image_range) -> RGB 0..255."""
  return z * (255. / spec.image_range)


def from_image(image: jax.Array, spec: Spec) -> jax.Array:
  return jnp.asarray(image, jnp.float32) * (spec.image_range / 255.)


def _blend_matrix(blend_weights, n_styles: int, n_regions: int, n_layers: int) -> jax.Array:
  """Style-mixing weights as (S, R, L), normalised to sum to 1 over the styles."""
  if blend_weights is None or len(blend_weights) == 0:
    w = jnp.ones((n_styles,), jnp.float32)
  else:
    w = jnp.asarray(blend_weights, jnp.float32)
  w = w[:, None, None] if w.ndim == 1 else (w[:, None, :] if w.ndim == 2 else w)
  w = jnp.broadcast_to(w, (n_styles, n_regions, n_layers))
  return w / jnp.maximum(jnp.sum(w, axis=0, keepdims=True), 1e-12)


def _accumulate(table: dict, key: str, value, weight: jax.Array) -> None:
  """``table[key] += weight[r] * value`` for (1, ...) values (or tuples) and (R,) weights."""
  value = jax.tree.map(lambda v: weight.reshape(-1, *[1] * (v.ndim - 1)) * v, value)
  table[key] = value if key not in table else jax.tree.map(jnp.add, table[key], value)


def compute_targets(params: Mapping, spec: Spec, content: Optional[jax.Array],
                    styles: list[jax.Array], blend_weights=None, masks=None,
                    style_masks=None, hold=None) -> Targets:
  """Content features and blended style Grams (RGB 0..255 (H, W, 3) inputs), as ONE jitted
  program per input shapes and spec (op by op this was ~390 small XLA compilations).

  Several style images are combined by blending their Grams with ``blend_weights`` (normalised
  to sum to 1 over the styles); this has the same gradient as blending the per-style losses.

  Args:
    params: VGG19 params.
    spec: the static objective.
    content: (H, W, 3) content image (None for texture synthesis).
    styles: S (H_s, W_s, 3) style images.
    blend_weights: (S,) per style, (S, L) per style and style layer (mixing scales), or
      (S, R, L) per style, region and layer; None = equal.
    masks: optional (R, H, W) region masks at the output size (spatial control). Each region gets
      its own guided Gram target; by default region r takes style r (R == S) or, with one region,
      the blend of all styles.
    style_masks: optional list of S (H_s, W_s) masks (or None) selecting part of a style image.
    hold: optional (H, W) mask of pixels held to the content (needs ``content``).
  """
  f32 = lambda a: None if a is None else np.asarray(a, np.float32)
  style_masks = None if style_masks is None else [f32(m) for m in style_masks]
  args = (params, [np.asarray(s) for s in styles], None if content is None else
          np.asarray(content), f32(blend_weights), f32(masks), style_masks, f32(hold))
  exe, _ = compile_cache.compiled(_targets_jit, *args, spec=target_spec(spec))
  return exe(*args)


def target_spec(spec: Spec) -> Spec:
  """The spec targets (and reported loss terms) are computed with: direct convolutions.

  They run once (per chunk), so Winograd's speed does not pay for its ~5x longer compilation;
  direct float32 convolutions are also the exact reference (Winograd differs by ~1e-6
  relative, bfloat16 operands by ~1e-2), so targets and the reported loss terms are float32
  values whatever ``conv_dtype`` the optimisation uses. Fields that do not change targets are
  normalised so they share one compiled program.
  """
  return spec._replace(conv_impl='direct', project=False, use_hold=False, remat='none',
                       conv_dtype='float32')


def _targets(params, styles, content, blend_weights, masks, style_masks, hold, spec) -> Targets:
  """The body of :func:`compute_targets` (traced once per shapes and spec)."""
  content_t = {}
  if spec.content_layers and content is not None:
    feats = vgg.features(params, jnp.asarray(content, jnp.float32)[None],
                         spec.content_layers, spec.pooling, spec.conv_impl)
    content_t = {l: feats[l] for l in spec.content_layers}
  pixels_t = (jnp.asarray(content, jnp.float32) if spec.content_loss == 'self_similarity'
              and content is not None else None)
  layers = spec.style_layers
  regional = masks is not None
  n_regions = int(np.shape(masks)[0]) if regional else 1
  if regional and blend_weights is None and n_regions == len(styles) and n_regions > 1:
    blend_weights = np.eye(n_regions, dtype=np.float32)[:, :, None]
  style_t, means_t, chain_t, chain_means_t = {}, {}, {}, {}
  if layers and styles and spec.style_loss != 'gram':
    style_t, blend = _loss_targets(params, spec, styles, style_masks, blend_weights, n_regions)
    return Targets(content_t, style_t, None,
                   vgg.layer_masks(masks, layers) if regional else None, None, None,
                   *_hold(hold, content, spec), style_blend=blend, content_pixels=pixels_t)
  if layers and styles:
    w = _blend_matrix(blend_weights, len(styles), n_regions, len(layers))
    plain = () if spec.chain else layers  # The chain replaces the per-layer Grams.
    links = list(zip(layers[:-1], layers[1:])) if spec.chain else []
    for i, s in enumerate(styles):
      feats = vgg.features(params, jnp.asarray(s, jnp.float32)[None], layers, spec.pooling,
                           spec.conv_impl)
      smask = None if style_masks is None or style_masks[i] is None else (
          vgg.layer_masks(style_masks[i], layers))
      for j, l in enumerate(plain):
        m = None if smask is None else smask[l][None]
        _accumulate(style_t, l, gram_lib.gram(feats[l], m)[0][None], w[i, :, j])
        _accumulate(means_t, l, gram_lib.feature_mean(feats[l], m)[0][None], w[i, :, j])
      for j, (l1, l2) in enumerate(links):
        deeper = l1 if feats[l1].shape[1] < feats[l2].shape[1] else l2
        m = None if smask is None else smask[deeper][None]
        hw = feats[deeper].shape[1:3]
        _accumulate(chain_t, l1, gram_lib.cross_gram(feats[l1], feats[l2], m)[0][None], w[i, :, j])
        means = tuple(gram_lib.feature_mean(terms_lib.pool_to(feats[l], hw), m)[0][None]
                      for l in (l1, l2))
        _accumulate(chain_means_t, l1, means, w[i, :, j])
    if not regional:  # One region: drop the region axis, as without controls.
      style_t, means_t, chain_t, chain_means_t = jax.tree.map(
          lambda v: v[0], (style_t, means_t, chain_t, chain_means_t))
  return Targets(content_t, style_t, means_t or None,
                 vgg.layer_masks(masks, layers) if regional and layers else None,
                 chain_t or None, chain_means_t or None, *_hold(hold, content, spec),
                 content_pixels=pixels_t)


def _hold(hold, content, spec: Spec) -> tuple[Optional[jax.Array], Optional[jax.Array]]:
  """(held pixels, the content in the optimiser's domain), or Nones."""
  if hold is None or content is None:
    return None, None
  return jnp.asarray(hold, jnp.float32), from_image(content, spec)


def _loss_targets(params, spec: Spec, styles, style_masks, blend_weights, n_regions: int
                  ) -> tuple[tuple, jax.Array]:
  """One target per style image for a non-Gram style loss, and the (S, R, L) loss weights."""
  layers = spec.style_layers
  if n_regions > 1 and blend_weights is None and n_regions == len(styles):
    blend_weights = np.eye(n_regions, dtype=np.float32)[:, :, None]
  loss = style_lib.get(spec.style_loss)
  out = []
  for i, s in enumerate(styles):
    pixels = jnp.asarray(s, jnp.float32)
    feats = vgg.features(params, pixels[None], layers, spec.pooling, spec.conv_impl)
    smask = None if style_masks is None or style_masks[i] is None else (
        vgg.layer_masks(style_masks[i], layers))
    out.append(loss.target({l: feats[l][0] for l in layers}, layers, pixels, smask,
                           spec.style_options))
  return tuple(out), _blend_matrix(blend_weights, len(styles), n_regions, len(layers))


_targets_jit = jax.jit(_targets, static_argnames=('spec',))


def compose(z: jax.Array, targets: Targets, spec: Spec) -> jax.Array:
  """The optimiser-domain image with held pixels taken from the content (``Spec.project``)."""
  if not spec.project or targets.hold is None:
    return z
  h = targets.hold[..., None]
  return (1. - h) * z + h * targets.hold_image


def loss_terms(z: jax.Array, params: Mapping, targets: Targets, weights: Weights,
               spec: Spec, key: Optional[jax.Array] = None) -> dict[str, jax.Array]:
  """Weighted loss terms of an optimiser-domain image z (H, W, 3): content, style, tv, total
  (and hold, with ``Spec.use_hold``). ``key``: this step's PRNG key of a sampling objective
  (``spec.stochastic``); None = ``weights.key``, the first one (reported terms)."""
  x = compose(z, targets, spec)
  image = to_image(x, spec)[None]
  feats = vgg.features(params, image, spec.layers, spec.pooling, spec.conv_impl, spec.remat,
                       spec.conv_dtype)
  positions = image.shape[1] * image.shape[2]
  key = weights.key if key is None else key
  zero = jnp.zeros((), jnp.float32)
  content = zero
  if spec.content_loss == 'self_similarity' and targets.content:
    # One hypercolumn over the content layers (Kolkin et al.): the layer weights scale it.
    # The style term's key: one sample of positions serves both terms, as in the authors' code.
    content = jnp.sum(weights.content_layers) * style_lib.self_similarity(
        {l: feats[l][0] for l in spec.content_layers},
        {l: targets.content[l][0] for l in spec.content_layers}, image[0],
        targets.content_pixels, key, spec.style_options)
  else:
    for i, l in enumerate(spec.content_layers):
      if l in targets.content:
        content += weights.content_layers[i] * terms_lib.content_loss(
            feats[l], targets.content[l], spec.loss_norm)[0]
  style = zero
  shift = weights.gram_shift
  masks, means = targets.masks or {}, targets.style_means or {}
  chain, chain_means = targets.chain or {}, targets.chain_means or {}
  if spec.style_loss != 'gram':
    if isinstance(targets.style, tuple) and targets.style_blend is not None:
      style = _style_term(feats, image[0], targets, weights, spec, key)
  elif spec.chain:
    for i, (l1, l2) in enumerate(zip(spec.style_layers[:-1], spec.style_layers[1:])):
      if l1 in chain:
        deeper = l1 if feats[l1].shape[1] < feats[l2].shape[1] else l2
        mu1, mu2 = chain_means[l1]
        target = gram_lib.shift_gram(chain[l1], mu1, shift, mu2)
        style += weights.style_layers[i] * jnp.sum(gram_lib.chain_style_loss(
            feats[l1], feats[l2], target, spec.loss_norm, positions, masks.get(deeper), shift))
  else:
    for i, l in enumerate(spec.style_layers):
      if l in targets.style:
        target = targets.style[l]
        if l in means:
          target = gram_lib.shift_gram(target, means[l], shift)
        style += weights.style_layers[i] * jnp.sum(gram_lib.style_loss(
            feats[l], target, spec.loss_norm, positions, masks.get(l), shift))
  tv = terms_lib.tv_loss(x, spec.tv_type) if spec.use_tv else zero
  terms = {'content': weights.content * content, 'style': weights.style * style,
           'tv': weights.tv * tv}
  terms['total'] = terms['content'] + terms['style'] + terms['tv']
  if spec.use_hold and targets.hold is not None:
    terms['hold'] = weights.preserve * terms_lib.hold_loss(
        to_image(x, spec), to_image(targets.hold_image, spec), targets.hold)
    terms['total'] = terms['total'] + terms['hold']
  return terms


def _style_term(feats, pixels, targets: Targets, weights: Weights, spec: Spec, key
                ) -> jax.Array:
  """A non-Gram style loss summed over styles and regions with ``Targets.style_blend``."""
  loss = style_lib.get(spec.style_loss)
  layers = spec.style_layers
  one = {l: feats[l][0] for l in layers}
  blend = targets.style_blend
  total = jnp.zeros((), jnp.float32)
  for s, target in enumerate(targets.style):
    for r in range(blend.shape[1]):
      masks = None if targets.masks is None else {l: targets.masks[l][r] for l in layers}
      total = total + loss.loss(one, pixels, target, weights.style_layers * blend[s, r], key,
                                masks, spec.style_options, layers)
  return total


def objective(z, params, targets, weights, spec, key=None):
  """The scalar the optimiser minimises: ``loss_scale * total``."""
  return weights.loss_scale * loss_terms(z, params, targets, weights, spec, key)['total']
