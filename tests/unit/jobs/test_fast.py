"""The fast job: photos, folders and videos through a tiny trained-format model (in process,
sharing compiled programs), the built-in network from the command line, style mixing, post-
processing, video I/O (frame count, size, fps, audio), and bad inputs (one `error:` line, exit 1,
nothing half-written)."""

import numpy as np
import pytest

from conftest import IMAGES, SHARED, run_cli

from nst_jax.config import fast as fast_schema
from nst_jax.jobs import fast as fast_lib
from nst_jax.io import images as image_io
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.io import video
from nst_jax.errors import NSTError

BUNNY = SHARED / 'videos' / 'bunny.mp4'
TINY = networks.NetworkConfig(down_widths=(8, 16), residual_blocks=1, up_widths=(8,),
                              in_kernel=5, out_kernel=5, num_styles=3,
                              output_activation='sigmoid')


@pytest.fixture(scope='session')
def model_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('model')
  return model_io.save_model(d, TINY, network_params.init_params(TINY, seed=3), ['a', 'b', 'c'])


@pytest.fixture(scope='session')
def tiny_video(tmp_path_factory):
  """The first 10 frames of bunny.mp4 at 64x36, with its audio (cut to the video's length)."""
  path = tmp_path_factory.mktemp('video') / 'tiny.mp4'
  with video.VideoWriter(path, 24., (36, 64), audio_from=BUNNY, max_frames=10) as w:
    for frame in video.read_frames(BUNNY, size=64, max_frames=10):
      w.write(frame)
  return path


def _config(**kw):
  c = fast_schema.fast_config()
  c.quiet = True
  for k, v in kw.items():
    c[k] = v
  return c


def test_photo_with_postprocessing(tmp_path, model_dir):
  out = tmp_path / 'o.png'
  s = fast_lib.run(_config(model=str(model_dir), content=str(IMAGES / 'tubingen.jpg'),
                       output=str(out), size=40, style_index='1:1,2:3'))
  assert s['styles'] == {'b': 0.25, 'c': 0.75} and s['count'] == 1
  result = image_io.load_image(out)
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)
  assert result.shape == photo.shape == (30, 40, 3)
  assert out.with_suffix('.json').is_file()
  # strength 0 gives the photo back; a mask keeps the photo where it is black
  m = model_io.load_model(model_dir)
  np.testing.assert_array_equal(fast_lib.stylize(m, photo, 1, strength=0.), photo)
  mask = np.zeros((30, 40), np.float32)
  mask[:, 20:] = 1.
  full = fast_lib.stylize(m, photo, 1).astype(int)
  masked = fast_lib.stylize(m, photo, 1, mask=mask).astype(int)
  np.testing.assert_array_equal(masked[:, :20], photo[:, :20])
  assert np.abs(masked[:, 21:] - full[:, 21:]).max() <= 1
  half = fast_lib.stylize(m, photo, 1, strength=0.5).astype(int)
  assert np.abs(half - (full + photo) / 2).max() <= 1
  # original colours: the stylized luminance with the photo's chroma
  from nst_jax.losses import controls
  oc = fast_lib.stylize(m, photo, 1, original_colors=True)
  y = lambda im: np.asarray(controls.rgb_to_yiq(im.astype(np.float32)))
  assert np.abs(y(oc)[..., 0] - y(full)[..., 0]).mean() < 2.
  assert np.abs(y(oc)[..., 1:] - y(photo)[..., 1:]).mean() < 2.


def test_style_weights_parsing():
  np.testing.assert_allclose(fast_lib.style_weights('3:0.5,12:0.5', 26)[[3, 12]], [0.5, 0.5])
  np.testing.assert_allclose(fast_lib.style_weights('1:1,2:3', 3), [0, 0.25, 0.75])
  np.testing.assert_allclose(fast_lib.style_weights(2, 3), [0, 0, 1])
  np.testing.assert_allclose(fast_lib.style_weights({0: 2., 1: 2.}, 2), [0.5, 0.5])
  for bad, needle in [('26', 'out of range'), ('3:0,4:0', 'positive'), ('1:-1,2:2', '>= 0'),
                      ('x', 'parse'), ([1., 0.], 'entries')]:
    with pytest.raises(NSTError, match=needle):
      fast_lib.style_weights(bad, 26 if bad != [1., 0.] else 3)


