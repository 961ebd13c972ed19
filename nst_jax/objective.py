"""The style-transfer objective as a pure function of the image, the targets and the weights.

Static choices that change the program (which layers, pooling, normalisation) live in the hashable
:class:`Spec`; numeric choices (loss weights, per-layer weight vectors, loss scale) live in the
:class:`Weights` pytree of arrays, so a batch of configurations can be vmapped over them.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp

from nst_jax import losses, vgg


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

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


class Weights(NamedTuple):
  """Numeric (traceable, vmappable) part of the objective."""
  content: jax.Array             # scalar content weight (alpha)
  style: jax.Array               # scalar style weight (beta)
  tv: jax.Array                  # scalar total-variation weight
  content_layers: jax.Array      # (len(spec.content_layers),)
  style_layers: jax.Array        # (len(spec.style_layers),)
  loss_scale: jax.Array          # multiplies the objective the optimiser sees


class Targets(NamedTuple):
  """What the image is pulled towards: content features and (blended) style Grams."""
  content: dict[str, jax.Array]  # layer -> (1, H, W, C) content features
  style: dict[str, jax.Array]    # layer -> (C, C) area-normalised Gram


def make_weights(spec: Spec, content: float, style: float, tv: float,
                 content_layer_weights=None, style_layer_weights=None,
                 loss_scale: float = 1.) -> Weights:
  """Builds :class:`Weights`; per-layer weights default to 1/L each."""
  def per_layer(values, layers):
    if values is None or len(values) == 0:
      return jnp.full((len(layers),), 1. / max(len(layers), 1), jnp.float32)
    return jnp.asarray(values, jnp.float32)
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return Weights(f32(content), f32(style), f32(tv), per_layer(content_layer_weights,
                 spec.content_layers), per_layer(style_layer_weights, spec.style_layers),
                 f32(loss_scale))


def to_image(z: jax.Array, spec: Spec) -> jax.Array:
  """Optimiser-domain pixels (0..image_range) -> RGB 0..255."""
  return z * (255. / spec.image_range)


def from_image(image: jax.Array, spec: Spec) -> jax.Array:
  return jnp.asarray(image, jnp.float32) * (spec.image_range / 255.)


def compute_targets(params: Mapping, spec: Spec, content: Optional[jax.Array],
                    styles: list[jax.Array], blend_weights=None) -> Targets:
  """Content features and blended style Grams (RGB 0..255 (H, W, 3) inputs).

  Several style images are combined by blending their Grams with ``blend_weights`` (normalised
  to sum to 1); this has the same gradient as blending the per-style losses.
  """
  content_t = {}
  if spec.content_layers and content is not None:
    feats = vgg.features(params, jnp.asarray(content, jnp.float32)[None],
                         spec.content_layers, spec.pooling, spec.conv_impl)
    content_t = {l: feats[l] for l in spec.content_layers}
  style_t = {}
  if spec.style_layers and styles:
    w = jnp.ones(len(styles)) if blend_weights is None or len(blend_weights) == 0 else (
        jnp.asarray(blend_weights, jnp.float32))
    w = w / jnp.sum(w)
    for i, s in enumerate(styles):
      feats = vgg.features(params, jnp.asarray(s, jnp.float32)[None], spec.style_layers,
                           spec.pooling, spec.conv_impl)
      for l in spec.style_layers:
        g = w[i] * losses.gram(feats[l])[0]
        style_t[l] = g if i == 0 else style_t[l] + g
  return Targets(content_t, style_t)


def loss_terms(z: jax.Array, params: Mapping, targets: Targets, weights: Weights,
               spec: Spec) -> dict[str, jax.Array]:
  """Weighted loss terms of an optimiser-domain image z (H, W, 3): content, style, tv, total."""
  image = to_image(z, spec)[None]
  feats = vgg.features(params, image, spec.layers, spec.pooling, spec.conv_impl)
  positions = image.shape[1] * image.shape[2]
  zero = jnp.zeros((), jnp.float32)
  content = zero
  for i, l in enumerate(spec.content_layers):
    if l in targets.content:
      content += weights.content_layers[i] * losses.content_loss(
          feats[l], targets.content[l], spec.loss_norm)[0]
  style = zero
  for i, l in enumerate(spec.style_layers):
    if l in targets.style:
      style += weights.style_layers[i] * losses.style_loss(
          feats[l], targets.style[l], spec.loss_norm, positions)[0]
  tv = losses.tv_loss(z, spec.tv_type) if spec.use_tv else zero
  terms = {'content': weights.content * content, 'style': weights.style * style,
           'tv': weights.tv * tv}
  terms['total'] = terms['content'] + terms['style'] + terms['tv']
  return terms


def objective(z, params, targets, weights, spec):
  """The scalar the optimiser minimises: ``loss_scale * total``."""
  return weights.loss_scale * loss_terms(z, params, targets, weights, spec)['total']
