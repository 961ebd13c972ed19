"""``nst_jax.stylize``: optimisation-based style transfer from Python, arrays in and out.

The same stage loop as ``run.py``'s stylize job (:func:`nst_jax.optimize.stages.run_stages`),
without files: no checkpoints, metrics or images are written.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from nst_jax.config import schema
from nst_jax.config import stylize as stylize_lib
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.losses import controls
from nst_jax.optimize.problem import validate
from nst_jax.optimize.stages import run_stages
from nst_jax.runtime import compile_cache


def with_overrides(config: Optional[ml_collections.ConfigDict], overrides: Mapping[str, Any],
                   how: str = '') -> ml_collections.ConfigDict:
  """A locked copy of ``config`` (default :func:`~nst_jax.config.stylize.base_config`) with
  ``overrides`` applied; a misspelt field raises ConfigError naming the nearest one."""
  c = schema.lock(ml_collections.ConfigDict(
      config.to_dict() if config is not None else stylize_lib.base_config().to_dict()))
  return schema.override(c, overrides, how)


def stylize(content: Optional[np.ndarray], style: Any,
            config: Optional[ml_collections.ConfigDict] = None, params: Optional[Mapping] = None,
            init_image: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
            masks: Optional[Sequence[np.ndarray]] = None,
            style_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
            **overrides: Any) -> np.ndarray:
  """Stylizes a uint8 RGB content image with one or more uint8 RGB style images.

  Args:
    content: (H, W, 3) uint8 RGB (None for texture synthesis).
    style: one (H, W, 3) uint8 RGB array or a list of them (blended by
      ``config.style_blend_weights``, or one per mask; None marks an unstyled region).
    config: a config from ``configs/`` (default: :func:`nst_jax.config.stylize.base_config`).
    params: VGG19 params (default: :func:`nst_jax.models.weights.load_vgg19`).
    init_image: starting image for ``init='image'``.
    mask: one (H, W) float mask in [0, 1] (white = styled, black = kept from the content).
    masks: a list of such masks, one per style image (several regions).
    style_masks: per style image, a mask (or None) selecting the part of it to use.
    **overrides: config fields to override, e.g. ``size=256, num_steps=100,
      color_control='luminance', stages='128:100,256:50'`` (a dict for a sub-config:
      ``optimizer={'name': 'adam'}``); a misspelt name raises ConfigError naming the nearest
      field. Mask files named in the config (``mask``, ``masks``, ``labels``,
      ``style_masks``) are read when no arrays are given.

  Returns:
    The result as a (H, W, 3) uint8 RGB array.
  """
  config = with_overrides(config, overrides, ' given to stylize()')
  validate(config)
  compile_cache.enable(config.compile_cache)  # persistent XLA cache
  if params is None:
    from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19()
  styles = [] if style is None else ([style] if isinstance(style, np.ndarray) and style.ndim == 3
                                     else list(style))
  content = None if content is None else _as_rgb_uint8(content)
  styles = [None if s is None else _as_rgb_uint8(s) for s in styles]
  if mask is not None and masks is not None:
    raise ConfigError('give mask or masks, not both')
  masks = [mask] if mask is not None else masks
  if masks is None or style_masks is None:
    file_masks, file_style_masks = controls.config_masks(config, len(styles))
    masks = file_masks if masks is None else masks
    style_masks = file_style_masks if style_masks is None else style_masks
  stages = run_stages(config, params, content, styles, init_image, masks, style_masks)
  return stages[-1][2].image


def _as_rgb_uint8(a: Any) -> np.ndarray:
  a = np.asarray(a)
  if a.ndim != 3 or a.shape[-1] != 3:
    raise ConfigError(f'images must be (H, W, 3) RGB arrays, got shape {a.shape}')
  return a if a.dtype == np.uint8 else image_io.to_uint8(a)
