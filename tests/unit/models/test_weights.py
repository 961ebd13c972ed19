"""Tests for nst_jax.models.weights: conversion, validation, resolution order and downloads (offline)."""

import hashlib
import json
import os
from pathlib import Path
import shutil
import sys
import urllib.error
import urllib.request

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # Running from a checkout without an install.
  sys.path.insert(0, str(ROOT))

from nst_jax.models import weights  # pylint: disable=g-import-not-at-top,wrong-import-position
from nst_jax.errors import WeightsError  # pylint: disable=g-import-not-at-top,wrong-import-position

SHARED_DIR = ROOT.parent / 'shared' / 'weights'
SHARED_H5 = SHARED_DIR / weights.KERAS_FILENAME
needs_shared = pytest.mark.skipif(not SHARED_H5.is_file(), reason=f'{SHARED_H5} not available')

_REAL_URLOPEN = urllib.request.urlopen


@pytest.fixture(autouse=True)
def _offline_and_clean_env(monkeypatch):
  """Blocks non-file URLs and clears the env vars the module reads."""
  def guarded(url, *args, **kwargs):
    target = url if isinstance(url, str) else url.full_url
    if not target.startswith('file:'):
      raise AssertionError(f'test tried to reach the network: {target}')
    return _REAL_URLOPEN(url, *args, **kwargs)
  monkeypatch.setattr(urllib.request, 'urlopen', guarded)
  monkeypatch.delenv(weights.ENV_VAR, raising=False)
  monkeypatch.delenv(weights.CACHE_ENV_VAR, raising=False)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  """The shared h5 converted (via resolve_weights step 3) into a temp cache dir."""
  if not SHARED_H5.is_file():
    pytest.skip(f'{SHARED_H5} not available')
  cache = tmp_path_factory.mktemp('cache')
  npz = weights.resolve_weights(cache_dir=cache, shared_dir=SHARED_DIR, allow_download=False)
  return npz


@pytest.fixture(scope='module')
def params(converted):
  return weights.load_params(converted)


def _write_h5(path, params, layout='old', skip=(), with_weight_names=True):
  """Writes params as a Keras-style h5 in one of several dataset layouts."""
  with h5py.File(path, 'w') as f:
    f.attrs['layer_names'] = np.array([l.encode() for l in params if l not in skip])
    for layer, p in params.items():
      if layer in skip:
        continue
      g = f.create_group(layer)
      names = {'old': [f'{layer}_W_1:0', f'{layer}_b_1:0'],
               'new': ['kernel:0', 'bias:0'],
               'nested': [f'{layer}/kernel:0', f'{layer}/bias:0'],
               'vars': ['vars/0', 'vars/1']}[layout]
      for name, arr in zip(names, (p['kernel'], p['bias'])):
        g.create_dataset(name, data=arr)
      if with_weight_names:
        g.attrs['weight_names'] = np.array([n.encode() for n in names])
  return path


# --- The shared file --------------------------------------------------------------------------

@needs_shared
def test_shared_sha256_is_known():
  assert weights.sha256sum(SHARED_H5) == weights.SHARED_SHA256


def test_hash_helpers(tmp_path):
  p = tmp_path / 'x.bin'
  p.write_bytes(b'abc' * 1000)
  assert weights.sha256sum(p) == hashlib.sha256(b'abc' * 1000).hexdigest()
  assert weights.md5sum(p) == hashlib.md5(b'abc' * 1000).hexdigest()


def test_conv_shapes_table():
  assert list(weights.VGG19_CONV_SHAPES) == [
      f'block{b}_conv{c}' for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for c in range(1, n + 1)]
  assert weights.VGG19_CONV_SHAPES['block1_conv1'] == (3, 3, 3, 64)
  assert weights.VGG19_CONV_SHAPES['block3_conv1'] == (3, 3, 128, 256)
  assert weights.VGG19_CONV_SHAPES['block5_conv4'] == (3, 3, 512, 512)


