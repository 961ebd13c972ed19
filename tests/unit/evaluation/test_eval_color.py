"""Colour metrics against independent references: CIELAB against scikit-image, the RGB-uv
histogram distance against a NumPy transcription of StyleID's eval_histogan.py (HistoGAN's
RGBuvHistBlock), the sliced Wasserstein distance against SciPy's 1-D Wasserstein distance."""

import numpy as np
import pytest
import scipy.stats
from skimage import color as skcolor

from conftest import synthetic_image
from nst_jax.evaluation import color


def test_lab_matches_skimage():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (40, 70, 3)).astype(np.uint8)
  corners = np.array(np.meshgrid([0, 1, 10, 11, 128, 254, 255], [0, 10, 255], [0, 11, 255]))
  rgb[0, :63] = corners.reshape(3, -1).T
  want = skcolor.rgb2lab(rgb)
  got = np.asarray(color.rgb_to_lab(rgb))
  np.testing.assert_allclose(got, want, atol=2e-3)


# --- A NumPy transcription of StyleID's colour evaluation (float64) ---------------------------

def _torch_bilinear(x, out_h, out_w):
  """F.interpolate(x, (out_h, out_w), mode='bilinear', align_corners=False) of (H, W, C)."""
  def axis(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0
  r0, r1, lr = axis(x.shape[0], out_h)
  c0, c1, lc = axis(x.shape[1], out_w)
  top = x[r0][:, c0] * (1 - lc)[None, :, None] + x[r0][:, c1] * lc[None, :, None]
  bot = x[r1][:, c0] * (1 - lc)[None, :, None] + x[r1][:, c1] * lc[None, :, None]
  return top * (1 - lr)[:, None, None] + bot * lr[:, None, None]


def _histogan_hist(image, h=64, insz=256, sigma=0.02, eps=1e-6):
  x = np.clip(np.asarray(image, np.float64) / 255., 0, 1)   # ToTensor, clamp
  if x.shape[0] > insz or x.shape[1] > insz:
    x = _torch_bilinear(x, insz, insz)
  i = x.reshape(-1, 3)                                      # I = t(reshape(X, (3, -1)))
  iy = np.sqrt((i ** 2).sum(1) + eps)[:, None]
  bins = np.linspace(-3, 3, num=h)[None, :]
  hists = np.zeros((3, h, h))
  for c, (cu, cv) in enumerate([(1, 2), (0, 2), (0, 1)]):
    iu = (np.log(i[:, c] + eps) - np.log(i[:, cu] + eps))[:, None]
    iv = (np.log(i[:, c] + eps) - np.log(i[:, cv] + eps))[:, None]
    du = 1 / (1 + np.abs(iu - bins) ** 2 / sigma ** 2)
    dv = 1 / (1 + np.abs(iv - bins) ** 2 / sigma ** 2)
    hists[c] = (iy * du).T @ dv
  return hists / (hists.sum() + eps)


def _histogan_loss(stylised, style):
  a, b = _histogan_hist(stylised), _histogan_hist(style)
  return 1 / np.sqrt(2.0) * np.sqrt(np.sum((np.sqrt(b) - np.sqrt(a)) ** 2)) / 1


@pytest.mark.parametrize('shapes', [((48, 64), (56, 40)), ((300, 280), (64, 64))])
def test_histogram_distance_matches_styleid_transcription(shapes):
  (h1, w1), (h2, w2) = shapes
  a, b = synthetic_image(h1, w1, 11), synthetic_image(h2, w2, 12)
  a[:3, :3] = 0  # black pixels: the log's epsilon
  np.testing.assert_allclose(np.asarray(color.rgbuv_histogram(a)), _histogan_hist(a),
                             rtol=2e-4, atol=1e-7)
  np.testing.assert_allclose(float(color.hist_hellinger(a, b)), _histogan_loss(a, b), rtol=1e-4)


def test_histogram_identity_and_batch():
  a, b = synthetic_image(32, 40, 1), synthetic_image(32, 40, 2)
  assert float(color.hist_hellinger(a, a)) == pytest.approx(0., abs=1e-6)
  batch = np.asarray(color.hist_hellinger(np.stack([a, b]), np.stack([b, b])))
  np.testing.assert_allclose(batch, [float(color.hist_hellinger(a, b)), 0.], atol=1e-6)
  assert 0. < batch[0] < 1.


def test_sliced_wasserstein_matches_scipy():
  a, b = synthetic_image(48, 64, 3), synthetic_image(32, 32, 4)
  theta = color.swd_directions(16)
  pa = skcolor.rgb2lab(a).reshape(-1, 3) @ theta.T
  pb = skcolor.rgb2lab(b).reshape(-1, 3) @ theta.T
  want = np.mean([scipy.stats.wasserstein_distance(pa[:, k], pb[:, k]) for k in range(16)])
  # 3072 quantile levels: a multiple of both pixel counts, so the quantile integral is exact.
  got = float(color.sliced_wasserstein(a, b, directions=16, levels=3072))
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert float(color.sliced_wasserstein(a, a)) == pytest.approx(0., abs=1e-5)


def test_colour_distances_grow_with_a_colour_shift():
  style = synthetic_image(48, 64, 5).astype(np.float32)
  shift = np.array([1., 0.2, -1.])
  hell, swd = [], []
  for amount in (0., 10., 25., 50.):
    out = np.clip(style + amount * shift, 0, 255)
    hell.append(float(color.hist_hellinger(out, style)))
    swd.append(float(color.sliced_wasserstein(out, style)))
  assert hell[0] == pytest.approx(0., abs=1e-6) and swd[0] == pytest.approx(0., abs=1e-5)
  assert np.all(np.diff(hell) > 0) and np.all(np.diff(swd) > 0), (hell, swd)
