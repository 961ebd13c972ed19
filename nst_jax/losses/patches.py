"""Li & Wand's MRF style loss (CNNMRF): feature patches matched to their nearest style patch.

Li & Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks for Image
Synthesis" (CVPR). Eq. (2) of the paper is the style energy

    E_s(x) = sum_i || Psi_i(Phi(x)) - Psi_NN(i)(Phi(x_s)) ||^2

over the k x k patches ``Psi_i`` of the image's features ``Phi(x)`` (one layer), with eq. (3)'s
matching by normalised cross-correlation

    NN(i) = argmax_j  <Psi_i(Phi(x)), Psi_j(Phi(x_s))> / (|Psi_i(Phi(x))| |Psi_j(Phi(x_s))|),

and no gradient through the matching (the nearest neighbours are fixed for one evaluation).

Choices, each taken from the authors' Torch code (chuanli11/CNNMRF: ``mylib/mrf.lua``,
``mylib/helper.lua``, ``transfer_CNNMRF_wrapper.lua``) where it decides:

* **Patch grid.** Patch origins every ``stride`` positions along each axis, plus the last
  possible origin (``H - k``) when the stride skips it (``computegrid(..., flag_all=1)``), so
  every position is covered. The same ``stride`` is used for the style's patches (CNNMRF's
  ``mrf_sample_stride``) and for the image's (``mrf_synthesis_stride``); CNNMRF's default is 2
  for both. Stride 1 (all patches) makes the matching 16x the work (4x the patches on each
  side): at 192x256 px with conv3_1 and conv4_1, one evaluation went from ~0.75x to ~1-1.3x
  a Gatys Gram evaluation's time on a 2-core CPU.
* **Normalisation** (``normalization``). ``'cnnmrf'`` (default) is the energy whose gradient is
  exactly CNNMRF's ``MRFMM:updateGradInput`` (before its ``mrf_weight``)::

      E = 1/2 sum_i sum_{p in patch i} (1 / n_p) |Phi_p(x) - Psi_NN(i),p|^2

  with ``n_p`` the number of grid patches covering position ``p``: the code averages the
  patches' pulls at each position instead of summing them, so the authors' weight
  ``mrf_weight = 1e-4`` carries over unchanged. ``'sum'`` is eq. (2) verbatim (every
  overlapping patch counts in full, no 1/2). Both are zero when every image patch has an equal
  style patch, and neither depends on the style's size.
* **Matching.** The argmax of ``<Psi_i, Psi_j> / |Psi_j|``: the image patch's norm is common to
  a row and does not change its argmax, so only the style's inverse norms are stored. A zero
  style patch scores 0 (the code divides by its norm); ties go to the first index. No
  confidence threshold (the code's default ``mrf_confidence_threshold = 0`` keeps every match:
  the cross-correlations of ReLU features are never negative). No rotated or scaled copies of
  the style: the wrapper's defaults are none (``mrf_num_rotation = mrf_num_scale = 0``), its
  shipped examples use 1 or 3 of each side (steps pi/24 and 1.05); pass such copies as
  further style images to get them.
* **Cost and memory.** The matching is one matrix product of the image's patches (N x D,
  D = k*k*C) with the style's (Ms x D), in blocks of ``chunk`` image patches under ``lax.map``
  so that only a (chunk x Ms) block of scores exists at a time. It runs on stop-gradient
  copies, so the backward pass never sees it, at the default matrix-product precision (TF32
  on recent GPUs may break a near-tie differently; the energy itself has no product). The
  matched style patches are gathered (N x D) and the energy's gradient flows through the
  image's patches, which are static gathers of the feature map (their transpose is a
  scatter-add).

Memory of one evaluation (value and gradient), float32 bytes, per layer of (H, W, C) with image
patches N = nr * nc (nr = ceil((H - k) / s) + 1, likewise nc), D = k*k*C and style patches Ms::

    4 * (Ms * D + Ms)                              the target (kept for the whole run)
  + 4 * (3 * N * D + min(chunk, N) * Ms + H * W * C)  temporaries: image and matched patches,
                                                   their difference and cotangent, one block
                                                   of scores (never kept for the backward pass)

(an upper bound of XLA:CPU's ``memory_analysis`` at 24x32x512 ... 96x128x128, strides 1 and 2,
chunks 256 and 1024, within 25%). Patches are static gathers, not
``lax.conv_general_dilated_patches``: on a 48x64x256 map the gather and its gradient took 24 ms
against 190 ms. Chunks of 1024 rather than 256 made one 48x64x256 stride-1 evaluation ~15%
faster (fewer, larger products).

Pure and jittable: ``patch_size``, ``stride``, ``chunk`` and ``normalization`` are static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError

NORMALIZATIONS = ('cnnmrf', 'sum')
DEFAULT_CHUNK = 256


def _check_options(patch_size: int, stride: int, chunk: int = DEFAULT_CHUNK,
                   normalization: str = 'cnnmrf') -> None:
  if int(patch_size) < 1 or int(stride) < 1:
    raise ConfigError(f'MRF patch_size and stride must be >= 1, got {patch_size} and {stride}')
  if int(chunk) < 1:
    raise ConfigError(f'MRF chunk (image patches matched per block) must be >= 1, got {chunk}')
  if normalization not in NORMALIZATIONS:
    raise ConfigError(f'unknown MRF normalization {normalization!r}; choose one of '
                      f'{", ".join(NORMALIZATIONS)}')


def _check_fits(shape: tuple[int, ...], patch_size: int, what: str) -> None:
  if len(shape) != 3:
    raise ConfigError(f'MRF {what} features must be (H, W, C), got shape {tuple(shape)}')
  h, w, _ = shape
  if patch_size > min(h, w):
    raise ConfigError(f'MRF patch_size={patch_size} does not fit the {what} features ({h}x{w} '
                      'positions): use a smaller patch, a larger image or a shallower layer')


def patch_origins(n: int, patch_size: int, stride: int) -> np.ndarray:
  """Patch origins along one axis of length ``n``: every ``stride``-th, plus the last one
  (``n - patch_size``) when the stride skips it (CNNMRF's ``computegrid`` with ``flag_all``)."""
  last = n - patch_size
  origins = list(range(0, last + 1, stride))
  if origins[-1] != last:
    origins.append(last)
  return np.asarray(origins, np.int32)


def coverage(n: int, patch_size: int, stride: int) -> np.ndarray:
  """How many grid patches cover each position along one axis (the grid is a product, so the
  2-D count is the outer product of the two axes' counts)."""
  count = np.zeros(n, np.float64)
  for o in patch_origins(n, patch_size, stride):
    count[o:o + patch_size] += 1.
  return count


def extract_patches(features: jax.Array, patch_size: int, stride: int) -> jax.Array:
  """The grid's k x k patches of (H, W, C) features -> (N, k*k*C), rows in row-major order of
  the origins, each patch flattened as (dy, dx, c)."""
  h, w, c = features.shape
  k = patch_size
  offsets = np.arange(k, dtype=np.int32)
  rows = patch_origins(h, k, stride)[:, None] + offsets[None]   # (nr, k)
  cols = patch_origins(w, k, stride)[:, None] + offsets[None]   # (nc, k)
  p = features[rows]                   # (nr, k, W, C): static gathers, transposed to scatter-adds
  p = p[:, :, cols]                    # (nr, k, nc, k, C)
  p = jnp.transpose(p, (0, 2, 1, 3, 4))
  return p.reshape(rows.shape[0] * cols.shape[0], k * k * c)


def patch_weights(h: int, w: int, patch_size: int, stride: int) -> np.ndarray:
  """(N, k*k, 1) weights ``1 / n_p`` of each patch element's position (``'cnnmrf'``)."""
  k = patch_size
  offsets = np.arange(k)
  rows = patch_origins(h, k, stride)[:, None] + offsets[None]
  cols = patch_origins(w, k, stride)[:, None] + offsets[None]
  wr = 1. / coverage(h, k, stride)[rows]                      # (nr, k)
  wc = 1. / coverage(w, k, stride)[cols]                      # (nc, k)
  wt = wr[:, None, :, None] * wc[None, :, None, :]            # (nr, nc, k, k)
  return wt.reshape(-1, k * k, 1).astype(np.float32)


def mrf_target(features: jax.Array, patch_size: int = 3, stride: int = 1) -> dict:
  """The style's patches of one layer, computed once per style image.

  Args:
    features: the style's (Hs, Ws, C) activations of one layer.
    patch_size: k (Li & Wand: 3).
    stride: between patch origins (CNNMRF's ``mrf_sample_stride``; its default is 2).

  Returns:
    ``{'patches': (Ms, k*k*C), 'inv_norms': (Ms,)}``: the raw patches (what the image's patches
    are pulled to) and their inverse L2 norms (0 for a zero patch), which make the matching a
    normalised cross-correlation.
  """
  _check_options(patch_size, stride)
  _check_fits(features.shape, patch_size, 'style')
  s = extract_patches(jnp.asarray(features), patch_size, stride)
  norm = jnp.sqrt(jnp.sum(jnp.square(s), axis=1))
  inv = jnp.where(norm > 0., 1. / jnp.where(norm > 0., norm, 1.), 0.)
  return {'patches': s, 'inv_norms': inv}


def nearest_patches(patches: jax.Array, target: dict, chunk: int = DEFAULT_CHUNK) -> jax.Array:
  """(N,) index of each image patch's best style patch (eq. 3: normalised cross-correlation),
  computed in blocks of ``chunk`` rows so that at most a (chunk x Ms) block of scores exists."""
  p = jax.lax.stop_gradient(patches)
  s = jax.lax.stop_gradient(target['patches'])
  inv = jax.lax.stop_gradient(target['inv_norms'])

  def block(b):
    return jnp.argmax(jnp.matmul(b, s.T) * inv[None, :], axis=1).astype(jnp.int32)

  n, d = p.shape
  if n <= chunk:
    return block(p)
  blocks = -(-n // chunk)
  p = jnp.pad(p, ((0, blocks * chunk - n), (0, 0))).reshape(blocks, chunk, d)
  return jax.lax.map(block, p).reshape(-1)[:n]


def mrf_loss(features: jax.Array, target: dict, patch_size: int = 3, stride: int = 1,
             chunk: int = DEFAULT_CHUNK, normalization: str = 'cnnmrf') -> jax.Array:
  """Li & Wand 2016's MRF style energy (eq. 2, matching by eq. 3) of one layer.

  Args:
    features: the image's (H, W, C) activations of one layer.
    target: :func:`mrf_target` of the style's activations of the same layer (same
      ``patch_size``; its stride may differ).
    patch_size: k; a patch larger than the feature map raises ConfigError.
    stride: between the image's patch origins (CNNMRF's ``mrf_synthesis_stride``, default 2).
    chunk: image patches matched per block (memory: 4 * chunk * Ms bytes of scores).
    normalization: ``'cnnmrf'`` (default): ``1/2 sum_i sum_p (1/n_p) |.|^2``, whose gradient is
      the authors' code's; ``'sum'``: eq. (2) verbatim (see the module docstring).

  Returns:
    A float32 scalar >= 0, zero when every image patch equals a style patch.
  """
  _check_options(patch_size, stride, chunk, normalization)
  _check_fits(features.shape, patch_size, 'image')
  h, w, c = features.shape
  d = patch_size * patch_size * c
  if target['patches'].shape[-1] != d:
    raise ConfigError(f'MRF target has patches of {target["patches"].shape[-1]} values, the '
                      f'image {d} (patch_size={patch_size}, {c} channels): compute the target '
                      'with the same patch size and layer')
  p = extract_patches(jnp.asarray(features), patch_size, stride)
  idx = nearest_patches(p, target, chunk)
  matched = jax.lax.stop_gradient(jnp.take(target['patches'], idx, axis=0))
  diff = (p - matched).reshape(p.shape[0], patch_size * patch_size, c)
  sq = jnp.square(diff)
  if normalization == 'sum':
    return jnp.sum(sq)
  return 0.5 * jnp.sum(sq * jnp.asarray(patch_weights(h, w, patch_size, stride)))
