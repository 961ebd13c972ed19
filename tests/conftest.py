"""Shared fixtures: the real VGG19 weights and real images from ../shared, at small sizes."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / 'shared'
IMAGES = SHARED / 'images'
SHARED_H5 = SHARED / 'weights' / 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
REFERENCE = SHARED / 'weights' / 'vgg19_reference_activations.npz'


@pytest.fixture(scope='session')
def params(tmp_path_factory):
  """VGG19 params converted from the shared Keras h5 into a private cache."""
  from nst_jax import weights
  assert SHARED_H5.is_file(), f'{SHARED_H5} is missing: tests need ../shared beside the project'
  return weights.load_vgg19(SHARED_H5, cache_dir=tmp_path_factory.mktemp('weights'))


@pytest.fixture(scope='session')
def content_small():
  from nst_jax import image_io
  return image_io.load_image(IMAGES / 'tubingen.jpg', size=64)


@pytest.fixture(scope='session')
def style_small():
  from nst_jax import image_io
  return image_io.load_image(IMAGES / 'starry_night.jpg', size=64)


@pytest.fixture(scope='session', autouse=True)
def compile_cache_dir(tmp_path_factory):
  """One persistent compilation cache per test session (never the user's ~/.cache): in-process
  runs and run.py subprocesses (which inherit the environment) reuse each other's programs."""
  import os
  path = tmp_path_factory.mktemp('jax_cache')
  old = os.environ.get('NST_JAX_COMPILE_CACHE')
  os.environ['NST_JAX_COMPILE_CACHE'] = str(path)
  yield path
  if old is None:
    os.environ.pop('NST_JAX_COMPILE_CACHE', None)
  else:
    os.environ['NST_JAX_COMPILE_CACHE'] = old
