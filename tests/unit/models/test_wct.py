"""WCT (Li et al. 2017): whitening and colouring against NumPy, per-region WCT, and method=wct in
the arbitrary job (the real VGG19, a random decoder: wiring, shapes and errors); the pixel level
and the decoder-level matching method=adain shares with it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import jobs
from nst_jax.config import arbitrary as arbitrary_schema
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.jobs import arbitrary as arbitrary_lib
from nst_jax.models import adain, wct
from conftest import run_cli, synthetic_image

C = 8  # channels: far fewer than positions, so every covariance has full rank


def _features(seed, h, w, scale):
  """(1, h, w, C) correlated features with a non-zero mean (a random mixing of Gaussians)."""
  rng = np.random.default_rng(seed)
  mix = rng.normal(0., 1., (C, C)) * scale
  return (rng.normal(0., 1., (h * w, C)) @ mix + rng.uniform(-3, 3, C)).reshape(1, h, w, C)


def _cov(x):
  x = x.reshape(-1, x.shape[-1]).astype(np.float64)
  xc = x - x.mean(0)
  return xc.T @ xc / len(x)


def _np_whiten(x, eps):
  """NumPy float64 reference of eq. 2 with the module's regulariser (eps times the features'
  uncentred mean square)."""
  x = x.reshape(-1, x.shape[-1]).astype(np.float64)
  xc = x - x.mean(0)
  d, e = np.linalg.eigh(xc.T @ xc / len(x))
  d = np.maximum(d, 0) + eps * np.mean(x ** 2)
  return xc @ e @ np.diag(d ** -0.5) @ e.T


def _np_colour(white, style):
  s = style.reshape(-1, style.shape[-1]).astype(np.float64)
  d, e = np.linalg.eigh(_cov(s))
  return white @ e @ np.diag(np.sqrt(np.maximum(d, 0))) @ e.T + s.mean(0)


def test_whitening_and_colouring_match_numpy():
  content, style = _features(0, 12, 16, 5.), _features(1, 10, 14, 20.)
  white = np.asarray(wct.whiten(jnp.asarray(content, jnp.float32))).reshape(-1, C)
  np.testing.assert_allclose(white, _np_whiten(content, wct.EPS), rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(white.mean(0), 0., atol=1e-4)
  np.testing.assert_allclose(_cov(white), np.eye(C), atol=1e-3)  # identity covariance
  out = np.asarray(wct.wct(jnp.asarray(content, jnp.float32), jnp.asarray(style, jnp.float32)))
  want = _np_colour(_np_whiten(content, wct.EPS), style)
  np.testing.assert_allclose(out.reshape(-1, C), want, rtol=1e-3, atol=2e-3 * np.abs(want).max())
  # Coloured: the style's mean and covariance (at another size than the content's).
  s = style.reshape(-1, C)
  np.testing.assert_allclose(out.reshape(-1, C).mean(0), s.mean(0), atol=1e-3 * np.abs(s).max())
  np.testing.assert_allclose(_cov(out), _cov(s), rtol=1e-3, atol=1e-3 * np.abs(_cov(s)).max())
  # alpha blends with the content's own features (eq. 4).
  c32, s32 = jnp.asarray(content, jnp.float32), jnp.asarray(style, jnp.float32)
  np.testing.assert_allclose(np.asarray(wct.wct(c32, s32, 0.)), content, rtol=1e-5, atol=1e-4)
  half = np.asarray(wct.wct(c32, s32, 0.5))
  np.testing.assert_allclose(half, 0.5 * out + 0.5 * content, rtol=1e-4, atol=1e-3)
  # The regulariser is relative: scaling the features scales nothing but the result.
  big = np.asarray(wct.whiten(jnp.asarray(content * 1e3, jnp.float32)))
  np.testing.assert_allclose(big.reshape(-1, C), white, rtol=1e-3, atol=1e-3)
  # A flat image has no covariance: it whitens to 0 (its colouring: the style's mean).
  flat = jnp.full((1, 8, 8, C), 300.)
  assert np.abs(np.asarray(wct.whiten(flat))).max() < 1e-3


def test_regions_whiten_each_region_with_its_own_statistics():
  content, s0, s1 = _features(2, 12, 16, 3.), _features(3, 10, 10, 9.), _features(4, 9, 11, 1.)
  stats = [wct.moments(jnp.asarray(s, jnp.float32)) for s in (s0, s1)]
  means = jnp.stack([m for m, _ in stats])
  colourings = jnp.stack([wct.colouring_matrix(c) for _, c in stats])
  c32 = jnp.asarray(content, jnp.float32)
  regions = jax.jit(wct.wct_regions)  # one program per mask count, not op by op
  # One mask covering everything: the global transform.
  ones = jnp.ones((1, 12, 16))
  whole = np.asarray(wct.wct(c32, jnp.asarray(s0, jnp.float32)))
  np.testing.assert_allclose(np.asarray(regions(c32, ones, means[:1], colourings[:1])),
                             whole, rtol=1e-3, atol=1e-3 * np.abs(whole).max())
  # Left half painting 0, right half painting 1, each whitened over its own half only.
  left = np.zeros((12, 16), np.float32)
  left[:, :8] = 1.
  masks = jnp.asarray(np.stack([left, 1. - left]))
  got = np.asarray(regions(c32, masks, means, colourings))
  for half, style in ((slice(0, 8), s0), (slice(8, 16), s1)):
    want = _np_colour(_np_whiten(content[:, :, half], wct.EPS), style)
    np.testing.assert_allclose(got[:, :, half].reshape(-1, C), want, rtol=1e-3,
                               atol=2e-3 * np.abs(want).max())
  # No mask: the content's own features.
  part = jnp.asarray(np.stack([left]))
  np.testing.assert_allclose(np.asarray(regions(c32, part, means[:1], colourings[:1]))[:, :, 8:],
                             content[:, :, 8:], rtol=1e-5, atol=1e-4)


@pytest.fixture(scope='module')
def decoder_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('decoder')
  adain.save_decoder(d, adain.init_decoder(0, 0.125), 0.125)
  return d


def test_method_wct_end_to_end(tmp_path, decoder_dir, params, monkeypatch):
  """run.py's arbitrary job with method=wct: a photo, two paintings mixed, strength 0.7."""
  from nst_jax.models import weights
  monkeypatch.setattr(weights, 'load_vgg19', lambda *a, **k: params)
  files = {}  # Paintings of one shape: one compiled statistics program.
  for name, (h, w, seed) in {'c': (36, 44, 1), 's0': (40, 40, 2), 's1': (40, 40, 3)}.items():
    files[name] = tmp_path / f'{name}.png'
    image_io.save_image(files[name], synthetic_image(h, w, seed))
  c = arbitrary_schema.arbitrary_config()
  c.method, c.content, c.model, c.quiet = 'wct', str(files['c']), str(decoder_dir), True
  c.style, c.output = f'{files["s0"]},{files["s1"]}', str(tmp_path / 'out.png')
  c.style_blend_weights, c.strength = '0.25,0.75', 0.7
  summary = jobs.run(c)
  out = image_io.load_image(tmp_path / 'out.png')
  assert out.shape == (36, 44, 3) and summary['method'] == 'wct'
  assert json.loads((tmp_path / 'out.json').read_text())['styles'][str(files['s1'])] == 0.75
  # The same through the Python API; strength 0 decodes the photo's own features instead.
  photo = image_io.load_image(files['c'])
  paintings = [image_io.load_image(files[k]) for k in ('s0', 's1')]
  kw = dict(method='wct', model=str(decoder_dir), params=params)
  np.testing.assert_array_equal(arbitrary_lib.stylize_arbitrary(
      photo, paintings, style_blend_weights=[0.25, 0.75], strength=0.7, **kw), out)
  own = arbitrary_lib.stylize_arbitrary(photo, paintings, strength=0., **kw)
  assert np.abs(own.astype(int) - out).mean() > 0.5
  # Masks reach the per-region transform: the photo itself where no mask covers.
  mask = np.zeros((36, 44), np.float32)
  mask[:, :16] = 1.
  masked = arbitrary_lib.stylize_arbitrary(photo, paintings[0], masks=[mask], **kw)
  np.testing.assert_array_equal(masked[:, 16:], photo[:, 16:])
  assert np.abs(masked[:, :16].astype(int) - photo[:, :16]).mean() > 2


