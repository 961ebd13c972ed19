"""Tests for nst_jax.io.images; all images are generated synthetically."""

import os

import numpy as np
import pytest
from PIL import Image

from nst_jax.io import images as image_io
from nst_jax.errors import ImageError, NSTError
from nst_jax.io.images import DEFAULT_MAX_PIXELS, load_image, load_mask, resize_image, save_image, to_float, to_uint8


def _save(img: Image.Image, path, **kwargs):
  img.save(path, **kwargs)
  return path


def _noise(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- Modes


def test_default_max_pixels():
  assert DEFAULT_MAX_PIXELS == 40_000_000
  assert issubclass(ImageError, NSTError)


def test_rgb_png_exact(tmp_path):
  arr = _noise()
  out = load_image(_save(Image.fromarray(arr), tmp_path / 'a.png'))
  assert out.dtype == np.uint8 and out.shape == arr.shape
  np.testing.assert_array_equal(out, arr)


def test_mode_1(tmp_path):
  img = Image.new('1', (4, 3), 0)
  img.putpixel((1, 2), 1)
  out = load_image(_save(img, tmp_path / 'b.png'))
  assert out.shape == (3, 4, 3)
  np.testing.assert_array_equal(out[2, 1], [255, 255, 255])
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])


def test_mode_l_replicates_channels(tmp_path):
  arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
  out = load_image(_save(Image.fromarray(arr), tmp_path / 'l.png'))
  assert out.shape == (3, 4, 3)
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], arr)


def test_mode_la_composited_on_white(tmp_path):
  img = Image.new('LA', (2, 2), (0, 0))  # Black, fully transparent -> white.
  img.putpixel((0, 0), (0, 255))  # Black, opaque.
  out = load_image(_save(img, tmp_path / 'la.png'))
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[1, 1], [255, 255, 255])


def test_rgba_half_transparent_red_over_white(tmp_path):
  img = Image.new('RGBA', (3, 2), (255, 0, 0, 128))
  out = load_image(_save(img, tmp_path / 'rgba.png'))
  assert out.shape == (2, 3, 3)
  r, g, b = (int(v) for v in out[0, 0])
  assert r == 255 and abs(g - 128) <= 2 and abs(b - 128) <= 2


def test_mode_p_without_transparency(tmp_path):
  img = Image.new('RGB', (4, 4), (10, 200, 30)).convert('P', palette=Image.ADAPTIVE)
  out = load_image(_save(img, tmp_path / 'p.png'))
  np.testing.assert_array_equal(out[0, 0], [10, 200, 30])


@pytest.mark.parametrize('ext', ['png', 'gif'])
def test_mode_p_with_transparency(tmp_path, ext):
  img = Image.new('P', (4, 4), 0)
  img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
  img.putpixel((3, 3), 1)
  path = _save(img, tmp_path / f'pt.{ext}', transparency=0)
  out = load_image(path)
  assert out.shape == (4, 4, 3)
  np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # Transparent red -> white.
  np.testing.assert_array_equal(out[3, 3], [0, 0, 255])


@pytest.mark.parametrize('ext', ['jpg', 'tif'])
def test_cmyk(tmp_path, ext):
  img = Image.new('CMYK', (16, 16), (0, 255, 255, 0))  # Red.
  out = load_image(_save(img, tmp_path / f'cmyk.{ext}'))
  assert out.shape == (16, 16, 3)
  r, g, b = (int(v) for v in out[8, 8])
  assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize('ext', ['tif', 'jpg'])  # TIFF keeps mode YCbCr on reading.
def test_ycbcr(tmp_path, ext):
  img = Image.new('RGB', (16, 16), (0, 0, 255)).convert('YCbCr')
  out = load_image(_save(img, tmp_path / f'ycc.{ext}'))
  assert out.shape == (16, 16, 3)
  r, g, b = (int(v) for v in out[8, 8])
  assert b > 200 and r < 60 and g < 60


