"""Image metrics against independent references: SSIM and the Sobel edge map against
scikit-image, CFSD against a NumPy transcription of StyleID's PatchSimi; identities (0, or 1 for
SSIM); every metric moving the right way under blur, noise and a colour shift."""

import numpy as np
import pytest
from scipy import ndimage
from skimage import filters as skfilters
from skimage.metrics import structural_similarity

from conftest import synthetic_image
from nst_jax.errors import ImageError
from nst_jax.evaluation import metrics

_SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _lum(image):
  return np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114])


def _blur(image, sigma):
  return ndimage.gaussian_filter(np.asarray(image, np.float64), (sigma, sigma, 0))


def _pairs(content_small):
  rng = np.random.default_rng(0)
  c = content_small.astype(np.float64)
  return [(c, np.clip(c + rng.normal(0, 25, c.shape), 0, 255)),
          (c, _blur(c, 1.5)),
          (c, np.clip(0.6 * c + 60, 0, 255)),
          (c, synthetic_image(*c.shape[:2], 3).astype(np.float64))]


def test_ssim_matches_skimage(content_small):
  for a, b in _pairs(content_small):
    ya, yb = _lum(a), _lum(b)
    want = structural_similarity(ya, yb, **_SK_SSIM)
    assert float(metrics.ssim(ya, yb)) == pytest.approx(want, abs=1e-4)


def test_sobel_and_edge_ssim_match_skimage(content_small):
  for a, b in _pairs(content_small):
    ya, yb = _lum(a), _lum(b)
    ea, eb = skfilters.sobel(ya), skfilters.sobel(yb)
    np.testing.assert_allclose(np.asarray(metrics.sobel_magnitude(ya)), ea, atol=2e-3)
    want = structural_similarity(ea, eb, **_SK_SSIM)
    assert float(metrics.edge_ssim(ya, yb)) == pytest.approx(want, abs=1e-4)


def test_ssim_identity_batch_and_small_images():
  a, b = _lum(synthetic_image(32, 40, 1)), _lum(synthetic_image(32, 40, 2))
  assert float(metrics.ssim(a, a)) == pytest.approx(1., abs=1e-6)
  assert float(metrics.edge_ssim(a, a)) == pytest.approx(1., abs=1e-6)
  batch = np.asarray(metrics.ssim(np.stack([a, b]), np.stack([b, b])))
  np.testing.assert_allclose(batch, [float(metrics.ssim(a, b)), 1.], atol=1e-6)
  with pytest.raises(ImageError, match='11x11'):
    metrics.ssim(a[:8], b[:8])


def test_ssim_and_edge_ssim_fall_under_blur_and_noise(content_small):
  y = _lum(content_small)
  rng = np.random.default_rng(1)
  noise = rng.normal(size=y.shape)
  for corrupt in ([ndimage.gaussian_filter(y, s) for s in (0.5, 1., 2., 4.)],
                  [np.clip(y + s * noise, 0, 255) for s in (5., 15., 40., 80.)]):
    s = [float(metrics.ssim(c, y)) for c in corrupt]
    e = [float(metrics.edge_ssim(c, y)) for c in corrupt]
    assert np.all(np.diff(s) < 0) and np.all(np.diff(e) < 0), (s, e)


# --- CFSD: a NumPy transcription of StyleID's PatchSimi (evaluation/image_metrics.py) ----------

def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _styleid_cfsd(stylised, content):
  """PatchSimi.forward(input=stylised, target=content) on (b, c, h, w) float64 features."""
  def simi(f):
    b, c, h, w = f.shape
    f = np.swapaxes(f, 1, 3).reshape(b, h * w, c) / c
    return f @ np.swapaxes(f, 1, 2)
  log_q = _log_softmax(simi(stylised)).reshape(stylised.shape[0], -1)   # patch_simi_cnt
  p = np.exp(_log_softmax(simi(content))).reshape(content.shape[0], -1)  # patch_simi_out
  return np.sum(p * (np.log(p) - log_q)) / stylised.shape[0]           # kl_div batchmean


