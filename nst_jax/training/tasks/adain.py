"""AdaIN decoder training (Huang & Belongie 2017) as a task of the one training loop: random
crops of the training photos and of the style paintings, the decoder's content loss at relu4_1
and the mean/std style loss at relu1_1..relu4_1 (:func:`nst_jax.models.adain.loss_terms`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from nst_jax.config import train as train_schema
from nst_jax.io import images as image_io
from nst_jax.models import adain
from nst_jax.training import data
from nst_jax.training.data import content_sampler, sample_photo
from nst_jax.training.loop import Task

# --- AdaIN: the decoder, trained through the same loop.


@functools.lru_cache(maxsize=8)
def _adain_loss(width: float, conv_impl: str, style_weight: float,
                content_weight: float) -> Callable:

  def loss(params, batch, consts):
    terms = adain.loss_terms(params, consts['vgg'], batch['content'].astype(jnp.float32),
                             batch['style'].astype(jnp.float32), style_weight, width, conv_impl,
                             content_weight)
    return terms['total'], terms
  return loss


def adain_task(config, vgg_params: Mapping) -> Task:
  width, conv_impl = float(config.net.width), config.conv_impl
  style_weight = float(config.style_weight)
  styles = data.CropSampler(config.style_dir, int(config.crop_size), int(config.batch_size),
                            int(config.seed) + 1, (config.scale_min, config.scale_max),
                            bool(config.flip), 0, 'style images', int(config.max_pixels))
  photo = sample_photo(config)
  sample_style = (image_io.load_image(style_paths[0], size=int(config.sample_size))
                  if (style_paths := train_schema.style_paths(config)) else styles.images[0])

  loss = _adain_loss(width, conv_impl, style_weight, float(config.content_weight))
  def sample(params, consts):
    return adain.stylize(jax.device_get(params), photo, sample_style, 1.0,
                         vgg_params=consts['vgg'], width=width, conv_impl=conv_impl)

  def save_model(directory: Path, params) -> None:
    adain.save_decoder(directory, params, width)

  return Task('adain', adain.init_decoder(int(config.seed), width), loss, {'vgg': vgg_params},
              {'content': content_sampler(config), 'style': styles}, save_model,
              sample if photo is not None else None,
              {'style_images': len(styles)})