def test_folder_in_batches(tmp_path, model_dir):
  src = tmp_path / 'photos'
  src.mkdir()
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)
  for i in range(4):
    image_io.save_image(src / f'p{i}.png', np.roll(photo, 5 * i, axis=1))
  image_io.save_image(src / 'other.jpg', image_io.load_image(IMAGES / 'brad_pitt.jpg', size=40))
  (src / 'notes.txt').write_text('not an image')
  out = tmp_path / 'out'
  s = fast_lib.run(_config(model=str(model_dir), content=str(src), output=str(out), batch_size=2))
  assert s['count'] == 5
  assert sorted(p.name for p in out.iterdir()) == ['fast.json', 'other.png', 'p0.png', 'p1.png',
                                                   'p2.png', 'p3.png']
  assert image_io.load_image(out / 'p2.png').shape == photo.shape
  assert image_io.load_image(out / 'other.png').shape[:2] == (40, 32)
  # same image alone == in a batch
  np.testing.assert_array_equal(image_io.load_image(out / 'p0.png'),
                                fast_lib.stylize(model_io.load_model(model_dir), photo, 0))


def test_video_in_and_out(tmp_path, model_dir, tiny_video):
  info = video.probe(tiny_video)
  assert (info.width, info.height, info.fps, info.has_audio) == (64, 36, 24., True)
  out = tmp_path / 'v' / 'styled.mp4'
  s = fast_lib.run(_config(model=str(model_dir), content=str(tiny_video), output=str(out),
                       batch_size=4, temporal_smoothing=0.5))
  assert s['count'] == 10
  got = video.probe(out)
  assert (got.width, got.height, got.fps, got.has_audio) == (64, 36, 24., True)
  frames = list(video.read_frames(out))
  assert len(frames) == 10 and frames[0].shape == (36, 64, 3)
  assert sorted(p.name for p in out.parent.iterdir()) == ['styled.json', 'styled.mp4']
  assert len(list(video.read_frames(tiny_video))) == 10


def test_temporal_smoothing_reduces_flicker_without_ghosting():
  rng = np.random.default_rng(0)
  photo = rng.uniform(0, 255, (16, 16, 3)).astype(np.float32)
  moved = photo.copy()
  moved[:, 8:] = 255. - moved[:, 8:]  # the right half changes completely
  sm = video.TemporalSmoother(0.8)
  frames = [sm(photo, rng.uniform(0, 255, photo.shape)) for _ in range(6)]
  raw_flicker = 255. / 3  # mean |a - b| of two independent uniform(0, 255) frames
  flicker = np.mean([np.abs(a - b).mean() for a, b in zip(frames, frames[1:])])
  assert flicker < 0.5 * raw_flicker
  new = rng.uniform(0, 255, photo.shape)
  out = sm(moved, new)
  np.testing.assert_allclose(out[:, 8:], new[:, 8:], atol=1e-3)  # moving region: no ghost