@pytest.mark.parametrize('chunk', [None, 7 * 30])
def test_cfsd_matches_styleid_transcription(chunk, monkeypatch):
  if chunk:  # 7-row chunks of the 30-position matrices, the last one padded
    monkeypatch.setattr(metrics, '_CFSD_CHUNK_ELEMENTS', chunk)
  rng = np.random.default_rng(2)
  fc = np.maximum(rng.normal(1., 2., (2, 5, 6, 16)), 0.)
  fo = np.maximum(fc + rng.normal(0., 1., fc.shape), 0.)
  got = np.asarray(metrics.cfsd(fo, fc, feature_scale=3.))
  want = [_styleid_cfsd(np.transpose(3. * fo[i:i + 1], (0, 3, 1, 2)),
                        np.transpose(3. * fc[i:i + 1], (0, 3, 1, 2))) for i in range(2)]
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert min(want) > 1e-3
  np.testing.assert_allclose(np.asarray(metrics.cfsd(fc, fc, 3.)), 0., atol=1e-6)


def test_feature_distances_by_hand():
  rng = np.random.default_rng(3)
  fo = {l: rng.uniform(0, 2, (4, 5, 3)).astype(np.float32) for l in metrics.STYLE_LAYERS}
  fs = {l: rng.uniform(0, 2, (6, 3, 3)).astype(np.float32) for l in metrics.STYLE_LAYERS}
  gram = lambda f: f.reshape(-1, 3).T @ f.reshape(-1, 3) / (f.shape[0] * f.shape[1])
  want = np.mean([np.linalg.norm(gram(fo[l]) - gram(fs[l])) / np.linalg.norm(gram(fs[l]))
                  for l in metrics.STYLE_LAYERS])
  assert float(metrics.gram_distance(fo, fs)) == pytest.approx(want, rel=1e-5)
  stats = lambda f: (f.reshape(-1, 3).mean(0), f.reshape(-1, 3).std(0))
  want = np.mean([(np.linalg.norm(stats(fo[l])[0] - stats(fs[l])[0])
                   + np.linalg.norm(stats(fo[l])[1] - stats(fs[l])[1]))
                  / (np.linalg.norm(stats(fs[l])[0]) + np.linalg.norm(stats(fs[l])[1]))
                  for l in metrics.STYLE_LAYERS])
  assert float(metrics.mean_std_distance(fo, fs)) == pytest.approx(want, rel=1e-5)
  c = fo['conv1_1']
  assert float(metrics.content_distance(c, 0.5 * c)) == pytest.approx(1., rel=1e-6)


def _w2_relative(o, s):
  """NumPy: per channel, the sorted output values against the painting's quantile function
  (np.interp of its sorted values at (j + 0.5) / Ms, read at (i + 0.5) / M)."""
  o, s = o.reshape(-1, o.shape[-1]), s.reshape(-1, s.shape[-1])
  qo = (np.arange(len(o)) + 0.5) / len(o)
  qs = (np.arange(len(s)) + 0.5) / len(s)
  w2 = sum(np.mean((np.sort(o[:, c]) - np.interp(qo, qs, np.sort(s[:, c]))) ** 2)
           for c in range(o.shape[1]))
  return np.sqrt(w2 / np.sum(np.mean(s ** 2, axis=0)))


