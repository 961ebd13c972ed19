"""Per-style (Johnson et al. 2016) and N-style (Dumoulin et al. 2017) transformer training tasks
for the one loop in :mod:`nst_jax.training.loop`.

The loss of a batch is the project's objective (:func:`nst_jax.losses.objective.loss_terms`: content
+ Gram style + TV, with the config's layers, weights and ``loss_norm``) applied to every (network
output, photo) pair and averaged over the batch. The style Grams are computed once
(:func:`nst_jax.losses.objective.compute_targets`); with N styles they are stacked (N, C, C) and
each batch element trains a seeded random style (its conditional instance-norm row).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.losses import gram, objective
from nst_jax.losses import objective as objective_lib
from nst_jax.losses import terms as terms_lib
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.models import vgg
from nst_jax.runtime import devices
from nst_jax.training import data
from nst_jax.training import data as data_lib
from nst_jax.training import loop as loop_lib


def network_config(config, num_styles: int) -> networks.NetworkConfig:
  """The transformer architecture the config names (``johnson`` or ``slim``) for N styles,
  with the ``net.*`` fields that are set (widths, residual blocks, output activation, ...)
  replacing the layout's own."""
  if config.network == 'johnson':
    base = networks.johnson2016(num_styles)
  elif config.network == 'slim':
    base = dataclasses.replace(networks.multistyle26(), num_styles=num_styles)
  else:
    raise ConfigError(f'network {config.network!r} is not a transformer (johnson | slim)')
  d = base.to_dict()
  n = config.net
  for f in ('down_widths', 'up_widths'):
    if str(n.get(f, '')).strip():
      try:
        d[f] = [int(w) for w in str(n[f]).split(',')]
      except ValueError as e:
        raise ConfigError(f'net.{f} must be comma-separated channel counts, got {n[f]!r}') from e
  if int(n.get('residual_blocks', -1)) >= 0:
    d['residual_blocks'] = int(n.residual_blocks)
  if str(n.get('output_activation', '')):
    d['output_activation'] = str(n.output_activation)
  for f in ('norm_last', 'use_bias'):
    v = str(n.get(f, '')).strip().lower()
    if v:
      if v not in ('true', 'false'):
        raise ConfigError(f'net.{f} must be true or false, got {n[f]!r}')
      d[f] = v == 'true'
  return networks.NetworkConfig.from_dict(d)


def objective_spec(config) -> objective.Spec:
  content_layers = vgg.parse_layers(config.content_layers)
  style_layers = vgg.parse_layers(config.style_layers)
  if not content_layers and not style_layers:
    raise ConfigError('no content or style layers: nothing to train')
  return objective.Spec(content_layers, style_layers, config.pooling, config.conv_impl,
                        config.loss_norm, config.tv_type, 255.,
                        use_tv=float(config.tv_weight) != 0.,
                        conv_dtype=devices.resolve_conv_dtype(config.conv_dtype))


def objective_weights(config, spec: objective.Spec) -> objective.Weights:
  cfg = dict(content_layer_weights=config.content_layer_weights,
             style_layer_weights=config.style_layer_weights, layer_weighting='uniform')
  content_w, style_w = objective_lib.layer_weight_lists(_Fields(cfg), spec)
  return objective.make_weights(spec, config.content_weight, config.style_weight,
                                config.tv_weight, content_w, style_w)


class _Fields(dict):
  """Attribute access for :func:`objective_lib.layer_weight_lists`."""
  __getattr__ = dict.__getitem__


def style_targets(vgg_params: Mapping, spec: objective.Spec, styles: list[np.ndarray]) -> dict:
  """``{layer: (N, C, C)}`` area-normalised Grams of the N style images (computed once)."""
  spec_s = spec._replace(content_layers=())
  grams = [objective.compute_targets(vgg_params, spec_s, None, [jnp.asarray(s)]).style
           for s in styles]
  return {l: jnp.stack([g[l] for g in grams]) for l in spec.style_layers}


def batch_loss_terms(images: jax.Array, photos: jax.Array, vgg_params: Mapping, grams: Mapping,
                     weights: objective.Weights, spec: objective.Spec,
                     style_index: Optional[jax.Array] = None) -> dict[str, jax.Array]:
  """Mean over the batch of :func:`objective.loss_terms` of each output against its photo.

  The same terms (content, Gram style, TV; weights and ``loss_norm`` of the config) computed
  with one batched VGG19 pass instead of a vmap of :func:`objective.loss_terms` (2.4x faster on
  CPU with Winograd convolutions); ``tests/unit/training/test_training.py`` checks both agree.

  Args:
    images: (B, H, W, 3) network outputs, RGB 0..255.
    photos: (B, H, W, 3) the input photos, RGB 0..255 (the content targets).
    grams: ``{layer: (N, C, C)}`` style Grams (:func:`style_targets`).
    style_index: (B,) which style each output is trained for (None: style 0).
  """
  b, h, w = images.shape[:3]
  idx = jnp.zeros((b,), jnp.int32) if style_index is None else style_index
  target = jax.lax.stop_gradient(
      vgg.features(vgg_params, photos, spec.content_layers, spec.pooling, spec.conv_impl,
                   conv_dtype=spec.conv_dtype))
  x = objective.from_image(images, spec)
  feats = vgg.features(vgg_params, objective.to_image(x, spec), spec.layers, spec.pooling,
                       spec.conv_impl, conv_dtype=spec.conv_dtype)
  zero = jnp.zeros((b,), jnp.float32)
  content = zero
  for i, l in enumerate(spec.content_layers):
    content += weights.content_layers[i] * terms_lib.content_loss(feats[l], target[l],
                                                               spec.loss_norm)
  style = zero
  for i, l in enumerate(spec.style_layers):
    style += weights.style_layers[i] * gram.style_loss(feats[l], grams[l][idx],
                                                         spec.loss_norm, h * w)
  tv = terms_lib.tv_loss(x, spec.tv_type) if spec.use_tv else zero
  terms = {'content': weights.content * content, 'style': weights.style * style,
           'tv': weights.tv * tv}
  terms['total'] = terms['content'] + terms['style'] + terms['tv']
  return {k: jnp.mean(v) for k, v in terms.items()}