def test_converted_shapes(converted, params):
  assert converted.name == weights.CACHE_NPZ
  assert list(params) == list(weights.VGG19_CONV_SHAPES)
  for layer, shape in weights.VGG19_CONV_SHAPES.items():
    assert params[layer]['kernel'].shape == shape
    assert params[layer]['bias'].shape == shape[-1:]
    assert params[layer]['kernel'].dtype == np.float32


def test_npz_roundtrip_equals_h5_exactly(params):
  with h5py.File(SHARED_H5, 'r') as f:
    for layer in weights.VGG19_CONV_SHAPES:
      np.testing.assert_array_equal(params[layer]['kernel'], f[layer][f'{layer}_W_1:0'][()])
      np.testing.assert_array_equal(params[layer]['bias'], f[layer][f'{layer}_b_1:0'][()])


def test_metadata_records_source(converted):
  meta = weights.load_metadata(converted)
  assert meta['source_sha256'] == weights.SHARED_SHA256
  assert meta['source_kind'] == 'shared-quantized'
  assert meta['format_version'] == weights.FORMAT_VERSION
  assert Path(meta['source']).name == weights.KERAS_FILENAME


def test_npz_loads_without_pickle(converted):
  with np.load(converted, allow_pickle=False) as z:
    assert json.loads(str(z['__meta__']))['source_sha256'] == weights.SHARED_SHA256
    assert 'block1_conv1/kernel' in z.files


def test_save_load_roundtrip_is_atomic(tmp_path, params):
  out = weights.save_params(params, tmp_path / 'sub' / 'p.npz', {'source': 'x'})
  assert sorted(p.name for p in out.parent.iterdir()) == ['p.npz']  # No temp left.
  back = weights.load_params(out)
  for layer in params:
    np.testing.assert_array_equal(back[layer]['kernel'], params[layer]['kernel'])
  assert weights.load_metadata(out)['source'] == 'x'


# --- Other h5 layouts -------------------------------------------------------------------------

@pytest.mark.parametrize('layout,with_names', [
    ('new', True), ('new', False), ('nested', True), ('nested', False), ('vars', True)])
def test_other_layouts_convert_identically(tmp_path, params, layout, with_names):
  h5 = _write_h5(tmp_path / 'w.h5', params, layout, with_weight_names=with_names)
  out = weights.convert(h5, tmp_path / 'w.npz')
  got = weights.load_params(out)
  for layer in params:
    np.testing.assert_array_equal(got[layer]['kernel'], params[layer]['kernel'])
    np.testing.assert_array_equal(got[layer]['bias'], params[layer]['bias'])


def test_unknown_checksum_warns_but_converts(tmp_path, params, caplog):
  h5 = _write_h5(tmp_path / 'own.h5', params, 'new')
  with caplog.at_level('WARNING'):
    weights.convert(h5, tmp_path / 'own.npz')
  assert 'matches no known' in caplog.text
  assert weights.load_metadata(tmp_path / 'own.npz')['source_kind'] == 'unknown'


# --- Bad files --------------------------------------------------------------------------------

@needs_shared
def test_truncated_h5(tmp_path):
  bad = tmp_path / weights.KERAS_FILENAME
  with open(SHARED_H5, 'rb') as f:
    bad.write_bytes(f.read(1 << 20))
  with pytest.raises(WeightsError, match='truncated or not an HDF5') as e:
    weights.read_keras_h5(bad)
  assert str(bad) in str(e.value) and '--weights=PATH' in str(e.value)
  assert isinstance(e.value.__cause__, OSError)


def test_text_file(tmp_path):
  bad = tmp_path / 'w.h5'
  bad.write_text('<html>404 Not Found</html>\n')
  with pytest.raises(WeightsError, match='truncated or not an HDF5'):
    weights.read_keras_h5(bad)
  with pytest.raises(WeightsError, match='neither a Keras .h5 nor a converted .npz'):
    weights.resolve_weights(bad, cache_dir=tmp_path)