def test_16bit_png_scaled_not_clipped(tmp_path):
  arr = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
  out = load_image(_save(Image.fromarray(arr), tmp_path / 'g16.png'))
  assert out.shape == (1, 4, 3) and out.dtype == np.uint8
  assert abs(int(out[0, 1, 0]) - 128) <= 1
  assert out[0, 2, 0] == 255 and out[0, 0, 0] == 0 and out[0, 3, 0] == 1


def test_16bit_big_endian_tiff(tmp_path):
  arr = np.array([[0, 32768, 65535]], dtype='>u2')
  img = Image.fromarray(arr)
  assert img.mode == 'I;16B'
  out = load_image(_save(img, tmp_path / 'g16b.tif'))
  assert out[0, 2, 0] == 255 and abs(int(out[0, 1, 1]) - 128) <= 1


def test_16bit_rgb_png(tmp_path):
  # Pillow decodes 48-bit PNGs to 8-bit RGB itself; just check it loads sensibly.
  path = tmp_path / 'rgb48.png'
  import struct
  import zlib
  raw = b''.join(b'\x00' + struct.pack('>HHH', 65535, 0, 32768) * 2 for _ in range(2))
  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
  png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2, 2, 16, 2, 0, 0, 0))
         + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
  path.write_bytes(png)
  out = load_image(path)
  assert out.shape == (2, 2, 3)
  assert out[0, 0, 0] == 255 and out[0, 0, 1] == 0 and abs(int(out[0, 0, 2]) - 128) <= 1


@pytest.mark.parametrize('values,expected', [
    ([0, 100, 255], [0, 100, 255]),  # Fits in 8 bits: taken as 0..255.
    ([0, 32768, 65535], [0, 128, 255]),  # 16-bit range.
])
def test_mode_i_32bit(tmp_path, values, expected):
  img = Image.fromarray(np.array([values], dtype=np.int32))
  assert img.mode == 'I'
  out = load_image(_save(img, tmp_path / 'i32.tif'))
  np.testing.assert_allclose(out[0, :, 0].astype(int), expected, atol=1)


@pytest.mark.parametrize('values,expected', [
    ([0.0, 0.5, 1.0], [0, 128, 255]),  # 0..1 range.
    ([0.0, 100.0, 300.0], [0, 100, 255]),  # 0..255 range, clipped.
])
def test_mode_f(tmp_path, values, expected):
  img = Image.fromarray(np.array([values], dtype=np.float32))
  assert img.mode == 'F'
  out = load_image(_save(img, tmp_path / 'f.tif'))
  np.testing.assert_allclose(out[0, :, 0].astype(int), expected, atol=1)


# --- EXIF


def test_exif_orientation_6_rotates(tmp_path):
  arr = np.zeros((20, 40, 3), dtype=np.uint8)  # H=20, W=40 as stored.
  arr[:8, :8] = (255, 0, 0)  # Red stored top-left corner.
  exif = Image.Exif()
  exif[0x0112] = 6  # Display = stored rotated 90 degrees clockwise.
  path = _save(Image.fromarray(arr), tmp_path / 'rot.jpg', exif=exif, quality=95)
  out = load_image(path)
  assert out.shape == (40, 20, 3)
  r, g, b = (int(v) for v in out[2, -3])  # Stored top-left -> displayed top-right.
  assert r > 200 and g < 60 and b < 60
  assert int(out[2, 2, 0]) < 60


# --- Resizing


def test_resize_by_size_landscape_and_portrait(tmp_path):
  land = _save(Image.fromarray(_noise(50, 100)), tmp_path / 'land.png')
  port = _save(Image.fromarray(_noise(100, 50)), tmp_path / 'port.png')
  assert load_image(land, size=40).shape == (20, 40, 3)
  assert load_image(port, size=40).shape == (40, 20, 3)
  assert load_image(land, size=300).shape == (150, 300, 3)  # Upscaling.
  assert load_image(land, size=1).shape == (1, 1, 3)  # At least one pixel per side.


