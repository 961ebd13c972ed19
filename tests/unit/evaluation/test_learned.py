"""Learned metrics (FID, LPIPS, ArtFID) with random weights: the loader's checks (sha256, a
missing or unconverted file, corruption, shapes), the forward passes' shapes, LPIPS's identities
and its head against a NumPy transcription, the resize against a NumPy transcription of
F.interpolate, FID against an eigenvalue form of the Frechet distance and an analytic case, and
the ArtFID formula. Marked slow: the converter on tiny torch state dicts (needs torch), with the
JAX forward passes compared to torch's."""

import hashlib
import importlib.util
import json

import numpy as np
import pytest

from nst_jax.errors import ConfigError, ImageError, WeightsError
from nst_jax.evaluation import learned
from nst_jax.io import files as fileio
from nst_jax.models import inception, lpips as lpips_lib

from conftest import ROOT, random_lpips_arrays, write_converted

FID_SHA = '6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2'


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


def random_inception_arrays(variant, seed=0):
  """He-initialised kernels and mildly random batch-norm statistics: finite, non-vanishing."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in inception.param_shapes(variant).items():
    leaf = name.rsplit('/', 1)[1]
    if leaf == 'kernel':
      fan_in = shape[0] * shape[1] * shape[2]
      arrays[name] = rng.normal(0., np.sqrt(2. / fan_in), shape).astype(np.float32)
    elif leaf in ('scale', 'var'):
      arrays[name] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
    else:
      arrays[name] = rng.normal(0., 0.05, shape).astype(np.float32)
  return arrays


@pytest.fixture(scope='module')
def fid_file(tmp_path_factory):
  return write_converted(tmp_path_factory.mktemp('learned') / 'fid_inception.npz',
                         'fid_inception', random_inception_arrays('fid'))


@pytest.fixture(scope='module')
def weights_files(tmp_path_factory, fid_file):
  d = tmp_path_factory.mktemp('learned_all')
  return {'fid_inception': fid_file,
          'art_inception': write_converted(d / 'art.npz', 'art_inception',
                                           random_inception_arrays('torchvision', 1)),
          'lpips_vgg': write_converted(d / 'vgg.npz', 'lpips_vgg', random_lpips_arrays('vgg')),
          'lpips_alex': write_converted(d / 'alex.npz', 'lpips_alex',
                                        random_lpips_arrays('alex', 1))}


def _images(n, h, w, seed):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 255, (n, h, w, 3)).astype(np.float32)


# --- The loader ---------------------------------------------------------------------------------

def test_inception_has_pytorch_fids_94_basic_convs():
  # pt_inception-2015-12-05 holds 566 entries: 94 BasicConv2d x 6 (weight, 4 bn, a counter) + fc.
  for variant in inception.VARIANTS:
    names = inception.param_shapes(variant)
    assert len(names) == 94 * 5
    assert names['Mixed_6b/branch7x7_2/conv/kernel'] == (1, 7, 128, 128)
    assert names['Mixed_7c/branch_pool/conv/kernel'] == (1, 1, 2048, 192)
    assert names['Mixed_7b/branch3x3dbl_1/bn/var'] == (448,)


def test_load_learned_checks_the_official_sha256(fid_file, tmp_path):
  w = learned.load_learned('fid_inception', fid_file)
  assert w.meta['sources']['weights']['sha256'] == FID_SHA
  assert learned.load_learned('fid_inception', fid_file, sha256=_sha(fid_file)).name == w.name
  assert learned.load_learned('fid_inception', fid_file, sha256=FID_SHA.upper()).name == w.name
  with pytest.raises(WeightsError, match='none is the sha256') as e:
    learned.load_learned('fid_inception', fid_file, sha256='0' * 64)
  assert '\n' not in str(e.value)
  with pytest.raises(ConfigError, match='not a sha256'):
    learned.load_learned('fid_inception', fid_file, sha256='abc')
  other = write_converted(tmp_path / 'other.npz', 'fid_inception',
                          random_inception_arrays('fid'), hashes={'weights': 'cd' * 32})
  with pytest.raises(WeightsError, match=f'not from the official .*{FID_SHA}') as e:
    learned.load_learned('fid_inception', other)
  assert '\n' not in str(e.value)
  # The user's hash (of the source or of the .npz) replaces the official check.
  assert learned.load_learned('fid_inception', other, sha256='cd' * 32).name == 'fid_inception'


def test_load_learned_uses_the_converters_record_where_no_official_hash_exists(tmp_path):
  assert learned.LEARNED['art_inception'].sources[0].sha256 is None
  arrays = random_inception_arrays('torchvision', 2)
  path = write_converted(tmp_path / 'art.npz', 'art_inception', arrays, {'weights': 'ef' * 32})
  assert learned.load_learned('art_inception', path).meta['sources']['weights']['sha256'] == \
      'ef' * 32
  assert learned.load_learned('art_inception', path, sha256='ef' * 32).name == 'art_inception'
  with pytest.raises(WeightsError, match='none is the sha256'):
    learned.load_learned('art_inception', path, sha256='12' * 32)


def test_missing_unconverted_corrupt_or_wrong_files_are_one_line_weights_errors(tmp_path):
  missing = tmp_path / 'nowhere' / 'fid.npz'
  with pytest.raises(WeightsError) as e:
    learned.load_learned('fid_inception', missing)
  msg = str(e.value)
  assert str(missing) in msg and 'docs/guide/evaluation.md' in msg and '\n' not in msg
  assert 'pt_inception-2015-12-05-6726825d.pth' in msg and 'convert_learned.py' in msg
  pth = tmp_path / 'vgg.pth'
  pth.write_bytes(b'PK\x03\x04 not unpickled')
  with pytest.raises(WeightsError, match='never unpickles'):
    learned.load_learned('lpips_vgg', pth)
  garbage = tmp_path / 'garbage.npz'
  garbage.write_bytes(b'not a zip')
  with pytest.raises(WeightsError, match='not a readable .npz'):
    learned.load_learned('lpips_vgg', garbage)
  arrays = random_lpips_arrays('vgg')
  wrong_metric = write_converted(tmp_path / 'alex_as_vgg.npz', 'lpips_vgg', arrays)
  with pytest.raises(WeightsError, match='holds lpips_vgg weights, not lpips_alex'):
    learned.load_learned('lpips_alex', wrong_metric)
  tampered = dict(arrays, **{'lin0/weight': arrays['lin0/weight'] * 2})
  corrupt = write_converted(tmp_path / 'corrupt.npz', 'lpips_vgg', tampered,
                            digest=learned.arrays_digest(arrays))
  with pytest.raises(WeightsError, match='corrupt'):
    learned.load_learned('lpips_vgg', corrupt)
  short = dict(arrays, **{'conv1_1/bias': np.zeros(3, np.float32)})
  with pytest.raises(WeightsError, match=r'conv1_1/bias has shape \(3,\)'):
    learned.load_learned('lpips_vgg', write_converted(tmp_path / 's.npz', 'lpips_vgg', short))
  with pytest.raises(ConfigError, match='unknown learned metric'):
    learned.load_learned('fid_clip', missing)


def test_converted_metadata_is_json_with_the_digest(weights_files):
  _, meta = fileio.read_npz(weights_files['lpips_alex'])
  json.dumps(meta)
  assert set(meta['sources']) == {'lin', 'backbone'}


# --- Forward passes -----------------------------------------------------------------------------

def test_pools_against_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 5, 6, 2)).astype(np.float32)
  pad0 = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  padm = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  win = lambda a, f: np.array([[f(a[0, i:i + 3, j:j + 3], axis=(0, 1)) for j in range(6)]
                               for i in range(5)])[None]
  counts = win(np.pad(np.ones_like(x), ((0, 0), (1, 1), (1, 1), (0, 0))), np.sum)
  np.testing.assert_allclose(inception.avg_pool_3x3(x, True), win(pad0, np.sum) / 9, atol=1e-6)
  np.testing.assert_allclose(inception.avg_pool_3x3(x, False), win(pad0, np.sum) / counts,
                             atol=1e-6)
  np.testing.assert_allclose(inception.max_pool(x, 3, 1, 1), win(padm, np.max), atol=0)
  assert inception.max_pool(x).shape == (1, 2, 2, 2)  # floor((5 - 3) / 2) + 1, (6 - 3) // 2 + 1


def _torch_bilinear(x, out_h, out_w):
  """F.interpolate(mode='bilinear', align_corners=False) of (N, H, W, C), in NumPy."""
  def axis(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.)
    i0 = np.floor(src).astype(int)
    return i0, np.minimum(i0 + 1, n_in - 1), src - i0
  r0, r1, lr = axis(x.shape[1], out_h)
  c0, c1, lc = axis(x.shape[2], out_w)
  lc = lc[None, None, :, None]
  top = x[:, r0][:, :, c0] * (1 - lc) + x[:, r0][:, :, c1] * lc
  bot = x[:, r1][:, :, c0] * (1 - lc) + x[:, r1][:, :, c1] * lc
  return top * (1 - lr)[None, :, None, None] + bot * lr[None, :, None, None]


@pytest.mark.parametrize('h,w', [(40, 52), (120, 97)])
def test_fid_input_is_pytorch_fids_resize_and_scaling(h, w):
  x = _images(2, h, w, 3)
  want = 2. * _torch_bilinear(x / 255., 75, 75) - 1.
  np.testing.assert_allclose(inception.fid_input(x, 75), want, atol=3e-5)
  np.testing.assert_allclose(inception.art_input(x), x / 255., atol=1e-7)


def test_inception_features_shapes_and_batching(weights_files):
  fid_w = learned.load_learned('fid_inception', weights_files['fid_inception'])
  art_w = learned.load_learned('art_inception', weights_files['art_inception'])
  ims = [_images(1, 75, 75, 0)[0], _images(1, 90, 80, 1)[0], _images(1, 75, 75, 2)[0]]
  feats = learned.inception_features(fid_w, ims, batch_size=2, size=75)
  assert feats.shape == (3, 2048) and np.all(np.isfinite(feats)) and feats.std() > 1e-3
  # Another batching (and padding) of the same images gives the same rows.
  again = learned.inception_features(fid_w, [ims[2], ims[1], ims[0]], batch_size=2, size=75)
  np.testing.assert_allclose(again[::-1], feats, rtol=1e-4, atol=1e-5)
  art = learned.inception_features(art_w, np.stack([ims[0], ims[2]]))
  assert art.shape == (2, 2048) and np.all(np.isfinite(art))
  with pytest.raises(ImageError, match='too small'):
    learned.inception_features(art_w, _images(1, 64, 80, 0))
  with pytest.raises(ConfigError, match='not inception'):
    learned.inception_features(learned.load_learned('lpips_vgg', weights_files['lpips_vgg']), ims)


def _numpy_lpips_head(params, a, b, backbone):
  """The LPIPS head in NumPy on the backbone's taps, input scaled with the paper's constants."""
  shift, scale = np.array([-.030, -.088, -.188]), np.array([.458, .448, .450])
  taps = [lpips_lib.backbone_features(params, ((x / 127.5 - 1.) - shift) / scale, backbone)
          for x in (a, b)]
  total = 0.
  for i, (fa, fb) in enumerate(zip(*taps)):
    fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    na = fa / (np.sqrt((fa ** 2).sum(-1, keepdims=True)) + 1e-10)
    nb = fb / (np.sqrt((fb ** 2).sum(-1, keepdims=True)) + 1e-10)
    total = total + (((na - nb) ** 2) * np.asarray(params[f'lin{i}/weight'])).sum(-1).mean((1, 2))
  return total


@pytest.mark.parametrize('backbone', lpips_lib.BACKBONES)
def test_lpips_identities_and_head(weights_files, backbone):
  w = learned.load_learned(f'lpips_{backbone}', weights_files[f'lpips_{backbone}'])
  a, b = _images(2, 32, 32, 10), _images(2, 32, 32, 11)
  ab, ba = learned.lpips(w, a, b), learned.lpips(w, b, a)
  assert ab.shape == (2,) and np.all(ab > 1e-3)
  np.testing.assert_allclose(ab, ba, rtol=1e-5)
  np.testing.assert_allclose(learned.lpips(w, a, a), 0., atol=1e-6)
  np.testing.assert_allclose(ab, _numpy_lpips_head(w.params, a, b, backbone), rtol=1e-4)
  near = np.clip(a + np.random.default_rng(0).normal(0, 3, a.shape), 0, 255)
  assert np.all(learned.lpips(w, a, near) < ab)
  with pytest.raises(ImageError, match='one size'):
    learned.lpips(w, a[:1], _images(1, 32, 40, 0))


# --- FID and ArtFID -----------------------------------------------------------------------------

def _reference_fid(a, b):
  """The Frechet distance with tr((S1 S2)^(1/2)) as the sum of the square roots of S1 S2's
  eigenvalues (real and non-negative for covariance matrices)."""
  m1, m2 = a.mean(0), b.mean(0)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  eig = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
  return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def test_fid_against_references():
  rng = np.random.default_rng(0)
  a = rng.normal(0., 1., (400, 16))
  b = rng.normal(0.3, 1.5, (300, 16)) @ rng.normal(size=(16, 16)) * 0.3
  assert learned.fid(a, b) == pytest.approx(_reference_fid(a, b), rel=1e-8)
  assert abs(learned.fid(a, a)) < 1e-8
  # Fewer samples than dimensions (the nuclear-norm form) and pytorch-fid's sqrtm form.
  c, d = rng.normal(size=(12, 16)), rng.normal(0.2, 1.2, (9, 16))
  stats = [c.mean(0), np.cov(c, rowvar=False), d.mean(0), np.cov(d, rowvar=False)]
  assert learned.fid(c, d) == pytest.approx(_reference_fid(c, d), rel=1e-6)
  assert learned.fid(c, d) == pytest.approx(learned.frechet_distance(*stats), rel=1e-6)
  # Diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
  mu1, mu2, v1, v2 = rng.normal(size=5), rng.normal(size=5), rng.uniform(.5, 2, 5), \
      rng.uniform(.5, 2, 5)
  want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
  assert learned.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want)
  # Fewer samples than dimensions: singular covariances, still finite and ~0 on itself.
  few = rng.normal(size=(5, 2048))
  assert abs(learned.fid(few, few)) < 1e-9
  with pytest.raises(ConfigError, match='at least 2'):
    learned.fid(a[:1], b)


def test_art_fid_and_learned_metrics(weights_files):
  assert learned.art_fid(2., 0.5) == pytest.approx(4.5)
  assert learned.art_fid(0., 0.) == 1.
  contents = [_images(1, 75, 75, 20)[0], _images(1, 75, 75, 21)[0], _images(1, 76, 75, 22)[0]]
  outputs = _images(3, 75, 75, 23)  # the last one is resized to its photo's 76x75 for LPIPS
  styles = _images(3, 75, 75, 24)
  got = learned.learned_metrics(outputs, contents, styles, weights_files, batch_size=2,
                                fid_size=75)
  assert set(got) == {'fid', 'fid_art', 'lpips_vgg', 'lpips_alex', 'art_fid'}
  assert all(np.isfinite(v) for v in got.values()) and got['fid'] > 0 and got['fid_art'] > 0
  assert got['art_fid'] == pytest.approx((1 + got['lpips_alex']) * (1 + got['fid_art']))
  only = learned.learned_metrics(outputs[:2], contents[:2], styles,
                                 {'lpips_vgg': weights_files['lpips_vgg']})
  assert set(only) == {'lpips_vgg'}
  with pytest.raises(ConfigError, match='unknown learned metric'):
    learned.learned_metrics(outputs, contents, styles, {'clip': None})


# --- The converter (needs torch; the user runs it, CI does not) --------------------------------

def _torch_models():
  """torch modules with the official state-dict layouts, for the converter's round trip."""
  torch = pytest.importorskip('torch')
  nn, F = torch.nn, torch.nn.functional

  class Basic(nn.Module):
    def __init__(self, cin, cout, **kw):
      super().__init__()
      self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
      self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
      return F.relu(self.bn(self.conv(x)))

  def avg(x, fid):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=not fid)

  class A(nn.Module):
    def __init__(self, cin, pf, fid):
      super().__init__()
      self.fid = fid
      self.branch1x1 = Basic(cin, 64, kernel_size=1)
      self.branch5x5_1 = Basic(cin, 48, kernel_size=1)
      self.branch5x5_2 = Basic(48, 64, kernel_size=5, padding=2)
      self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
      self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
      self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, padding=1)
      self.branch_pool = Basic(cin, pf, kernel_size=1)

    def forward(self, x):
      return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                        self.branch_pool(avg(x, self.fid))], 1)

  class B(nn.Module):
    def __init__(self, cin):
      super().__init__()
      self.branch3x3 = Basic(cin, 384, kernel_size=3, stride=2)
      self.branch3x3dbl_1 = Basic(cin, 64, kernel_size=1)
      self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
      self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
      return torch.cat([self.branch3x3(x),
                        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                        F.max_pool2d(x, 3, 2)], 1)

  class C(nn.Module):
    def __init__(self, cin, c7, fid):
      super().__init__()
      self.fid = fid
      self.branch1x1 = Basic(cin, 192, kernel_size=1)
      self.branch_pool = Basic(cin, 192, kernel_size=1)
      self.branch7x7_1 = Basic(cin, c7, kernel_size=1)
      self.branch7x7_2 = Basic(c7, c7, kernel_size=(1, 7), padding=(0, 3))
      self.branch7x7_3 = Basic(c7, 192, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7dbl_1 = Basic(cin, c7, kernel_size=1)
      for i, (k, p) in enumerate([((7, 1), (3, 0)), ((1, 7), (0, 3))] * 2, start=2):
        setattr(self, f'branch7x7dbl_{i}', Basic(c7, 192 if i == 5 else c7, kernel_size=k,
                                                 padding=p))

    def forward(self, x):
      d = self.branch7x7dbl_1(x)
      for i in range(2, 6):
        d = getattr(self, f'branch7x7dbl_{i}')(d)
      return torch.cat([self.branch1x1(x),
                        self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))), d,
                        self.branch_pool(avg(x, self.fid))], 1)

  class D(nn.Module):
    def __init__(self, cin):
      super().__init__()
      self.branch3x3_1 = Basic(cin, 192, kernel_size=1)
      self.branch3x3_2 = Basic(192, 320, kernel_size=3, stride=2)
      self.branch7x7x3_1 = Basic(cin, 192, kernel_size=1)
      self.branch7x7x3_2 = Basic(192, 192, kernel_size=(1, 7), padding=(0, 3))
      self.branch7x7x3_3 = Basic(192, 192, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7x3_4 = Basic(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
      b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
      return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, 2)], 1)

  class E(nn.Module):
    def __init__(self, cin, pool):
      super().__init__()
      self.pool = pool
      self.branch1x1 = Basic(cin, 320, kernel_size=1)
      self.branch_pool = Basic(cin, 192, kernel_size=1)
      self.branch3x3_1 = Basic(cin, 384, kernel_size=1)
      self.branch3x3_2a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
      self.branch3x3_2b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
      self.branch3x3dbl_1 = Basic(cin, 448, kernel_size=1)
      self.branch3x3dbl_2 = Basic(448, 384, kernel_size=3, padding=1)
      self.branch3x3dbl_3a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
      self.branch3x3dbl_3b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))

    def forward(self, x):
      b3 = self.branch3x3_1(x)
      d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
      pooled = (F.max_pool2d(x, 3, 1, 1) if self.pool == 'max' else
                F.avg_pool2d(x, 3, 1, 1, count_include_pad=self.pool == 'avg'))
      return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                        self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                        self.branch_pool(pooled)], 1)

  class Inception(nn.Module):
    def __init__(self, fid):
      super().__init__()
      self.Conv2d_1a_3x3 = Basic(3, 32, kernel_size=3, stride=2)
      self.Conv2d_2a_3x3 = Basic(32, 32, kernel_size=3)
      self.Conv2d_2b_3x3 = Basic(32, 64, kernel_size=3, padding=1)
      self.Conv2d_3b_1x1 = Basic(64, 80, kernel_size=1)
      self.Conv2d_4a_3x3 = Basic(80, 192, kernel_size=3)
      self.Mixed_5b, self.Mixed_5c = A(192, 32, fid), A(256, 64, fid)
      self.Mixed_5d = A(288, 64, fid)
      self.Mixed_6a = B(288)
      self.Mixed_6b, self.Mixed_6c = C(768, 128, fid), C(768, 160, fid)
      self.Mixed_6d, self.Mixed_6e = C(768, 160, fid), C(768, 192, fid)
      self.Mixed_7a = D(768)
      self.Mixed_7b = E(1280, 'avg_exclude_pad' if fid else 'avg')
      self.Mixed_7c = E(2048, 'max' if fid else 'avg')
      self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
      x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
      x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
      x = F.max_pool2d(x, 3, 2)
      for name in ('5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e', '7a', '7b', '7c'):
        x = getattr(self, f'Mixed_{name}')(x)
      return x.mean((2, 3))

  def features(kind):
    if kind == 'vgg':
      layers, cin = [], 3
      for block in ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3):
        for cout in block:
          layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
          cin = cout
        layers.append(nn.MaxPool2d(2, 2))
      return nn.Sequential(*layers)
    return nn.Sequential(nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
                         nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                         nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))

  def randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
      for name, t in module.state_dict().items():
        if t.dtype.is_floating_point:
          if name.endswith(('running_var', 'bn.weight')):
            t.copy_(0.8 + 0.4 * torch.rand(t.shape, generator=gen))
          elif name.endswith(('running_mean', 'bias')):
            t.copy_(0.05 * torch.randn(t.shape, generator=gen))
          else:
            t.copy_(torch.randn(t.shape, generator=gen) * (2. / max(1, t[0].numel())) ** 0.5)
    return module.eval()

  return torch, F, Inception, features, randomise


