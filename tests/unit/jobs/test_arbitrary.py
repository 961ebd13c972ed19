"""Ghiasi et al. 2017 port and the `arbitrary` job: reference outputs, sizes, mixing, masks, errors.

The reference sizes (style 256x256, content 384x384) compile once per session; everything else
uses one small content shape so the transform compiles once more.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from nst_jax.config import arbitrary as arbitrary_schema
from nst_jax.jobs import arbitrary as arbitrary_lib
from nst_jax.models import convolution
from nst_jax.models import ghiasi
from nst_jax.io import images as image_io
from nst_jax import jobs
from nst_jax.errors import NSTError
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / 'shared'
IMAGES = SHARED / 'images'
MAGENTA = SHARED / 'weights' / 'magenta'
REFERENCE = MAGENTA / 'reference_outputs.npz'
SMALL = (37, 51)  # one small content shape (odd: not a multiple of 4) for the other tests


@pytest.fixture(scope='session')
def ghiasi_npz(tmp_path_factory):
  pytest.importorskip('onnx')  # conversion-time dependency only
  return ghiasi.resolve(MAGENTA, cache_dir=tmp_path_factory.mktemp('ghiasi'))


@pytest.fixture(scope='session')
def gparams(ghiasi_npz):
  return ghiasi.load(ghiasi_npz)


@pytest.fixture(scope='session')
def ref():
  with np.load(REFERENCE) as z:
    return {k: z[k] for k in z.files if k.startswith('arbitrary')}


@pytest.fixture(scope='session')
def photo():
  return image_io.load_image(IMAGES / 'tubingen.jpg', shape=SMALL)


@pytest.fixture(scope='session')
def paintings():
  return [image_io.load_image(IMAGES / n, size=64) for n in ('starry_night.jpg',
                                                               'the_scream.jpg')]


def test_port_matches_reference(gparams, ref):
  emb = ghiasi.predict(gparams, jnp.asarray(ref['arbitrary_style_256']))
  want = ref['arbitrary_style_embedding_float'].reshape(1, 100)
  assert np.abs(np.asarray(emb) - want).max() < 2e-3
  out = ghiasi.transform(gparams, jnp.asarray(ref['arbitrary_content_384']), jnp.asarray(want))
  err = np.abs(np.asarray(out) - ref['arbitrary_stylized_float'])
  assert err.max() < 2e-3, err.max()
  # The shipped (activation-quantized) graph differs by its quantization noise, not by more.
  assert np.abs(np.asarray(out) - ref['arbitrary_stylized_shipped']).mean() < 0.06


def test_parameter_layout_matches_modules():
  key = jax.random.PRNGKey(0)
  pred = jax.eval_shape(ghiasi.StylePredictor().init, key, jnp.zeros((1, 32, 32, 3)))
  tran = jax.eval_shape(ghiasi.Transformer().init, key, jnp.zeros((1, 16, 16, 3)),
                        jnp.zeros((1, 100)))
  flat = {}
  for prefix, tree in (('predict', pred['params']), ('transform', tran['params'])):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      flat['/'.join([prefix] + [p.key for p in path])] = tuple(leaf.shape)
  assert flat == ghiasi.expected_shapes()


def test_depthwise_equals_grouped_conv():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 9, 12, 6)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 1, 6)), jnp.float32)
  b = jnp.arange(6.)
  for stride in (1, 2):
    f = jax.jit(lambda x, k, b, s=stride: (ghiasi.depthwise3x3_same(x, k, b, s),
                                           ghiasi.conv_same(x, k, b, s, groups=6)))
    shifted, grouped = f(x, k, b)
    np.testing.assert_allclose(shifted, grouped, atol=1e-5)


def _float_graph_any_size(path):
  """The ONNX graph with its activation Quantize/Dequantize pairs removed and free H, W."""
  import onnx
  model = onnx.load(str(path))
  g = model.graph
  inits = {i.name for i in g.initializer}
  alias, keep = {}, []
  for node in g.node:
    if node.op_type in ('QuantizeLinear', 'DequantizeLinear') and node.input[0] not in inits:
      alias[node.output[0]] = node.input[0]
    else:
      keep.append(node)
  def resolve(name):
    while name in alias:
      name = alias[name]
    return name
  for node in keep:
    for i, name in enumerate(node.input):
      node.input[i] = resolve(name)
  for out in g.output:
    if out.name in alias:  # the output keeps its name: rename the producer's output
      src = resolve(out.name)
      for node in keep:
        for i, name in enumerate(node.output):
          if name == src:
            node.output[i] = out.name
        for i, name in enumerate(node.input):
          if name == src:
            node.input[i] = out.name
  del g.node[:]
  g.node.extend(keep)
  dims = g.input[0].type.tensor_type.shape.dim
  dims[1].dim_param, dims[2].dim_param = 'h', 'w'
  for o in g.output:
    for d in o.type.tensor_type.shape.dim[1:3]:
      d.dim_param = 'o'
  return model.SerializeToString()


def test_any_size_content_matches_onnxruntime(gparams, photo):
  """Odd sizes (37x51): our output equals onnxruntime's float graph, cropped to the input."""
  ort = pytest.importorskip('onnxruntime')
  x = np.asarray(photo, np.float32)[None] / 255.
  emb = np.random.default_rng(2).normal(size=(1, 1, 1, 100)).astype(np.float32)
  sess = ort.InferenceSession(_float_graph_any_size(MAGENTA / ghiasi.TRANSFORM_ONNX),
                              providers=['CPUExecutionProvider'])
  names = [i.name for i in sess.get_inputs()]
  want = sess.run(None, dict(zip(names, (x, emb))))[0]
  assert want.shape[1:3] == (40, 52)  # the graph upsamples ceil(ceil(H/2)/2) by 4
  got = ghiasi.transform(gparams, jnp.asarray(x), jnp.asarray(emb.reshape(1, 100)))
  assert got.shape == x.shape
  assert np.abs(np.asarray(got) - want[:, :37, :51]).max() < 2e-3