def test_bad_inputs_in_process(tmp_path, model_dir, tiny_video):
  photo = str(IMAGES / 'tubingen.jpg')
  empty = tmp_path / 'empty'
  empty.mkdir()
  broken_video = tmp_path / 'broken.mp4'
  broken_video.write_bytes(BUNNY.read_bytes()[:3000])
  corrupt = tmp_path / 'corrupt_model'
  corrupt.mkdir()
  (corrupt / 'model.json').write_bytes((model_dir / 'model.json').read_bytes())
  (corrupt / 'model.npz').write_bytes(b'PK\x03\x04garbage')
  cases = [
      (dict(model=str(tmp_path / 'nope')), 'nope'),
      (dict(model=str(corrupt)), 'model.npz'),
      (dict(model=str(model_dir), style_index='3'), 'out of range'),
      (dict(model=str(model_dir), style_index='0:0,1:0'), 'positive'),
      (dict(content=str(empty)), 'no images'),
      (dict(content=str(broken_video), output=str(tmp_path / 'b.mp4')), 'broken.mp4'),
      (dict(content=str(tmp_path / 'missing.jpg')), 'missing.jpg'),
      (dict(strength=1.5), 'strength'),
      (dict(content=str(tiny_video)), '.mp4'),  # a video into a .png
      (dict(content=str(IMAGES)), 'directory'),  # a folder into a .png
  ]
  for overrides, needle in cases:
    kw = dict(model=str(model_dir), content=photo, output=str(tmp_path / 'o.png'), size=32)
    kw.update(overrides)
    with pytest.raises(NSTError) as e:
      fast_lib.run(_config(**kw))
    assert '\n' not in str(e.value) and needle in str(e.value), (overrides, str(e.value))
  leftovers = [p.name for p in tmp_path.rglob('*') if p.is_file() and p.parent == tmp_path
               and p.name not in ('broken.mp4',)]
  assert leftovers == [], leftovers  # nothing written, no temp files


def _cli(*args, tmp_path):
  return run_cli('--config=configs/fast.py', *args, tmp_path=tmp_path)


def test_cli_model_style_mix(tmp_path, model_dir):
  out = tmp_path / 'mix.png'
  r = _cli(f'--model={model_dir}', f'--content={IMAGES / "tubingen.jpg"}', f'--output={out}',
           '--config.size=40', '--config.style_index=1:0.5,2:0.5', tmp_path=tmp_path)
  assert r.returncode == 0, r.stderr
  assert image_io.load_image(out).shape == (30, 40, 3)
  m = model_io.load_model(model_dir)
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)
  np.testing.assert_array_equal(image_io.load_image(out),
                                fast_lib.stylize(m, photo, {1: 0.5, 2: 0.5}))


def test_cli_bad_input(tmp_path):
  """Built-in network (converted on first use), style index out of range: one error line."""
  out = tmp_path / 'o.png'
  r = _cli(f'--content={IMAGES / "tubingen.jpg"}', f'--output={out}', '--config.size=32',
           '--config.style_index=26', tmp_path=tmp_path)
  assert r.returncode == 1, (r.stdout, r.stderr)
  assert 'Traceback' not in r.stderr
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'out of range' in lines[0], r.stderr
  assert not out.exists()


def test_stop_on_signal(tmp_path, model_dir, tiny_video, monkeypatch):
  """Ctrl-C in a folder run stops after the current batch with complete files; skip_existing
  continues; a stopped video writes nothing."""
  from nst_jax.runtime import interrupt
  src = tmp_path / 'photos'
  src.mkdir()
  photo = image_io.load_image(IMAGES / 'tubingen.jpg', size=40)
  for i in range(4):
    image_io.save_image(src / f'p{i}.png', np.roll(photo, 3 * i, axis=0))
  real_enter = interrupt.StopOnSignal.__enter__

  def enter_and_request(self):
    real_enter(self)
    self.request()  # as if Ctrl-C arrived during the first batch
    return self
  monkeypatch.setattr(interrupt.StopOnSignal, '__enter__', enter_and_request)
  vout = tmp_path / 'v.mp4'
  with pytest.raises(interrupt.Interrupted, match='discarded'):
    fast_lib.run(_config(model=str(model_dir), content=str(tiny_video), output=str(vout)))
  assert not list(tmp_path.glob('*v.*'))  # neither the video nor a temp file
  out = tmp_path / 'out'
  with pytest.raises(interrupt.Interrupted, match='skip_existing'):
    fast_lib.run(_config(model=str(model_dir), content=str(src), output=str(out), batch_size=2))
  assert sorted(p.name for p in out.iterdir()) == ['p0.png', 'p1.png']
  monkeypatch.setattr(interrupt.StopOnSignal, '__enter__', real_enter)
  s = fast_lib.run(_config(model=str(model_dir), content=str(src), output=str(out), batch_size=2,
                       skip_existing=True))
  assert s['count'] == 2 and len(list(out.glob('p*.png'))) == 4
