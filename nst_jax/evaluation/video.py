"""Temporal-consistency metrics of a stylised video against its input video.

* :func:`flicker_ratio`: the output's mean absolute frame-to-frame change over the input's
  (1 = as much change as the input, more = flicker the input does not have).
* :func:`warping_error`: Lai et al.'s warping error, with the optical flow of the *input* frames
  from OpenCV's DIS (the classical flow, no learned weights; ``pip install nst_jax[video_eval]``)
  and Ruder et al.'s occlusion mask.

The flow runs in OpenCV; warping, masks and errors are pure jitted JAX functions
(:func:`warp`, :func:`occlusion_mask`, :func:`pair_warping_error`). Frames are RGB, (T, H, W, 3),
uint8 or float in 0..255.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ImageError, NSTError
from nst_jax.io import images as image_io
from nst_jax.io import log

VIDEO_EXTRA = 'video_eval'


def _frames(frames: Any, name: str) -> np.ndarray:
  arr = np.stack([np.asarray(f) for f in frames]) if not isinstance(frames, np.ndarray) else frames
  if arr.ndim != 4 or arr.shape[-1] != 3:
    raise ImageError(f'{name} must be (T, H, W, 3) RGB frames, got shape {arr.shape}')
  if arr.shape[0] < 2:
    raise ImageError(f'{name} needs at least 2 frames, got {arr.shape[0]}')
  return arr


@jax.jit
def flicker_ratio(output_frames: jax.Array, input_frames: jax.Array) -> jax.Array:
  """``mean |O_{t+1} - O_t| / mean |I_{t+1} - I_t|`` over all frames, pixels and channels.

  Source: the temporal-instability measure of video style transfer (Ruder, Dosovitskiy & Brox,
  "Artistic Style Transfer for Videos", GCPR 2016, and the frame-difference flicker of Chen et
  al., "Coherent Online Video Style Transfer", ICCV 2017) taken relative to the input's own
  frame differences, so that motion in the input is not counted as flicker. NaN when the input
  does not change. Frames (T, H, W, 3) of one size; the inputs may be uint8.
  """
  o = jnp.asarray(output_frames, jnp.float32)
  i = jnp.asarray(input_frames, jnp.float32)
  num = jnp.mean(jnp.abs(o[1:] - o[:-1]))
  den = jnp.mean(jnp.abs(i[1:] - i[:-1]))
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.), jnp.nan)


def warp(image: jax.Array, flow: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Backward warp: ``out(x) = image(x + flow(x))`` by bilinear interpolation.

  Args:
    image: (H, W, C).
    flow: (H, W, 2) displacements (dx, dy) in pixels (OpenCV's layout: x = column first).

  Returns:
    The warped (H, W, C) image (edge values outside) and an (H, W) mask, 1 where
    ``x + flow(x)`` lies inside the image.
  """
  h, w = image.shape[:2]
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing='ij')
  r = rows + flow[..., 1]
  c = cols + flow[..., 0]
  inside = (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)
  sample = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [r, c], order=1, mode='nearest')
  out = jnp.stack([sample(image[..., k]) for k in range(image.shape[-1])], axis=-1)
  return out, inside.astype(jnp.float32)


def occlusion_mask(forward: jax.Array, backward: jax.Array) -> jax.Array:
  """(H, W) mask, 1 where the forward flow t -> t+1 is reliable, 0 at occlusions, motion
  boundaries and where it leaves the frame.

  Source: Ruder, Dosovitskiy & Brox, "Artistic Style Transfer for Videos", GCPR 2016, Sec. 3.1
  (after Sundaram et al. 2010): with ``w`` the forward flow and ``w~(x) = backward(x + w(x))``,
  a pixel is occluded if ``|w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5``, and on a motion boundary
  if ``|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002``.
  """
  back, inside = warp(backward, forward)
  w2 = jnp.sum(jnp.square(forward), -1)
  consistent = (jnp.sum(jnp.square(forward + back), -1)
                <= 0.01 * (w2 + jnp.sum(jnp.square(back), -1)) + 0.5)
  du = jnp.gradient(forward[..., 0])
  dv = jnp.gradient(forward[..., 1])
  grad2 = sum(jnp.square(d) for d in (*du, *dv))
  smooth = grad2 <= 0.01 * w2 + 0.002
  return inside * consistent * smooth