def test_missing_file(tmp_path):
  with pytest.raises(WeightsError, match='does not exist'):
    weights.read_keras_h5(tmp_path / 'nope.h5')


def test_h5_missing_layer(tmp_path, params):
  h5 = _write_h5(tmp_path / 'w.h5', params, skip=('block3_conv2', 'block5_conv4'))
  with pytest.raises(WeightsError, match='missing layers block3_conv2, block5_conv4') as e:
    weights.read_keras_h5(h5)
  assert str(h5) in str(e.value)


def test_h5_wrong_shape(tmp_path, params):
  bad = {l: dict(p) for l, p in params.items()}
  bad['block2_conv1'] = {'kernel': np.zeros((3, 3, 64, 64), np.float32),
                         'bias': np.zeros(64, np.float32)}
  h5 = _write_h5(tmp_path / 'w.h5', bad)
  with pytest.raises(WeightsError,
                     match=r'block2_conv1 kernel has shape \(3, 3, 64, 64\), expected '
                           r'\(3, 3, 64, 128\)'):
    weights.read_keras_h5(h5)


def test_h5_non_finite(tmp_path, params):
  bad = {l: dict(p) for l, p in params.items()}
  bad['block1_conv1'] = {'kernel': params['block1_conv1']['kernel'],
                         'bias': np.full(64, np.nan, np.float32)}
  with pytest.raises(WeightsError, match='block1_conv1 bias contains NaN'):
    weights.read_keras_h5(_write_h5(tmp_path / 'w.h5', bad))


@pytest.mark.parametrize('content', [b'PK\x03\x04garbage' * 10, b'not a zip at all'])
def test_corrupt_npz_in_cache(tmp_path, content):
  (tmp_path / weights.CACHE_NPZ).write_bytes(content)
  path = weights.resolve_weights(cache_dir=tmp_path, shared_dir=tmp_path / 'none',
                                 allow_download=False)
  with pytest.raises(WeightsError, match='delete it') as e:
    weights.load_params(path)
  assert str(path) in str(e.value)
  with pytest.raises(WeightsError, match='delete it'):
    weights.load_vgg19(cache_dir=tmp_path, shared_dir=tmp_path / 'none', allow_download=False)


def test_npz_with_wrong_shape(tmp_path, params):
  good = tmp_path / 'good.npz'
  weights.save_params(params, good)
  with np.load(good) as z:
    arrays = dict(z)
  arrays['block4_conv1/bias'] = np.zeros(3, np.float32)
  np.savez(tmp_path / 'bad.npz', **arrays)
  with pytest.raises(WeightsError, match=r'block4_conv1 bias has shape \(3,\).*delete it'):
    weights.load_params(tmp_path / 'bad.npz')


# --- Resolution order -------------------------------------------------------------------------

@pytest.fixture
def two_npz(tmp_path, converted):
  a, b = tmp_path / 'a.npz', tmp_path / 'b.npz'
  shutil.copy(converted, a)
  shutil.copy(converted, b)
  return a, b


def test_explicit_path_beats_env(monkeypatch, tmp_path, two_npz):
  a, b = two_npz
  monkeypatch.setenv(weights.ENV_VAR, str(b))
  assert weights.resolve_weights(a, cache_dir=tmp_path / 'c') == a
  assert weights.resolve_weights(cache_dir=tmp_path / 'c') == b


def test_env_beats_cache(monkeypatch, tmp_path, two_npz):
  a, b = two_npz
  cache = tmp_path / 'c'
  cache.mkdir()
  shutil.copy(a, cache / weights.CACHE_NPZ)
  monkeypatch.setenv(weights.ENV_VAR, str(b))
  assert weights.resolve_weights(cache_dir=cache, allow_download=False) == b