def test_resize_exact_shape(tmp_path):
  path = _save(Image.fromarray(_noise(50, 100)), tmp_path / 'a.png')
  out = load_image(path, shape=(10, 30))
  assert out.shape == (10, 30, 3) and out.dtype == np.uint8


def test_resize_preserves_uniform_color():
  arr = np.full((30, 50, 3), (12, 34, 56), dtype=np.uint8)
  np.testing.assert_array_equal(resize_image(arr, size=20), np.full((12, 20, 3), (12, 34, 56)))
  np.testing.assert_array_equal(resize_image(arr, shape=(60, 70)),
                                np.full((60, 70, 3), (12, 34, 56)))


def test_resize_both_given_is_error(tmp_path):
  path = _save(Image.fromarray(_noise()), tmp_path / 'a.png')
  with pytest.raises(ImageError, match='at most one'):
    load_image(path, size=10, shape=(10, 10))
  with pytest.raises(ImageError, match='at most one'):
    resize_image(_noise(), size=10, shape=(10, 10))


@pytest.mark.parametrize('size', [0, -3, 2.5, True, '10'])
def test_non_positive_or_non_int_size_is_error(tmp_path, size):
  path = _save(Image.fromarray(_noise()), tmp_path / 'a.png')
  with pytest.raises(ImageError, match='size must be a positive integer'):
    load_image(path, size=size)


def test_size_error_message():
  with pytest.raises(ImageError, match=r'^size must be a positive integer, got -3$'):
    resize_image(_noise(), size=-3)


@pytest.mark.parametrize('shape', [(0, 10), (10, -1), (10,), (1, 2, 3), (2.0, 3), 'ab'])
def test_bad_shape_is_error(shape):
  with pytest.raises(ImageError, match='shape'):
    resize_image(_noise(), shape=shape)


def test_resize_image_accepts_numpy_ints_and_floats():
  out = resize_image(_noise(20, 10).astype(np.float32), size=np.int64(8))
  assert out.shape == (8, 4, 3) and out.dtype == np.uint8


def test_resize_image_bad_array():
  with pytest.raises(ImageError, match=r'\(H, W, 3\)'):
    resize_image(np.zeros((4, 4), np.uint8), size=2)


def test_requested_output_above_cap(tmp_path):
  path = _save(Image.fromarray(_noise(10, 10)), tmp_path / 'a.png')
  with pytest.raises(ImageError, match='max_pixels'):
    load_image(path, size=1000, max_pixels=100_000)
  with pytest.raises(ImageError, match='max_pixels'):
    resize_image(_noise(10, 10), shape=(1000, 1000), max_pixels=100_000)


# --- File errors


def _assert_image_error(path, loader=load_image):
  with pytest.raises(ImageError) as info:
    loader(path)
  msg = str(info.value)
  assert str(path) in msg and '\n' not in msg
  return info.value


def test_missing_file(tmp_path):
  err = _assert_image_error(tmp_path / 'nope.png')
  assert 'not found' in str(err)
  _assert_image_error(tmp_path / 'nope.png', load_mask)


def test_directory(tmp_path):
  assert 'directory' in str(_assert_image_error(tmp_path))


def test_text_file_renamed_jpg(tmp_path):
  path = tmp_path / 'fake.jpg'
  path.write_text('this is not an image\n')
  err = _assert_image_error(path)
  assert err.__cause__ is not None
  _assert_image_error(path, load_mask)


def test_empty_file(tmp_path):
  path = tmp_path / 'empty.png'
  path.write_bytes(b'')
  _assert_image_error(path)