def test_bad_inputs(tmp_path, decoder_dir, params):
  c = arbitrary_schema.arbitrary_config()
  c.method, c.content, c.style = 'wtc', 'photo.png', 'painting.png'
  with pytest.raises(ConfigError, match="unknown method 'wtc'; choose one of ghiasi, adain, wct"):
    arbitrary_lib.validate(c)
  photo = synthetic_image(32, 32, 5)
  with pytest.raises(ConfigError, match='choose one of ghiasi, adain, wct'):
    arbitrary_lib.stylize_arbitrary(photo, photo, method='WCT')
  decoder = adain.load_decoder(decoder_dir)[0]
  with pytest.raises(ConfigError, match='alpha'):
    wct.stylize(decoder, photo, photo, alpha=1.5, vgg_params=params)
  with pytest.raises(ConfigError, match='one per style'):
    wct.stylize(decoder, photo, [photo, photo], masks=np.ones((1, 32, 32)),
                vgg_params=params)
  with pytest.raises(ConfigError, match='style_weights'):
    wct.stylize(decoder, photo, [photo, photo], style_weights=[1.], vgg_params=params)
  # run.py: one error line, exit status 1.
  res = run_cli('--config=configs/arbitrary.py', '--content=x.png', '--style=y.png',
                '--config.method=wtc', f'--output={tmp_path / "o.png"}', tmp_path=tmp_path)
  assert res.returncode == 1
  assert res.stderr.strip().splitlines()[-1].startswith('error: unknown method'), res.stderr