def test_missing_explicit_file_is_an_error(monkeypatch, tmp_path, converted):
  cache = tmp_path / 'c'
  cache.mkdir()
  shutil.copy(converted, cache / weights.CACHE_NPZ)  # Would be found if we fell back.
  with pytest.raises(WeightsError, match='does not exist'):
    weights.resolve_weights(tmp_path / 'nope.npz', cache_dir=cache)
  monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / 'nope.h5'))
  with pytest.raises(WeightsError, match=r'from \$NST_VGG19_WEIGHTS'):
    weights.resolve_weights(cache_dir=cache)


@needs_shared
def test_explicit_h5_converts_into_cache_by_sha(monkeypatch, tmp_path):
  cache = tmp_path / 'c'
  monkeypatch.setenv(weights.ENV_VAR, str(SHARED_H5))
  out = weights.resolve_weights(cache_dir=cache)
  assert out == cache / f'vgg19_{weights.SHARED_SHA256[:12]}.npz'
  mtime = out.stat().st_mtime_ns
  assert weights.resolve_weights(SHARED_H5, cache_dir=cache) == out  # Reused, not rewritten.
  assert out.stat().st_mtime_ns == mtime


def test_cache_beats_shared_h5(tmp_path, converted):
  cache = tmp_path / 'c'
  cache.mkdir()
  shutil.copy(converted, cache / weights.CACHE_NPZ)
  mtime = (cache / weights.CACHE_NPZ).stat().st_mtime_ns
  out = weights.resolve_weights(cache_dir=cache, shared_dir=SHARED_DIR, allow_download=False)
  assert out == cache / weights.CACHE_NPZ
  assert out.stat().st_mtime_ns == mtime


def test_h5_in_cache_dir_is_found(tmp_path, params):
  cache = tmp_path / 'c'
  cache.mkdir()
  _write_h5(cache / weights.KERAS_FILENAME, params)
  out = weights.resolve_weights(cache_dir=cache, shared_dir=tmp_path / 'none',
                                allow_download=False)
  assert out == cache / weights.CACHE_NPZ
  np.testing.assert_array_equal(weights.load_params(out)['block5_conv4']['kernel'],
                                params['block5_conv4']['kernel'])


def test_nothing_found_without_download_lists_places(tmp_path):
  cache, shared = tmp_path / 'c', tmp_path / 's'
  with pytest.raises(WeightsError) as e:
    weights.resolve_weights(cache_dir=cache, shared_dir=shared, allow_download=False)
  msg = str(e.value)
  for place in (cache / weights.CACHE_NPZ, shared / weights.KERAS_FILENAME,
                cache / weights.KERAS_FILENAME):
    assert str(place) in msg
  assert weights.ENV_VAR in msg and weights.KERAS_URL in msg and '--weights=PATH' in msg
  assert '\n' not in msg


def test_download_is_last_resort(monkeypatch, tmp_path, params):
  """Nothing local: the official URL is 'downloaded' (file://), md5-verified, converted."""
  src = _write_h5(tmp_path / 'remote.h5', params)
  monkeypatch.setattr(weights, 'KERAS_URL', src.as_uri())
  monkeypatch.setattr(weights, 'KERAS_MD5', weights.md5sum(src))
  cache = tmp_path / 'c'
  out = weights.resolve_weights(cache_dir=cache, shared_dir=tmp_path / 'none')
  assert out == cache / weights.CACHE_NPZ
  assert (cache / weights.KERAS_FILENAME).read_bytes() == src.read_bytes()
  assert weights.load_metadata(out)['source_kind'] == 'keras-official'


def test_failed_download_in_resolve(monkeypatch, tmp_path):
  monkeypatch.setattr(weights, 'KERAS_URL', (tmp_path / 'missing.h5').as_uri())
  with pytest.raises(WeightsError, match='download failed') as e:
    weights.resolve_weights(cache_dir=tmp_path / 'c', shared_dir=tmp_path / 's')
  assert 'searched' in str(e.value)
  assert not (tmp_path / 'c' / weights.KERAS_FILENAME).exists()