def batch_loss_terms_reference(images, photos, vgg_params, grams, weights, spec,
                               style_index=None) -> dict[str, jax.Array]:
  """:func:`batch_loss_terms` as a vmap of :func:`objective.loss_terms` (the reference)."""
  feats = vgg.features(vgg_params, photos, spec.content_layers, spec.pooling, spec.conv_impl,
                       conv_dtype=spec.conv_dtype)
  idx = jnp.zeros((images.shape[0],), jnp.int32) if style_index is None else style_index

  def one(z, content, i):
    targets = objective.Targets(content={l: content[l][None] for l in spec.content_layers},
                                style={l: grams[l][i] for l in spec.style_layers})
    return objective.loss_terms(objective.from_image(z, spec), vgg_params, targets, weights, spec)

  terms = jax.vmap(one)(images, feats, idx)
  return {k: jnp.mean(v) for k, v in terms.items()}


@functools.lru_cache(maxsize=32)
def batch_loss_fn(netcfg: networks.NetworkConfig, spec: objective.Spec, fast: bool = True):
  """The training loss ``loss(params, batch, consts) -> (total, terms)`` of a transformer.

  Cached on its (hashable) static arguments, so equal configurations share one function object
  and hence one compiled training chunk per process.
  """
  def loss(p, batch, consts):
    photos = batch['content'].astype(jnp.float32)
    idx = batch.get('style_index')
    eye = jnp.eye(netcfg.num_styles, dtype=jnp.float32)
    sw = eye[idx] if idx is not None else eye[0]
    out = networks.apply_params(netcfg, p, photos / 255., sw, fast, winograd=False) * 255.
    terms = batch_loss_terms(out, photos, consts['vgg'], consts['grams'], consts['weights'],
                             spec, idx)
    return terms['total'], terms
  return loss


class StyleIndexSampler:
  """Seeded random style indices per batch element (deterministic in the step)."""

  def __init__(self, num_styles: int, batch_size: int, seed: int):
    self.num_styles, self.batch_size, self.seed = num_styles, batch_size, seed

  def batch(self, step: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, 2, step])
    return rng.integers(0, self.num_styles, self.batch_size).astype(np.int32)


def save_model(directory: Path, netcfg: networks.NetworkConfig, params, styles: list[str],
               info: Optional[dict] = None) -> None:
  """The model directory of :mod:`nst_jax.models.model_dir` (what ``configs/fast.py --model=DIR``
  loads): ``model.npz`` + ``model.json`` with the styles' names and the training settings."""
  model_io.save_model(directory, netcfg, jax.device_get(params),
                      [Path(s).stem for s in styles], dict(info or {}, style_paths=list(styles)))


def style_task(config, vgg_params: Mapping) -> loop_lib.Task:
  """The Johnson (one ``--style``) or Dumoulin (several) training task."""
  paths = train_schema.style_paths(config)
  styles = data.load_styles(paths, int(config.style_size), int(config.max_pixels))
  n = len(styles)
  netcfg = network_config(config, n)
  spec = objective_spec(config)
  weights = objective_weights(config, spec)
  impl = config.net.get('impl', 'direct')
  grams = style_targets(vgg_params, spec, styles)
  params = network_params.nested_from_flax(network_params.init_params(netcfg, int(config.seed)))
  params = jax.tree.map(jnp.asarray, params)
  samplers: dict[str, Any] = {'content': data_lib.content_sampler(config)}
  if n > 1:
    samplers['style_index'] = StyleIndexSampler(n, int(config.batch_size), int(config.seed) + 2)
  eye = jnp.eye(n, dtype=jnp.float32)
  loss = batch_loss_fn(netcfg, spec, impl == 'fast')
  photo = data_lib.sample_photo(config)
  # Samples are inference: the reformulated convolutions, whatever the training step uses.
  apply = jax.jit(lambda p, x, sw: networks.apply_params(netcfg, p, x, sw, True))

  def sample(p, consts):
    del consts
    x = jnp.asarray(photo, jnp.float32)[None] / 255.
    outs = [np.asarray(apply(p, x, eye[i]))[0] for i in range(min(n, 8))]
    return image_io.to_uint8(np.concatenate(outs, axis=1) * 255.)

  def save(directory, p):
    save_model(directory, netcfg, p, paths, {'trained_with': _loss_description(config)})

  return loop_lib.Task('dumoulin' if n > 1 else 'johnson', params, loss,
                        {'vgg': vgg_params, 'grams': grams, 'weights': weights}, samplers, save,
                        sample if photo is not None else None,
                        {'styles': paths, 'network': netcfg.to_dict()})


def _loss_description(config) -> dict:
  keys = ('content_layers', 'style_layers', 'content_weight', 'style_weight', 'tv_weight',
          'content_layer_weights', 'style_layer_weights', 'loss_norm', 'tv_type', 'pooling',
          'crop_size', 'batch_size', 'learning_rate', 'style_size')
  return {k: config[k] for k in keys}