def test_feature_histogram_distance_against_numpy_and_scipy():
  from scipy.stats import wasserstein_distance
  rng = np.random.default_rng(4)
  fo = {l: rng.gamma(2., 1., (4, 5, 3)).astype(np.float32) for l in metrics.STYLE_LAYERS}
  fs = {l: rng.uniform(0, 3, (6, 3, 3)).astype(np.float32) for l in metrics.STYLE_LAYERS}
  want = np.mean([_w2_relative(fo[l], fs[l]) for l in metrics.STYLE_LAYERS])
  assert float(metrics.feature_histogram_distance(fo, fs)) == pytest.approx(want, rel=1e-5)
  # Equal counts: the exact 1-D W2 (scipy's W1 of the same samples bounds it from below).
  fs2 = {l: rng.uniform(0, 3, (4, 5, 3)).astype(np.float32) for l in metrics.STYLE_LAYERS}
  x, y = fo['conv1_1'].reshape(-1, 3), fs2['conv1_1'].reshape(-1, 3)
  w2 = [np.sqrt(np.mean((np.sort(x[:, c]) - np.sort(y[:, c])) ** 2)) for c in range(3)]
  for c in range(3):
    assert w2[c] >= wasserstein_distance(x[:, c], y[:, c]) - 1e-6
  got = metrics.feature_histogram_distance(fo, fs2, ['conv1_1'])
  assert float(got) == pytest.approx(np.sqrt(np.sum(np.square(w2)) / np.sum(np.mean(y ** 2, 0))),
                                     rel=1e-5)
  assert float(metrics.feature_histogram_distance(fs, fs)) == 0.
  # A permutation of the positions has the same histogram; batched leading axes.
  perm = {l: fs[l].reshape(-1, 3)[::-1].reshape(fs[l].shape) for l in fs}
  assert float(metrics.feature_histogram_distance(perm, fs)) == 0.
  both = {l: np.stack([fo[l], fo[l].reshape(-1, 3)[::-1].reshape(fo[l].shape)]) for l in fo}
  np.testing.assert_allclose(metrics.feature_histogram_distance(both, fs), [want, want],
                             rtol=1e-5)


# --- image_metrics --------------------------------------------------------------------------

def test_image_metrics_api(random_params):
  assert metrics.METRICS == ('style_gram', 'style_mean_std', 'style_hist', 'content', 'cfsd',
                             'ssim', 'edge_ssim', 'hist_hellinger', 'hist_swd')
  assert [k for k, v in metrics.HIGHER_IS_BETTER.items() if v] == ['ssim', 'edge_ssim']
  img = synthetic_image(32, 40, 4)
  # A content of another size is resized to the output's; a style of any size, float inputs.
  other = metrics.image_metrics(random_params, img.astype(np.float32), synthetic_image(48, 60, 4),
                                synthetic_image(40, 24, 5))
  assert list(other) == list(metrics.METRICS)
  assert all(isinstance(v, float) and np.isfinite(v) for v in other.values())
  assert other['style_gram'] > 0 and other['cfsd'] >= 0 and 0 < other['ssim'] < 1
  with pytest.raises(ImageError, match='16x16'):
    metrics.image_metrics(random_params, img[:12], img[:12], img)


def test_image_metrics_move_the_right_way(params, content_small):
  """Output = the photo corrupted, photo and painting = the photo itself: every metric is at its
  best for the clean image, and every metric the corruption should hurt gets worse step by step
  (real VGG19 weights)."""
  img = content_small.astype(np.float64)
  rng = np.random.default_rng(5)
  noise = rng.normal(size=img.shape)
  shift = np.array([1., 0.2, -1.])
  corruptions = {
      'noise': ([np.clip(img + s * noise, 0, 255) for s in (8., 30.)], metrics.METRICS),
      'blur': ([_blur(img, s) for s in (0.7, 2.)],
               ('style_gram', 'style_mean_std', 'style_hist', 'content', 'cfsd', 'ssim',
                'edge_ssim')),
      'colour': ([np.clip(img + s * shift, 0, 255) for s in (15., 45.)],
                 ('style_gram', 'style_mean_std', 'style_hist', 'content', 'hist_hellinger',
                  'hist_swd')),
  }
  clean = metrics.image_metrics(params, img, img, img)
  for name, value in clean.items():  # identical images: 0, or 1 for SSIM
    assert value == pytest.approx(1. if metrics.HIGHER_IS_BETTER[name] else 0., abs=1e-5), name
  for kind, (images, names) in corruptions.items():
    runs = [clean] + [metrics.image_metrics(params, im.astype(np.float32), img, img)
                      for im in images]
    for name in names:
      values = np.array([r[name] for r in runs])
      steps = np.diff(values) * (-1 if metrics.HIGHER_IS_BETTER[name] else 1)
      assert np.all(steps > 0), (kind, name, values)