@jax.jit
def pair_warping_error(frame: jax.Array, next_frame: jax.Array, forward: jax.Array,
                       backward: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(sum_x M(x) ||O_t(x) - warp(O_{t+1})(x)||^2, sum_x M(x))`` for one pair of output frames
  (RGB 0..255, scored in 0..1 units) and the input's flows t -> t+1 and t+1 -> t.

  Source: Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, Eq. 8.
  """
  o = jnp.asarray(frame, jnp.float32) / 255.
  o1 = jnp.asarray(next_frame, jnp.float32) / 255.
  warped, _ = warp(o1, forward)
  mask = occlusion_mask(forward, backward)
  return jnp.sum(mask * jnp.sum(jnp.square(o - warped), -1)), jnp.sum(mask)


def _import_cv2() -> Any:
  """OpenCV's module, or None when it is not installed (imported lazily: an optional extra)."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return cv2


def _cv2() -> Any:
  cv2 = _import_cv2()
  if cv2 is None:
    raise NSTError(f'the warping error needs OpenCV: pip install "nst_jax[{VIDEO_EXTRA}]" '
                   '(or opencv-python-headless)')
  return cv2


def dis_flows(frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Forward (t -> t+1) and backward (t+1 -> t) optical flows of (T, H, W, 3) RGB frames by
  OpenCV's DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016;
  ``DISOpticalFlow`` with the MEDIUM preset) on 8-bit grey frames: (H, W, 2) float32 each."""
  cv2 = _cv2()
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  grey = [cv2.cvtColor(image_io.to_uint8(f), cv2.COLOR_RGB2GRAY) for f in frames]
  fw = [dis.calc(a, b, None) for a, b in zip(grey[:-1], grey[1:])]
  bw = [dis.calc(b, a, None) for a, b in zip(grey[:-1], grey[1:])]
  return fw, bw


def _paired(output_frames: Any, input_frames: Any) -> tuple[np.ndarray, np.ndarray]:
  """Both videos as (T, H, W, 3) float arrays, the input resized to the output's frame size;
  ImageError when their frame counts differ."""
  out = _frames(output_frames, 'output_frames')
  inp = _frames(input_frames, 'input_frames')
  if len(out) != len(inp):
    raise ImageError(f'output has {len(out)} frames, input {len(inp)}')
  if inp.shape[1:3] != out.shape[1:3]:
    inp = np.stack([image_io.resize_image(f, shape=out.shape[1:3]) for f in inp])
  return out, inp


def warping_error(output_frames: Any, input_frames: Any) -> float:
  """Lai et al.'s warping error of a stylised video, with the flow of its input video.

  Source: Lai, Huang, Wang, Shechtman, Yumer & Yang, "Learning Blind Video Temporal
  Consistency", ECCV 2018, Sec. 5 (Eq. 8): ``E = 1/(T-1) sum_t sum_x M_t(x) ||O_t(x) -
  O^_{t+1}(x)||^2 / sum_x M_t(x)`` with ``O^_{t+1}`` the next output frame warped back by the
  input's flow and ``M_t`` the occlusion mask (:func:`occlusion_mask`), RGB in 0..1. The flow
  here is DIS (:func:`dis_flows`) instead of their FlowNet 2.0. 0 for an output that moves
  exactly with the input.
  """
  out, inp = _paired(output_frames, input_frames)
  fw, bw = dis_flows(inp)
  errors = []
  for t in range(len(out) - 1):
    err, area = pair_warping_error(out[t], out[t + 1], fw[t], bw[t])
    errors.append(float(err) / max(float(area), 1.))
  return float(np.mean(errors))


def video_metrics(output_frames: Sequence | np.ndarray,
                  input_frames: Sequence | np.ndarray) -> dict[str, float]:
  """``{'flicker_ratio', 'warping_error'}`` of a stylised video against its input; without
  OpenCV installed (``nst_jax[video_eval]``) the warping error is left out, with a warning.

  Both are (T, H, W, 3) RGB, uint8 or float in 0..255, the same number of frames; input frames of
  another size are resized to the output's.
  """
  out, inp = _paired(output_frames, input_frames)
  result = {'flicker_ratio': float(flicker_ratio(out, inp))}
  if _import_cv2() is None:
    log.warning(f'warping_error skipped: OpenCV is not installed (pip install '
                f'"nst_jax[{VIDEO_EXTRA}]")')
  else:
    result['warping_error'] = warping_error(out, inp)
  return result