@pytest.mark.parametrize('ext', ['png', 'jpg'])
def test_truncated_file(tmp_path, ext):
  full = _save(Image.fromarray(_noise(128, 128)), tmp_path / f'full.{ext}')
  data = full.read_bytes()
  path = tmp_path / f'trunc.{ext}'
  path.write_bytes(data[:len(data) // 2])
  _assert_image_error(path)
  _assert_image_error(path, load_mask)


@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() == 0,
                    reason='permissions are not enforced for root')
def test_unreadable_file(tmp_path):
  path = _save(Image.fromarray(_noise(4, 4)), tmp_path / 'secret.png')
  path.chmod(0)
  try:
    assert 'permission' in str(_assert_image_error(path))
  finally:
    path.chmod(0o644)


def test_permission_error_is_converted(tmp_path, monkeypatch):
  path = _save(Image.fromarray(_noise(4, 4)), tmp_path / 'secret.png')

  def denied(*args, **kwargs):
    raise PermissionError(13, 'Permission denied')

  monkeypatch.setattr(image_io.Image, 'open', denied)
  err = _assert_image_error(path)
  assert 'permission' in str(err) and isinstance(err.__cause__, PermissionError)


# --- Pixel cap


def test_pixel_cap(tmp_path):
  path = _save(Image.fromarray(_noise(200, 200)), tmp_path / 'big.png')
  with pytest.raises(ImageError) as info:
    load_image(path, max_pixels=10_000)
  msg = str(info.value)
  assert 'max_pixels' in msg and '200x200' in msg and str(path) in msg
  with pytest.raises(ImageError, match='max_pixels'):
    load_mask(path, max_pixels=10_000)
  assert load_image(path, max_pixels=40_000).shape == (200, 200, 3)
  assert load_image(path, max_pixels=None).shape == (200, 200, 3)


@pytest.mark.parametrize('cap', [0, -1, 1.5])
def test_bad_max_pixels(tmp_path, cap):
  path = _save(Image.fromarray(_noise(4, 4)), tmp_path / 'a.png')
  with pytest.raises(ImageError, match='max_pixels'):
    load_image(path, max_pixels=cap)


def test_pillow_bomb_limit_does_not_interfere(tmp_path, monkeypatch):
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
  path = _save(Image.fromarray(_noise(200, 200)), tmp_path / 'big.png')
  assert load_image(path).shape == (200, 200, 3)  # Our cap (default) governs, not Pillow's.
  assert Image.MAX_IMAGE_PIXELS == 100  # And Pillow's global is restored.


# --- Masks


def test_mask_values_l(tmp_path):
  arr = np.array([[0, 128, 255]], dtype=np.uint8)
  mask = load_mask(_save(Image.fromarray(arr), tmp_path / 'm.png'))
  assert mask.dtype == np.float32 and mask.shape == (1, 3)
  np.testing.assert_allclose(mask, [[0.0, 128 / 255, 1.0]], atol=1e-6)


def test_mask_rgb_luminance(tmp_path):
  arr = np.array([[[255, 0, 0], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
  mask = load_mask(_save(Image.fromarray(arr), tmp_path / 'm.png'))
  np.testing.assert_allclose(mask, [[0.299, 1.0, 0.0]], atol=1e-5)


def test_mask_alpha_multiplies(tmp_path):
  img = Image.new('RGBA', (3, 1), (255, 255, 255, 255))
  img.putpixel((1, 0), (255, 255, 255, 0))
  img.putpixel((2, 0), (255, 255, 255, 51))
  mask = load_mask(_save(img, tmp_path / 'm.png'))
  np.testing.assert_allclose(mask, [[1.0, 0.0, 0.2]], atol=1e-6)


def test_mask_16bit(tmp_path):
  arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
  mask = load_mask(_save(Image.fromarray(arr), tmp_path / 'm16.png'))
  np.testing.assert_allclose(mask, [[0.0, 32768 / 65535, 1.0]], atol=1e-5)


def test_mask_resize_to_shape(tmp_path):
  arr = np.zeros((20, 40), dtype=np.uint8)
  arr[:, 20:] = 255
  mask = load_mask(_save(Image.fromarray(arr), tmp_path / 'm.png'), shape=(5, 8))
  assert mask.shape == (5, 8) and mask.dtype == np.float32
  assert mask.min() >= 0.0 and mask.max() <= 1.0
  np.testing.assert_allclose(mask[:, 0], 0.0, atol=1e-6)
  np.testing.assert_allclose(mask[:, -1], 1.0, atol=1e-6)


def test_mask_exif(tmp_path):
  arr = np.zeros((20, 40), dtype=np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 6
  path = _save(Image.fromarray(arr), tmp_path / 'm.jpg', exif=exif)
  assert load_mask(path).shape == (40, 20)


# --- Saving


def test_save_roundtrip_png(tmp_path):
  arr = _noise()
  out = save_image(tmp_path / 'out.png', arr)
  assert os.fspath(out) == os.fspath(tmp_path / 'out.png')
  np.testing.assert_array_equal(load_image(out), arr)
  assert sorted(os.listdir(tmp_path)) == ['out.png']  # No leftover temp files.
  assert (os.stat(out).st_mode & 0o777) == 0o644


def test_save_float_clips_and_rounds(tmp_path):
  arr = np.array([[[-5.0, 127.6, 300.0]]], dtype=np.float32)
  out = save_image(tmp_path / 'f.png', arr)
  np.testing.assert_array_equal(load_image(out), [[[0, 128, 255]]])


@pytest.mark.parametrize('ext', ['jpg', 'jpeg', 'webp', 'bmp', 'tif', 'PNG'])
def test_save_formats(tmp_path, ext):
  arr = np.full((8, 8, 3), (200, 100, 50), dtype=np.uint8)
  out = save_image(tmp_path / f'x.{ext}', arr)
  np.testing.assert_allclose(load_image(out).astype(int), arr.astype(int), atol=4)
  assert os.listdir(tmp_path) == [f'x.{ext}']


def test_save_creates_parent_dirs(tmp_path):
  path = tmp_path / 'a' / 'b' / 'out.png'
  save_image(path, _noise(4, 4))
  assert path.is_file()


def test_save_parent_is_file(tmp_path):
  blocker = tmp_path / 'file.txt'
  blocker.write_text('x')
  path = blocker / 'out.png'
  with pytest.raises(ImageError) as info:
    save_image(path, _noise(4, 4))
  assert str(path) in str(info.value)


def test_save_unknown_extension(tmp_path):
  with pytest.raises(ImageError, match='extension'):
    save_image(tmp_path / 'out.xyz', _noise(4, 4))
  with pytest.raises(ImageError, match='extension'):
    save_image(tmp_path / 'noext', _noise(4, 4))


def test_save_bad_array(tmp_path):
  with pytest.raises(ImageError, match=r'\(H, W, 3\)'):
    save_image(tmp_path / 'out.png', np.zeros((4, 4, 4), np.uint8))


def test_save_atomic_when_replace_fails(tmp_path, monkeypatch):
  dest = tmp_path / 'out.png'
  save_image(dest, _noise(8, 8, seed=1))
  before = dest.read_bytes()

  def failing_replace(src, dst):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(image_io.os, 'replace', failing_replace)
  with pytest.raises(ImageError) as info:
    save_image(dest, _noise(8, 8, seed=2))
  assert str(dest) in str(info.value)
  assert dest.read_bytes() == before
  assert os.listdir(tmp_path) == ['out.png']


# --- Helpers


def test_to_float_and_to_uint8():
  arr = _noise(4, 4)
  f = to_float(arr)
  assert f.dtype == np.float32
  np.testing.assert_array_equal(f, arr)
  np.testing.assert_array_equal(to_uint8(f), arr)
  out = to_uint8(np.array([-1.0, 0.4, 0.6, 254.5, 256.0, np.nan]))
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, [0, 0, 1, 254, 255, 0])