def _converter():
  spec = importlib.util.spec_from_file_location('convert_learned',
                                                ROOT / 'weights' / 'convert_learned.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
@pytest.mark.parametrize('name', ['fid_inception', 'art_inception'])
def test_converter_inception_round_trip_matches_torch(tmp_path, name, capsys):
  torch, F, Inception, _, randomise = _torch_models()
  convert_learned = _converter()
  fid = name == 'fid_inception'
  net = randomise(Inception(fid), 3)
  pth = tmp_path / 'source.pth'
  torch.save({'state_dict': {f'module.{k}': v for k, v in net.state_dict().items()}}, pth)
  out = tmp_path / f'{name}.npz'
  if fid:  # Not the official file: the converter stops with one error line unless told.
    assert convert_learned.main([name, '--pth', str(pth), '--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and FID_SHA in err
  assert convert_learned.main([name, '--pth', str(pth), '--out', str(out),
                               '--allow-unofficial']) == 0
  with pytest.raises(WeightsError, match='not from the official') if fid else \
      pytest.raises(WeightsError, match='none is the sha256'):
    learned.load_learned(name, out, None if fid else '0' * 64)
  w = learned.load_learned(name, out, sha256=_sha(pth))
  # 107 px: the smallest input whose Mixed_7 maps are 2x2, where Mixed_7c's max pool differs
  # from an average; the A and C blocks' padding rules show from 75 px on.
  images = _images(2, 110, 108, 5) if not fid else _images(2, 81, 77, 5)
  x = torch.from_numpy(images / 255.).permute(0, 3, 1, 2).float()
  if fid:
    x = 2 * F.interpolate(x, size=(107, 107), mode='bilinear', align_corners=False) - 1
  with torch.no_grad():
    want = net(x).numpy()
  got = learned.inception_features(w, images, size=107)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize('backbone', lpips_lib.BACKBONES)
def test_converter_lpips_round_trip_matches_torch(tmp_path, backbone):
  torch, F, _, features, randomise = _torch_models()
  convert_learned = _converter()
  net = randomise(features(backbone), 4)
  gen = torch.Generator().manual_seed(5)
  lins = {f'lin{i}.model.1.weight': torch.rand((1, c, 1, 1), generator=gen)
          for i, c in enumerate(lpips_lib.CHANNELS[backbone])}
  torch.save({f'features.{k}': v for k, v in net.state_dict().items()}, tmp_path / 'bb.pth')
  torch.save(lins, tmp_path / 'lin.pth')
  name, out = f'lpips_{backbone}', tmp_path / 'lpips.npz'
  assert convert_learned.main([name, '--lin', str(tmp_path / 'lin.pth'), '--backbone',
                               str(tmp_path / 'bb.pth'), '--out', str(out),
                               '--allow-unofficial']) == 0
  w = learned.load_learned(name, out, sha256=_sha(out))
  a, b = _images(2, 48, 40, 6), _images(2, 48, 40, 7)
  taps = {'vgg': (3, 8, 15, 22, 29), 'alex': (1, 4, 7, 9, 11)}[backbone]
  shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
  scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)

  def feats(img):
    h = ((torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1) - shift) / scale
    out = []
    for i, layer in enumerate(net[:taps[-1] + 1]):  # the final pool is not read
      h = layer(h)
      if i in taps:
        out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
    return out

  with torch.no_grad():
    want = sum((lins[f'lin{i}.model.1.weight'] * (fa - fb) ** 2).sum(1).mean((1, 2))
               for i, (fa, fb) in enumerate(zip(feats(a), feats(b)))).numpy()
  np.testing.assert_allclose(learned.lpips(w, a, b), want, rtol=1e-4)
