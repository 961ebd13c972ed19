"""Neural Neighbor Style Transfer's feature-matching loss (Kolkin, Kalogerakis, Shechtman &
Shakhnarovich 2022, "Neural Neighbor Style Transfer", NNST).

NNST stylises by replacing every content feature with its nearest style feature and then finding
the image whose features are those replacements. Its last and finest pass (the authors' code,
``utils/stylize.py``, ``optimize_output_im(final_pass=True)``, "feature splitting") does it as one
loss of the image, per layer ``l`` and summed over layers:

    L_l(x) = 1/N sum_i min_j d(F_i, S_j),   d(a, b) = 1 - <a - mean(F), b - mean(S)>
                                                      / (|a - mean(F)| |b - mean(S)|),

the mean over the image's positions ``i`` of the centred cosine distance to the nearest style
position ``j`` (``pairwise_distances_cos_center``: each side centred by its own mean over
positions). The matching is recomputed at every evaluation and the gradient flows through the
matched distances only (the argmin is piecewise constant), as in the code, where ``torch.min``
passes the gradient to the selected entry.

Sampling, as the code: a layer whose longer side exceeds ``max_side`` (64) positions is
subsampled on a grid of stride ``s = max(H, W) // max_side`` with a random offset ``(a, b)`` in
``[0, s)`` drawn every step, the same grid for the image and the style (so both keep about 64 x
64 positions and the cost stays bounded at any size). The grid here keeps ``H // s`` rows (and
``W // s`` columns) for every offset, so that shapes are static under jit; the code's slicing
keeps one more where the offset allows it.

Not here (what NNST adds around this loss): its hypercolumn passes at coarser scales with
features gathered once from the content image, the Laplacian-pyramid parametrisation with Adam,
rotated copies of the style (``flip_aug``), the final colour transfer and the coarse-to-fine
schedule (configs/kolkin2022.py runs one scale from the photo; ``stages`` gives coarse to fine).

The nearest neighbours are found in blocks (:func:`nst_jax.losses.patches.nearest_patches`, the
same chunked normalised cross-correlation as CNNMRF's, on stop-gradient copies), so at most a
(chunk x M) block of scores exists at a time.

Pure and jittable: ``max_side`` and ``chunk`` are static; the key is traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.errors import ConfigError
from nst_jax.losses import patches

MAX_SIDE = 64       # code: sparse sampling when max(H, W) > 64
DEFAULT_CHUNK = 256


def grid_stride(h: int, w: int, max_side: int = MAX_SIDE) -> int:
  """The sampling stride of an (h, w) map: 1 up to ``max_side``, else ``max(h, w) // max_side``."""
  return 1 if max(h, w) <= max_side else max(h, w) // max_side


def sample_grid(features: jax.Array, stride: int, offset: jax.Array) -> jax.Array:
  """(H, W, C) features on the grid ``offset + stride * k`` -> (H // stride * W // stride, C)."""
  h, w, c = features.shape
  if stride == 1:
    return features.reshape(h * w, c)
  rows = offset[0] + stride * jnp.arange(h // stride)
  cols = offset[1] + stride * jnp.arange(w // stride)
  return features[rows][:, cols].reshape(-1, c)


def _centre_normalise(x: jax.Array) -> jax.Array:
  x = x - jnp.mean(x, axis=0, keepdims=True)
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=1, keepdims=True))
  return x / jnp.maximum(norm, 1e-8)


def nnst_target(features: jax.Array) -> dict:
  """The style's (Hs, Ws, C) features of one layer, kept whole (the loss samples them)."""
  if features.ndim != 3:
    raise ConfigError(f'NNST style features must be (H, W, C), got shape {features.shape}')
  return {'features': jnp.asarray(features)}


def nnst_loss(features: jax.Array, target: dict, key: jax.Array, max_side: int = MAX_SIDE,
              chunk: int = DEFAULT_CHUNK) -> jax.Array:
  """NNST's loss of one layer: the mean centred cosine distance to the nearest style feature.

  Args:
    features: the image's (H, W, C) activations of one layer.
    target: :func:`nnst_target` of the style's activations of the same layer.
    key: PRNG key of this step's sampling offset (unused when no sampling is needed).
    max_side: a side above this many positions is subsampled (the code's 64).
    chunk: image positions matched per block.

  Returns:
    A float32 scalar in [0, 2]; zero when every image feature has a style feature in the same
    direction from the two means.
  """
  if int(max_side) < 1 or int(chunk) < 1:
    raise ConfigError(f'NNST max_side and chunk must be >= 1, got {max_side} and {chunk}')
  style = target['features']
  if style.shape[-1] != features.shape[-1]:
    raise ConfigError(f'NNST target has {style.shape[-1]} channels, the image '
                      f'{features.shape[-1]}: compute the target from the same layer')
  h, w, _ = features.shape
  stride = grid_stride(h, w, max_side)
  if stride > 1 and min(style.shape[0], style.shape[1]) < stride:
    raise ConfigError(f'the style features ({style.shape[0]}x{style.shape[1]}) are smaller than '
                      f'the image\'s sampling stride {stride}: use a larger style image')
  offset = jax.random.randint(key, (2,), 0, stride)
  f = _centre_normalise(sample_grid(features, stride, offset))
  s = _centre_normalise(sample_grid(jax.lax.stop_gradient(style), stride, offset))
  idx = patches.nearest_patches(f, {'patches': s, 'inv_norms': jnp.ones(s.shape[0])}, chunk)
  matched = jnp.take(s, idx, axis=0)
  return jnp.mean(1. - jnp.sum(f * matched, axis=1))