def test_pixel_level_gives_the_paintings_colour_statistics():
  """The pixel level is WCT of the RGB pixels: at alpha 1 the image takes the painting's colour
  mean and covariance (against the NumPy transcription); alpha blends linearly; two paintings
  mix their statistics by the weights."""
  rng = np.random.default_rng(9)
  image = rng.uniform(0, 255, (20, 24, 3)).astype(np.float32)
  style = (rng.normal(0, 1, (30, 30, 3)) @ np.array([[30., 5, 0], [0, 20, 3], [2, 0, 10]])
           + [120., 80, 60]).astype(np.float32)
  one = wct.pixel_statistics([style])
  out = np.asarray(wct._pixel_level(jnp.asarray(image), *one, jnp.ones(1), 1., wct.EPS))
  want = _np_colour(_np_whiten(image, wct.EPS), style).reshape(image.shape)
  np.testing.assert_allclose(out, want, rtol=1e-3, atol=0.05)
  np.testing.assert_allclose(out.reshape(-1, 3).mean(0), style.reshape(-1, 3).mean(0), atol=1e-2)
  np.testing.assert_allclose(_cov(out), _cov(style), rtol=1e-3, atol=1e-2)
  half = np.asarray(wct._pixel_level(jnp.asarray(image), *one, jnp.ones(1), 0.5, wct.EPS))
  np.testing.assert_allclose(half, 0.5 * out + 0.5 * image, rtol=1e-5, atol=1e-3)
  mixed = np.asarray(wct._pixel_level(jnp.asarray(image), *wct.pixel_statistics([style, image]),
                                      jnp.asarray([0.25, 0.75]), 1., wct.EPS))
  want_mean = 0.25 * style.reshape(-1, 3).mean(0) + 0.75 * image.reshape(-1, 3).mean(0)
  np.testing.assert_allclose(mixed.reshape(-1, 3).mean(0), want_mean, atol=1e-2)