# --- download() -------------------------------------------------------------------------------

@pytest.fixture
def fake_remote(tmp_path):
  src = tmp_path / 'remote' / 'fake.h5'
  src.parent.mkdir()
  src.write_bytes(os.urandom(3 << 20 | 123))
  return src


def _dir_names(d):
  return sorted(p.name for p in d.iterdir())


def test_download_file_url_ok(tmp_path, fake_remote):
  dest = tmp_path / 'dl' / 'x.h5'
  got = weights.download(fake_remote.as_uri(), dest, md5=weights.md5sum(fake_remote),
                         sha256=weights.sha256sum(fake_remote))
  assert got == dest and dest.read_bytes() == fake_remote.read_bytes()
  assert _dir_names(dest.parent) == ['x.h5']


@pytest.mark.parametrize('kind', ['md5', 'sha256'])
def test_download_checksum_mismatch_leaves_nothing(tmp_path, fake_remote, kind):
  dest = tmp_path / 'dl' / 'x.h5'
  with pytest.raises(WeightsError, match=f'{kind} mismatch.*expected {"0" * 8}.*got ') as e:
    weights.download(fake_remote.as_uri(), dest, **{kind: '0' * 32})
  assert weights.KERAS_URL in str(e.value)
  assert _dir_names(dest.parent) == []


def test_download_with_patched_urlopen(monkeypatch, tmp_path):
  payload = b'fake weights' * 1000
  seen = []

  class FakeResponse:
    def __init__(self):
      self._data = [payload[:5000], payload[5000:], b'']

    def read(self, n):
      del n
      return self._data.pop(0)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

  def fake_urlopen(url, timeout=None):
    seen.append((url, timeout))
    return FakeResponse()

  monkeypatch.setattr(urllib.request, 'urlopen', fake_urlopen)
  dest = tmp_path / 'x.h5'
  weights.download('https://example.invalid/x.h5', dest,
                   sha256=hashlib.sha256(payload).hexdigest())
  assert dest.read_bytes() == payload and seen[0][0] == 'https://example.invalid/x.h5'


def test_download_network_failure(monkeypatch, tmp_path):
  def fail(url, timeout=None):
    raise urllib.error.URLError('Name or service not known')
  monkeypatch.setattr(urllib.request, 'urlopen', fail)
  with pytest.raises(WeightsError, match='cannot download') as e:
    weights.download(weights.KERAS_URL, tmp_path / 'x.h5', md5=weights.KERAS_MD5)
  msg = str(e.value)
  assert weights.KERAS_URL in msg and '--weights=PATH' in msg and weights.ENV_VAR in msg
  assert isinstance(e.value.__cause__, urllib.error.URLError)
  assert _dir_names(tmp_path) == []


# --- load_vgg19 & defaults --------------------------------------------------------------------

def test_load_vgg19_is_cached_jnp(converted):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  p1 = weights.load_vgg19(converted)
  p2 = weights.load_vgg19(converted)
  assert isinstance(p1['block1_conv1']['kernel'], jnp.ndarray)
  assert p1['block1_conv1']['kernel'].dtype == jnp.float32
  assert p1['block3_conv4']['kernel'] is p2['block3_conv4']['kernel']
  assert p1 is not p2  # Callers get their own dicts.


def test_default_dirs(monkeypatch, tmp_path):
  monkeypatch.setenv(weights.CACHE_ENV_VAR, str(tmp_path))
  assert weights.default_cache_dir() == tmp_path
  monkeypatch.delenv(weights.CACHE_ENV_VAR)
  expected = ROOT / 'weights' if (ROOT / 'weights').is_dir() else None
  if expected:
    assert weights.default_cache_dir() == expected
  assert weights.default_shared_dir() == ROOT.parent / 'shared' / 'weights'
