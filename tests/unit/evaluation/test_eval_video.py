"""Video metrics: the flicker ratio against NumPy, warping and Ruder et al.'s occlusion mask on
known flows, Lai et al.'s warping error with OpenCV's DIS flow on a synthetic panning video, and
the message when OpenCV is missing."""

import sys

import numpy as np
import pytest
from scipy import ndimage

from nst_jax.errors import NSTError
from nst_jax.evaluation import video


def _texture(h, w, seed=0):
  rng = np.random.default_rng(seed)
  t = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), (2.5, 2.5, 0))
  return np.clip((t - t.mean()) * 6 + 128, 0, 255)


def _panning(frames=5, h=48, w=64, step=2):
  """Frames of a camera panning right by ``step`` pixels per frame over a smooth texture."""
  big = _texture(h, w + step * frames)
  return np.stack([big[:, t * step:t * step + w] for t in range(frames)]).astype(np.uint8)


def test_flicker_ratio_matches_numpy():
  rng = np.random.default_rng(0)
  inp = rng.uniform(0, 255, (4, 8, 10, 3))
  out = rng.uniform(0, 255, (4, 8, 10, 3))
  want = np.abs(np.diff(out, axis=0)).mean() / np.abs(np.diff(inp, axis=0)).mean()
  assert float(video.flicker_ratio(out, inp)) == pytest.approx(want, rel=1e-5)
  assert float(video.flicker_ratio(inp, inp)) == pytest.approx(1., rel=1e-6)
  assert float(video.flicker_ratio(np.repeat(out[:1], 4, 0), inp)) == 0.
  assert np.isnan(float(video.flicker_ratio(out, np.repeat(inp[:1], 4, 0))))


def test_warp_and_occlusion_mask_on_known_flows():
  img = _texture(12, 16).astype(np.float32)
  flow = np.zeros((12, 16, 2), np.float32)
  flow[..., 0], flow[..., 1] = 3., -2.  # each pixel's match is 3 columns right, 2 rows up
  warped, inside = map(np.asarray, video.warp(img, flow))
  np.testing.assert_allclose(warped[2:, :13], img[:10, 3:], atol=1e-3)
  assert inside[2:, :13].all() and not inside[:2].any() and not inside[:, 13:].any()
  consistent = np.asarray(video.occlusion_mask(flow, -flow))
  np.testing.assert_array_equal(consistent, inside)
  assert not np.asarray(video.occlusion_mask(flow, flow)).any()


def test_warping_error_with_dis_flow():
  pytest.importorskip('cv2')
  frames = _panning()
  fw, bw = video.dis_flows(frames)
  # DIS recovers the pan: 2 px to the right per frame, so each pixel's match moves 2 px left.
  assert np.median(fw[0][..., 0]) == pytest.approx(-2., abs=0.25)
  assert np.median(bw[0][..., 0]) == pytest.approx(2., abs=0.25)
  rng = np.random.default_rng(1)
  noise = rng.normal(size=frames.shape)
  errors = [video.warping_error(np.clip(frames + s * noise, 0, 255), frames)
            for s in (0., 10., 30.)]
  assert errors[0] < 2e-3 and np.all(np.diff(errors) > 0), errors
  # Frame-to-frame brightness flicker also raises it.
  gain = np.array([1., 1.15, 0.9, 1.1, 0.95])[:, None, None, None]
  assert video.warping_error(np.clip(frames * gain, 0, 255), frames) > 5 * errors[0]
  result = video.video_metrics(list(frames), frames)
  assert set(result) == {'flicker_ratio', 'warping_error'}
  assert result['flicker_ratio'] == pytest.approx(1.)


def test_missing_opencv_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'cv2', None)  # makes `import cv2` raise ImportError
  frames = _panning(frames=3)
  with pytest.raises(NSTError, match=r'nst_jax\[video_eval\]'):
    video.warping_error(frames, frames)
  assert set(video.video_metrics(frames, frames)) == {'flicker_ratio'}