def _tinted_pair(tmp_path, params, monkeypatch):
  """A photo and a reddish painting, saved as c.png / s.png; the jobs' VGG19 = ``params``."""
  from nst_jax.models import weights
  monkeypatch.setattr(weights, 'load_vgg19', lambda *a, **k: params)
  photo, painting = synthetic_image(36, 44, 1), synthetic_image(40, 40, 2)
  painting = np.clip(painting.astype(int) // 2 + [120, 0, 30], 0, 255).astype(np.uint8)
  image_io.save_image(tmp_path / 'c.png', photo)
  image_io.save_image(tmp_path / 's.png', painting)
  return photo, painting


def test_pixel_level_in_the_job_and_the_api(tmp_path, decoder_dir, params, monkeypatch):
  """method=wct's wct_pixel_level: 0 is the relu4_1 transform alone, the default moves the
  output's colours toward the painting's, the job and the API agree; out of range: ConfigError."""
  photo, painting = _tinted_pair(tmp_path, params, monkeypatch)
  kw = dict(method='wct', model=str(decoder_dir), params=params)
  levels = {lv: arbitrary_lib.stylize_arbitrary(photo, painting, wct_pixel_level=lv, **kw)
            for lv in (0., 0.5, 1.)}
  decoder, width = adain.load_decoder(decoder_dir)
  np.testing.assert_array_equal(levels[0.], wct.stylize(decoder, photo, [painting],
                                                        vgg_params=params, width=width))
  gap = [np.abs(levels[lv].reshape(-1, 3).mean(0) - painting.reshape(-1, 3).mean(0)).sum()
         for lv in (0., 0.5, 1.)]
  assert gap[0] > gap[1] > gap[2] and gap[2] < 3., gap
  np.testing.assert_array_equal(arbitrary_lib.stylize_arbitrary(photo, painting, **kw),
                                levels[arbitrary_lib.DEFAULT_WCT_PIXEL_LEVEL])
  c = arbitrary_schema.arbitrary_config()
  c.method, c.content, c.style, c.model, c.quiet = ('wct', str(tmp_path / 'c.png'),
                                                    str(tmp_path / 's.png'), str(decoder_dir), True)
  c.output = str(tmp_path / 'out.png')
  jobs.run(c)
  np.testing.assert_array_equal(image_io.load_image(tmp_path / 'out.png'), levels[0.5])
  with pytest.raises(ConfigError, match='wct_pixel_level must be in'):
    arbitrary_lib.stylize_arbitrary(photo, painting, wct_pixel_level=1.5, **kw)
  with pytest.raises(ConfigError, match='wct_pixel_level must be in'):
    wct.stylize(decoder, photo, [painting], vgg_params=params, pixel_level=-0.1)


def test_decoder_matching_gives_each_hidden_activation_the_targets():
  """AdaIN inside the decoder (method=adain's decoder-level matching): each matched activation
  takes the (weight-mixed) target channel statistics at alpha 1, alpha blends linearly, and one
  mask covering everything is the unmasked map."""
  rng = np.random.default_rng(11)
  h = jnp.asarray(rng.gamma(2., 1., (1, 8, 12, 6)), jnp.float32)
  mus = jnp.asarray(rng.uniform(0, 3, (2, 6)), jnp.float32)
  sds = jnp.asarray(rng.uniform(0.5, 2, (2, 6)), jnp.float32)
  dstats = tuple((mus * (j + 1), sds) for j in range(len(adain.MATCHED_HIDDEN)))
  w = jnp.asarray([0.25, 0.75])
  full = adain._matcher(dstats, 1., w)
  out = full(3, h)
  mu, sd = adain.mean_std(out)
  np.testing.assert_allclose(mu[0, 0, 0], 3 * (w @ mus), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(sd[0, 0, 0], w @ sds, rtol=1e-3)
  half = adain._matcher(dstats, 0.5, w)(3, h)
  np.testing.assert_allclose(half, 0.5 * out + 0.5 * h, rtol=1e-5, atol=1e-5)
  assert adain._matcher(None, 1., w) is None
  masks = jnp.ones((1, 64, 96))  # at the image's size: pooled onto the 8x12 grid
  one = tuple((m[:1], s[:1]) for m, s in dstats)
  np.testing.assert_allclose(adain._matcher(one, 1., masks=masks)(3, h),
                             adain._matcher(one, 1., jnp.ones(1))(3, h), rtol=1e-4, atol=1e-4)


def test_adain_decoder_matching_and_pixel_level_in_the_job_and_the_api(tmp_path, decoder_dir,
                                                                        params, monkeypatch):
  """method=adain's defaults (decoder-level matching, pixel level 1) = adain.stylize with the
  matching, then the pixel level; both off = Huang & Belongie's AdaIN; the job and the API
  agree; each moves the colours toward the painting's; bad values: ConfigError."""
  photo, painting = _tinted_pair(tmp_path, params, monkeypatch)
  kw = dict(method='adain', model=str(decoder_dir), params=params)
  decoder, width = adain.load_decoder(decoder_dir)
  plain = arbitrary_lib.stylize_arbitrary(photo, painting, adain_pixel_level=0.,
                                          adain_decoder_matching=False, **kw)
  np.testing.assert_array_equal(plain, adain.stylize(decoder, photo, [painting],
                                                     vgg_params=params, width=width))
  matched = adain.stylize(decoder, photo, [painting], vgg_params=params, width=width,
                          decoder_matching=True)
  assert np.abs(matched.astype(int) - plain).mean() > 0.5
  got = arbitrary_lib.stylize_arbitrary(photo, painting, **kw)  # the defaults
  assert arbitrary_lib.DEFAULT_ADAIN_DECODER_MATCHING and arbitrary_lib.DEFAULT_ADAIN_PIXEL_LEVEL
  np.testing.assert_array_equal(got, wct.apply_pixel_level(
      matched, [painting], np.ones(1), arbitrary_lib.DEFAULT_ADAIN_PIXEL_LEVEL))
  gap = [np.abs(x.reshape(-1, 3).mean(0) - painting.reshape(-1, 3).mean(0)).sum()
         for x in (plain, got)]
  assert gap[1] < gap[0] and gap[1] < 3., gap
  c = arbitrary_schema.arbitrary_config()
  c.method, c.content, c.style, c.model, c.quiet = ('adain', str(tmp_path / 'c.png'),
                                                    str(tmp_path / 's.png'), str(decoder_dir), True)
  c.output = str(tmp_path / 'out.png')
  jobs.run(c)
  np.testing.assert_array_equal(image_io.load_image(tmp_path / 'out.png'), got)
  with pytest.raises(ConfigError, match='adain_pixel_level must be in'):
    arbitrary_lib.stylize_arbitrary(photo, painting, adain_pixel_level=2., **kw)