def test_strength_zero_is_the_photos_own_embedding(gparams, photo, paintings):
  own = arbitrary_lib.embeddings(gparams, [photo])
  x = jnp.asarray(photo, jnp.float32)[None] / 255.
  want = np.asarray(ghiasi.transform(gparams, x, own))[0] * 255.
  got = arbitrary_lib.stylize_arbitrary(photo, paintings[0], strength=0., params=gparams)
  assert np.abs(got.astype(np.float32) - want).max() <= 1.
  full = arbitrary_lib.stylize_arbitrary(photo, paintings[0], strength=1., params=gparams)
  half = arbitrary_lib.stylize_arbitrary(photo, paintings[0], strength=.5, params=gparams)
  d = lambda a, b: np.abs(a.astype(np.float32) - b).mean()
  assert d(half, got) > 1. and d(half, full) > 1.  # in between, not either end
  # The interpolation itself: strength 0 gives back the photo's embedding exactly.
  np.testing.assert_array_equal(ghiasi.interpolate(own, own * 0 + 5., 0.), own)


def test_mixing_and_masks(gparams, photo, paintings):
  s0, s1 = paintings
  one = arbitrary_lib.stylize_arbitrary(photo, s0, params=gparams)
  assert one.shape == photo.shape and one.dtype == np.uint8
  np.testing.assert_array_equal(
      arbitrary_lib.stylize_arbitrary(photo, [s0, s1], style_blend_weights=[1., 0.], params=gparams),
      one)
  embs = arbitrary_lib.embeddings(gparams, [s0, s1])
  x = jnp.asarray(photo, jnp.float32)[None] / 255.
  want = np.asarray(ghiasi.transform(gparams, x, (0.25 * embs[0] + 0.75 * embs[1])[None]))[0]
  mixed = arbitrary_lib.stylize_arbitrary(photo, [s0, s1], style_blend_weights=[1, 3],
                                      params=gparams)
  assert np.abs(mixed / 255. - want).max() <= 1. / 255 + 1e-6
  # One mask: the style on the left half, the photo on the right.
  mask = np.zeros(SMALL, np.float32)
  mask[:, :SMALL[1] // 2] = 1.
  masked = arbitrary_lib.stylize_arbitrary(photo, s0, masks=[mask], params=gparams)
  np.testing.assert_array_equal(masked[:, :SMALL[1] // 2], one[:, :SMALL[1] // 2])
  np.testing.assert_array_equal(masked[:, SMALL[1] // 2:], photo[:, SMALL[1] // 2:])
  # Two regions, two styles; a half-size mask is resized.
  two = arbitrary_lib.stylize_arbitrary(photo, [s0, s1], masks=[mask, 1. - mask], params=gparams)
  only1 = arbitrary_lib.stylize_arbitrary(photo, s1, params=gparams)
  np.testing.assert_array_equal(two[:, SMALL[1] // 2:], only1[:, SMALL[1] // 2:])
  np.testing.assert_array_equal(two[:, :SMALL[1] // 2], one[:, :SMALL[1] // 2])
  # Colour preservation keeps the photo's chroma.
  from nst_jax.losses import controls
  oc = arbitrary_lib.stylize_arbitrary(photo, s0, original_colors=True, params=gparams)
  np.testing.assert_allclose(oc, controls.original_colors(one, photo), atol=2)


# --- AdaIN per region (the paper's spatial control).


def test_adain_regions_match_hand_computation():
  from nst_jax.models import adain
  rng = np.random.default_rng(3)
  f = rng.normal(2., 3., (2, 3, 4, 5))
  masks = rng.uniform(0., 1., (2, 3, 4))
  masks[0, 0] = 0.          # a row no mask covers
  masks[:, 2] = 0.9         # a row where they overlap (sum 1.8)
  mu_s, sd_s = rng.normal(0., 4., (2, 5)), rng.uniform(0.5, 3., (2, 5))
  alpha, eps = 0.6, 1e-5
  want = np.zeros_like(f)
  for n in range(2):
    for y in range(3):
      for x in range(4):
        total = masks[:, y, x].sum()
        want[n, y, x] = (1. - min(total, 1.)) * f[n, y, x]
        for k in range(2):
          for c in range(5):
            m, v = masks[k], f[n, :, :, c]
            mu = (m * v).sum() / m.sum()
            sd = np.sqrt((m * (v - mu) ** 2).sum() / m.sum() + eps)
            a = sd_s[k, c] * (f[n, y, x, c] - mu) / sd + mu_s[k, c]
            want[n, y, x, c] += (masks[k, y, x] / max(total, 1.)
                                 * (alpha * a + (1. - alpha) * f[n, y, x, c]))
  got = adain.adain_regions(jnp.asarray(f, jnp.float32), jnp.asarray(masks, jnp.float32),
                            jnp.asarray(mu_s, jnp.float32), jnp.asarray(sd_s, jnp.float32), alpha)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
  big = rng.uniform(0., 1., (2, 16, 24))  # the relu4_1 grid: 8x8 area means
  grid = np.asarray(adain.masks_to_grid(jnp.asarray(big, jnp.float32)))
  assert grid.shape == (2, 2, 3)
  np.testing.assert_allclose(grid[1, 1, 2], big[1, 8:16, 16:24].mean(), rtol=1e-5)


def test_adain_masks_end_to_end(params, photo, paintings, tmp_path):
  """Per-region AdaIN through stylize_arbitrary (random decoder: shapes and wiring). Two
  same-shape paintings and two masks in every masked run: three compiled programs in all."""
  from nst_jax.models import adain
  model = tmp_path / 'decoder'
  adain.save_decoder(model, adain.init_decoder(0, 0.25), 0.25)
  s0, s1 = (image_io.resize_image(p, shape=(32, 32)) for p in paintings)
  def run(styles, masks=None):
    return arbitrary_lib.stylize_arbitrary(photo, styles, method='adain', model=str(model),
                                       masks=masks, params=params)
  one = run(s0)
  assert one.shape == photo.shape and one.dtype == np.uint8
  # Masks covering everything, same painting: the region statistics are the whole image's.
  ones = np.ones(SMALL, np.float32)
  assert np.abs(run([s0, s0], [ones, ones]).astype(int) - one).max() <= 1
  # The photo itself where no mask covers.
  mask = np.zeros(SMALL, np.float32)
  mask[:, :24] = 1.  # 3 cells of the relu4_1 grid (the photo is padded to 40x56)
  left = run([s0, s1], [mask, mask])
  np.testing.assert_array_equal(left[:, 24:], photo[:, 24:])
  assert np.abs(left[:, :24].astype(int) - photo[:, :24]).mean() > 5
  # Two regions, two paintings: the order of the (painting, mask) pairs does not matter.
  two = run([s0, s1], [mask, 1. - mask])
  assert np.abs(two.astype(int) - run([s1, s0], [1. - mask, mask])).max() <= 1
  assert np.abs(two[:, 24:].astype(int) - photo[:, 24:]).mean() > 5
  with pytest.raises(NSTError, match='one per style'):
    adain.stylize(adain.load_decoder(model)[0], photo, [s0, s1], masks=np.ones((1, *SMALL)),
                  vgg_params=params)


def fileio_json(path):
  import json
  return json.loads(Path(path).read_text())


def _config(**kw):
  c = arbitrary_schema.arbitrary_config()
  c.quiet = True
  for k, v in kw.items():
    c[k] = v
  return c


def test_job_photo_and_folder(tmp_path, ghiasi_npz, photo):
  style = str(IMAGES / 'starry_night.jpg')
  folder = tmp_path / 'photos'
  folder.mkdir()
  for i in range(3):
    image_io.save_image(folder / f'p{i}.png', photo)
  s = jobs.run(_config(content=str(folder), style=style, output=str(tmp_path / 'out'),
                         weights=str(ghiasi_npz), batch_size=1))  # batch 1: no new compile
  assert s['count'] == 3
  names = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert names == ['arbitrary.json', 'p0.png', 'p1.png', 'p2.png']
  out = tmp_path / 'one.png'
  jobs.run(_config(content=str(folder / 'p0.png'), style=style, output=str(out),
                     weights=str(ghiasi_npz)))
  np.testing.assert_array_equal(image_io.load_image(out),
                                image_io.load_image(tmp_path / 'out' / 'p0.png'))
  summary = fileio_json(out.with_suffix('.json'))
  assert summary['method'] == 'ghiasi' and summary['count'] == 1


def test_shipped_adain_decoder_moves_the_photo_toward_the_painting(params):
  """weights/adain_decoder (trained here, float16) is the default of method=adain (and wct); its output's
  relu4_1 channel statistics are closer to the painting's than the photo's are."""
  from nst_jax.models import adain
  decoder, width = adain.load_decoder(arbitrary_lib.DEFAULT_ADAIN_MODEL)
  assert width == 0.5
  # 96 px (72x96): near its 128 px training crops. Random decoders give 1.18-1.29 here.
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=96)
  painting = image_io.load_image(IMAGES / 'starry_night.jpg', size=96)
  out = arbitrary_lib.stylize_arbitrary(photo, painting, method='adain', params=params)
  assert out.shape == photo.shape and out.dtype == np.uint8

  def stats(image):
    f = adain.encode(params, jnp.asarray(image, jnp.float32)[None])[adain.ENCODER_LAYER]
    return np.concatenate([np.asarray(a).ravel() for a in adain.mean_std(f)])
  target = stats(painting)
  before, after = (np.linalg.norm(stats(x) - target) for x in (photo, out))
  assert after < 0.9 * before, (before, after)


def test_bad_inputs(tmp_path, ghiasi_npz, photo, monkeypatch):
  monkeypatch.setattr(arbitrary_lib, 'DEFAULT_ADAIN_MODEL', tmp_path / 'no_shipped_decoder')
  content = tmp_path / 'c.png'
  image_io.save_image(content, photo)
  tiny = tmp_path / 'tiny.png'
  image_io.save_image(tiny, np.zeros((10, 40, 3), np.uint8))
  clear = tmp_path / 'clear.png'
  Image.new('RGBA', (32, 32), (255, 0, 0, 0)).save(clear)
  wrong_npz = tmp_path / 'wrong.npz'
  np.savez(wrong_npz, a=np.zeros(3))
  wrong_onnx = tmp_path / 'wrong_onnx'
  wrong_onnx.mkdir()
  for name in (ghiasi.PREDICT_ONNX, ghiasi.TRANSFORM_ONNX):  # the 26-style graph, misnamed
    (wrong_onnx / name).write_bytes((MAGENTA / 'multistyle26.onnx').read_bytes())
  garbage = tmp_path / 'garbage'
  garbage.mkdir()
  for name in (ghiasi.PREDICT_ONNX, ghiasi.TRANSFORM_ONNX):
    (garbage / name).write_bytes(b'\x08\x07not an onnx model')
  starry, scream = str(IMAGES / 'starry_night.jpg'), str(IMAGES / 'the_scream.jpg')
  out = tmp_path / 'out' / 'o.png'
  from nst_jax.models import adain  # AdaIN decoders: another width, another kind, corrupt arrays
  narrow = tmp_path / 'narrow'
  adain.save_decoder(narrow, adain.init_decoder(0, 0.25), 0.25)
  other_width = tmp_path / 'other_width'
  adain.save_decoder(other_width, adain.init_decoder(0, 0.25), 0.25)
  (other_width / 'model.json').write_text((narrow / 'model.json').read_text().replace(
      '"width": 0.25', '"width": 0.5'))
  johnson = tmp_path / 'johnson'
  johnson.mkdir()
  (johnson / 'model.json').write_text('{"format": "nst_jax.transformer"}')
  np.savez(johnson / 'model.npz', a=np.zeros(3))
  corrupt = tmp_path / 'corrupt'
  corrupt.mkdir()
  (corrupt / 'model.json').write_text((narrow / 'model.json').read_text())
  (corrupt / 'model.npz').write_bytes(b'PK\x03\x04 truncated')
  keys = tmp_path / 'keys'
  keys.mkdir()
  (keys / 'model.json').write_text((narrow / 'model.json').read_text())
  np.savez(keys / 'model.npz', a=np.zeros(3))
  cases = [
      (dict(style=str(tiny)), 'at least 16'),
      (dict(style=str(clear)), 'transparent'),
      (dict(weights=str(tmp_path / 'nowhere')), 'nowhere'),
      (dict(weights=str(wrong_npz)), 'not Magenta'),
      (dict(weights=str(wrong_onnx)), 'arbitrary'),
      (dict(weights=str(garbage)), 'ONNX'),
      (dict(strength=1.5), 'strength'),
      (dict(strength=-0.1), 'strength'),
      (dict(style=f'{starry},{scream}', style_blend_weights='1,2,3'), '3 weight'),
      (dict(style=f'{starry},{scream}', style_blend_weights='0,0'), 'positive'),
      (dict(style=f'{starry},{scream}', mask=str(content)), 'masks'),
      (dict(method='adain'), 'decoder'),
      (dict(method='adain', model=str(tmp_path / 'nowhere')), 'no AdaIN decoder'),
      (dict(method='adain', model=str(other_width)), 'another architecture'),
      (dict(method='adain', model=str(johnson)), 'not an AdaIN decoder'),
      (dict(method='adain', model=str(corrupt)), 'unreadable'),
      (dict(method='adain', model=str(keys)), 'not an AdaIN decoder'),
      (dict(method='adain', model=str(narrow), strength=1.5), 'strength'),
      (dict(method='adain', model=str(narrow), style=f'{starry},{scream}',
            style_blend_weights='1'), '1 weight'),
      (dict(method='adain', model=str(narrow), style=str(tiny)), 'at least 16'),
      (dict(method='magic'), 'method'),
      (dict(content=str(tmp_path / 'missing.jpg')), 'missing.jpg'),
  ]
  for overrides, needle in cases:
    kw = dict(content=str(content), style=starry, output=str(out), weights=str(ghiasi_npz))
    kw.update(overrides)
    with pytest.raises(NSTError) as e:
      jobs.run(_config(**kw))
    assert '\n' not in str(e.value) and needle in str(e.value), (overrides, str(e.value))
    assert not out.parent.exists()  # nothing written, not even the output's directory


def test_cli_error_line(tmp_path):
  out = tmp_path / 'o.png'
  r = run_cli('--config=configs/arbitrary.py', f'--content={IMAGES / "tubingen.jpg"}',
              f'--output={out}', f'--style={IMAGES / "starry_night.jpg"}',
              '--config.strength=2', tmp_path=tmp_path)
  assert r.returncode == 1, (r.stdout, r.stderr)
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'strength' in lines[0] and 'Traceback' not in r.stderr
  assert not out.exists()


@pytest.mark.slow
def test_video_through_the_fast_pipeline(tmp_path, ghiasi_npz):
  from nst_jax.io import video
  out = tmp_path / 'v.mp4'
  s = jobs.run(_config(content=str(SHARED / 'videos' / 'bunny.mp4'),
                         style=str(IMAGES / 'starry_night.jpg'), output=str(out),
                         weights=str(ghiasi_npz), size=64, max_frames=6, batch_size=3))
  assert s['count'] == 6
  info = video.probe(out)
  assert (info.width, info.height, info.has_audio) == (64, 36, True)
  assert len(list(video.read_frames(out))) == 6


@pytest.mark.skipif(not convolution.fused_conv_available(), reason='native convolution off')
def test_transform_on_the_native_convolution_equals_the_plain_one(gparams):
  """impl='fast' on the CPU runs every transform conv natively (no XLA convolution in the
  program): the plain convolutions' output within a hundredth of a level, odd sizes too."""
  rng = np.random.default_rng(5)
  emb = jnp.asarray(rng.normal(size=(2, 100)) * 0.5, jnp.float32)
  x = jnp.asarray(rng.random((2, 45, 37, 3)), jnp.float32)
  got = ghiasi.transform(gparams, x, emb, 'fast')
  assert 'convolution' not in jax.jit(lambda x: ghiasi.transform(gparams, x, emb)).lower(
      x).as_text()
  want = ghiasi.transform(gparams, x, emb, 'direct')
  assert float(jnp.abs(got - want).max()) < 0.01 / 255
