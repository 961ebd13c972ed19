"""AdaIN decoder training (Huang & Belongie 2017) as a task of the one training loop: random
crops of the training photos and of the style paintings, the decoder's content loss at relu4_1
and the mean/std style loss at relu1_1..relu4_1 (:func:`nst_jax.models.adain.loss_terms`).

With ``adain.pretrain_steps = N`` the first N steps train the decoder to invert VGG19 relu4_1
instead (:func:`nst_jax.models.adain.reconstruction_loss_terms`: pixel + feature reconstruction of
the photos, as Li et al. 2017 train their decoders), and the AdaIN loss takes over from there, in
the same run and with the same Adam state. Which loss a step uses is a function of the step
number (a ``pretrain`` flag in its batch, read by ``lax.cond``), so a resumed run switches where
an uninterrupted one would. ``pretrain_steps >= num_steps`` trains a reconstruction decoder only
(what WCT, :mod:`nst_jax.models.wct`, needs).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Mapping

import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.models import adain
from nst_jax.training import data
from nst_jax.training.data import content_sampler, sample_photo
from nst_jax.training.loop import Task

# Every step reports the same terms whichever loss it used (the loop's scan needs one structure).
TERMS = ('total', 'content', 'style', 'pixel', 'feature')


class PhaseSampler:
  """``batch(step)``: (B,) float32, 1 while ``step < pretrain_steps`` (reconstruction), else 0."""

  def __init__(self, pretrain_steps: int, batch_size: int):
    self.pretrain_steps, self.batch_size = int(pretrain_steps), int(batch_size)

  def batch(self, step: int) -> np.ndarray:
    return np.full((self.batch_size,), float(step < self.pretrain_steps), np.float32)


def _full(terms: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  return {k: terms.get(k, jnp.zeros((), jnp.float32)) for k in TERMS}


@functools.lru_cache(maxsize=8)
def _adain_loss(width: float, conv_impl: str, style_weight: float, content_weight: float,
                mode: str = 'adain', pixel_weight: float = 1., feature_weight: float = 1.
                ) -> Callable:
  """The step's loss: ``mode`` 'adain', 'reconstruction' or 'both' (``lax.cond`` on the batch's
  ``pretrain`` flag). Cached, so an equal loss is the same object (one compiled chunk)."""

  def transfer(params, batch, consts):
    terms = adain.loss_terms(params, consts['vgg'], batch['content'].astype(jnp.float32),
                             batch['style'].astype(jnp.float32), style_weight, width, conv_impl,
                             content_weight)
    return terms['total'], _full(terms)

  def reconstruct(params, batch, consts):
    terms = adain.reconstruction_loss_terms(params, consts['vgg'],
                                            batch['content'].astype(jnp.float32), pixel_weight,
                                            feature_weight, width, conv_impl)
    return terms['total'], _full(terms)

  if mode == 'adain':
    return transfer
  if mode == 'reconstruction':
    return reconstruct

  def loss(params, batch, consts):
    # The flag is the same for the whole batch: a function of the step (PhaseSampler).
    return lax.cond(batch['pretrain'][0] > 0.5, reconstruct, transfer, params, batch, consts)
  return loss


def check_inputs(config: ml_collections.ConfigDict) -> None:
  """ConfigError for impossible ``adain.*`` fields (run before the output directory exists)."""
  a = config.adain
  if int(a.pretrain_steps) < 0:
    raise ConfigError(f'adain.pretrain_steps must be >= 0, got {a.pretrain_steps}')
  pw, fw = float(a.pixel_weight), float(a.feature_weight)
  if not (np.isfinite(pw) and np.isfinite(fw)) or pw < 0 or fw < 0 or pw + fw <= 0:
    raise ConfigError(f'adain.pixel_weight and adain.feature_weight must be >= 0 with a '
                      f'positive sum, got {a.pixel_weight}, {a.feature_weight}')


def loss_mode(config: ml_collections.ConfigDict) -> str:
  """'adain' (no pre-training), 'reconstruction' (only pre-training) or 'both'."""
  pre = int(config.adain.pretrain_steps)
  if pre <= 0:
    return 'adain'
  return 'reconstruction' if pre >= int(config.num_steps) else 'both'


def adain_task(config, vgg_params: Mapping) -> Task:
  check_inputs(config)
  width, conv_impl = float(config.net.width), config.conv_impl
  style_weight = float(config.style_weight)
  mode = loss_mode(config)
  styles = data.CropSampler(config.style_dir, int(config.crop_size), int(config.batch_size),
                            int(config.seed) + 1, (config.scale_min, config.scale_max),
                            bool(config.flip), 0, 'style images', int(config.max_pixels))
  photo = sample_photo(config)
  sample_style = (image_io.load_image(style_paths[0], size=int(config.sample_size))
                  if (style_paths := train_schema.style_paths(config)) else styles.images[0])

  loss = _adain_loss(width, conv_impl, style_weight, float(config.content_weight), mode,
                     float(config.adain.pixel_weight), float(config.adain.feature_weight))
  samplers: dict = {'content': content_sampler(config)}
  if mode != 'reconstruction':
    samplers['style'] = styles
  if mode == 'both':
    samplers['pretrain'] = PhaseSampler(int(config.adain.pretrain_steps), int(config.batch_size))

  def sample(params, consts):
    # Side by side: the photo's own features decoded (alpha 0: the reconstruction) and AdaIN.
    p = jax.device_get(params)
    return np.concatenate([adain.stylize(p, photo, sample_style, a, vgg_params=consts['vgg'],
                                         width=width, conv_impl=conv_impl) for a in (0., 1.)], 1)

  def save_model(directory: Path, params) -> None:
    adain.save_decoder(directory, params, width)

  return Task('adain', adain.init_decoder(int(config.seed), width), loss, {'vgg': vgg_params},
              samplers, save_model, sample if photo is not None else None,
              {'style_images': len(styles), 'loss': mode,
               'pretrain_steps': int(config.adain.pretrain_steps)})
