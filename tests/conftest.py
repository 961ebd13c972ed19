"""Shared fixtures: the real VGG19 weights and real images from ../shared, at small sizes."""

import os
import signal
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / 'shared'
IMAGES = SHARED / 'images'
SHARED_H5 = SHARED / 'weights' / 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
REFERENCE = SHARED / 'weights' / 'vgg19_reference_activations.npz'


def cli_env(tmp_path: Path) -> dict:
  """A run.py subprocess's environment: a private weights cache under ``tmp_path``, the CPU, no
  ``$NST_VGG19_WEIGHTS``; it inherits the session's compile cache (see compile_cache_dir)."""
  env = dict(os.environ, NST_JAX_CACHE=str(tmp_path / 'cache'), JAX_PLATFORMS='cpu')
  env.pop('NST_VGG19_WEIGHTS', None)
  return env


def run_cli(*args: str, tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
  """``python run.py ARGS...`` from the project root in :func:`cli_env`; output captured."""
  return subprocess.run([sys.executable, str(ROOT / 'run.py'), *args], cwd=ROOT,
                        env=cli_env(tmp_path), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='session')
def params(tmp_path_factory):
  """VGG19 params converted from the shared Keras h5 into a private cache."""
  from nst_jax.models import weights
  assert SHARED_H5.is_file(), f'{SHARED_H5} is missing: tests need ../shared beside the project'
  return weights.load_vgg19(SHARED_H5, cache_dir=tmp_path_factory.mktemp('weights'))


@pytest.fixture(scope='session')
def content_small():
  from nst_jax.io import images as image_io
  return image_io.load_image(IMAGES / 'tubingen.jpg', size=64)


@pytest.fixture(scope='session')
def style_small():
  from nst_jax.io import images as image_io
  return image_io.load_image(IMAGES / 'starry_night.jpg', size=64)


# --- A randomly initialised VGG19 and synthetic images: structural tests (batch == single runs,
# resume, Ctrl-C, CLI and config errors) need neither the real weights nor ../shared.


def _random_vgg19_arrays(seed: int = 0) -> dict:
  import numpy as np
  from nst_jax.models import vgg
  rng = np.random.default_rng(seed)
  params, cin = {}, 3
  for layer in vgg.CONV_LAYERS:
    cout = vgg.CHANNELS[layer]
    std = np.sqrt(1. / (9 * cin))  # Activations shrink slowly with depth: finite losses.
    params[layer] = {'kernel': rng.normal(0., std, (3, 3, cin, cout)).astype(np.float32),
                     'bias': np.zeros(cout, np.float32)}
    cin = cout
  return params


@pytest.fixture(scope='session')
def random_weights_file(tmp_path_factory):
  """A converted-format .npz of a randomly initialised VGG19 (what --weights accepts)."""
  from nst_jax.models import weights
  path = tmp_path_factory.mktemp('random_vgg') / 'vgg19_random.npz'
  weights.save_params(_random_vgg19_arrays(), path)
  return path


@pytest.fixture(scope='session')
def random_params(random_weights_file):
  from nst_jax.models import weights
  return weights.load_vgg19(random_weights_file)


def random_transformer_params(config, seed=0):
  """Nested transformer params of ``config``: kernels N(0, 1/fan_in), gammas 1 +- 0.3, the rest
  N(0, 0.3) (random but well scaled, so outputs stay away from the activation's ends)."""
  import numpy as np
  from nst_jax.models import transformer as networks
  rng = np.random.default_rng(seed)
  params = {}
  for layer, shapes in networks.param_shapes(config).items():
    params[layer] = {}
    for name, shape in shapes.items():
      scale = 1. / np.sqrt(np.prod(shape[:-1])) if name == 'kernel' else 0.3
      base = 1. if name == 'gamma' else 0.
      params[layer][name] = (base + scale * rng.normal(size=shape)).astype(np.float32)
  return params


def synthetic_image(h: int, w: int, seed: int):
  """A smooth random uint8 RGB image, deterministic per seed: the accelerator suite's inputs
  (imported here, not at collection, so that collecting the tests does not import JAX)."""
  from nst_jax.bench.accelerator import inputs
  return inputs.synthetic_image(h, w, seed)


@pytest.fixture(scope='session')
def synthetic_files(tmp_path_factory):
  """{'content', 'style', 'style2', 'mask'}: synthetic image files (PNG)."""
  import numpy as np
  from nst_jax.io import images as image_io
  d = tmp_path_factory.mktemp('synthetic')
  files = {}
  for name, (h, w, seed) in {'content': (48, 64, 1), 'style': (64, 64, 2),
                             'style2': (56, 64, 3)}.items():
    files[name] = d / f'{name}.png'
    image_io.save_image(files[name], synthetic_image(h, w, seed))
  mask = np.zeros((48, 64), np.uint8)
  mask[8:40, 16:48] = 255
  files['mask'] = d / 'mask.png'
  image_io.save_image(files['mask'], np.repeat(mask[..., None], 3, -1))
  return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope='session', autouse=True)
def compile_cache_dir(tmp_path_factory):
  """One persistent compilation cache per test session (never the user's ~/.cache): in-process
  runs and run.py subprocesses (which inherit the environment) reuse each other's programs.

  Under pytest-xdist every worker has its own (its own basetemp): JAX writes cache entries
  without a lock or a rename, so a worker could read another's half-written entry."""
  import os
  path = tmp_path_factory.mktemp('jax_cache')
  old = os.environ.get('NST_JAX_COMPILE_CACHE')
  os.environ['NST_JAX_COMPILE_CACHE'] = str(path)
  yield path
  if old is None:
    os.environ.pop('NST_JAX_COMPILE_CACHE', None)
  else:
    os.environ['NST_JAX_COMPILE_CACHE'] = old


# --- Learned metrics: random weights in the converted format (nst_jax.evaluation.learned).

def random_lpips_arrays(backbone, seed=0):
  """Random LPIPS weights of ``backbone`` ('vgg' or 'alex'), finite and non-vanishing."""
  import numpy as np
  from nst_jax.models import lpips as lpips_lib
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in lpips_lib.param_shapes(backbone).items():
    if name.startswith('lin'):
      arrays[name] = rng.uniform(0., 1., shape).astype(np.float32)
    elif name.endswith('kernel'):
      arrays[name] = rng.normal(0., np.sqrt(2. / np.prod(shape[:3])), shape).astype(np.float32)
    else:
      arrays[name] = rng.normal(0., 0.05, shape).astype(np.float32)
  return arrays


def write_converted(path, name, arrays, hashes=None, digest=None):
  """What weights/convert_learned.py writes, with the official source hashes by default."""
  from nst_jax.evaluation import learned
  from nst_jax.io import files as fileio
  spec = learned.LEARNED[name]
  sources = {s.role: {'file': s.filename,
                      'sha256': (hashes or {}).get(s.role) or s.sha256 or 'ab' * 32}
             for s in spec.sources}
  meta = {'metric': name, 'format_version': learned.FORMAT_VERSION, 'sources': sources,
          'arrays_sha256': digest or learned.arrays_digest(arrays)}
  fileio.write_npz(path, arrays, meta)
  return path


class SignalAt:
  """Wraps a training task's sampler and sends SIGINT while the loader prepares ``step``: the
  training loop then stops after the chunk it is running."""

  def __init__(self, inner, step: int):
    self.inner, self.step = inner, step

  def batch(self, step):
    if step == self.step:
      os.kill(os.getpid(), signal.SIGINT)
    return self.inner.batch(step)


@pytest.fixture
def interrupt_content_at():
  """``interrupt_content_at(task, step)``: the task's content sampler sends SIGINT at ``step``."""
  def wrap(task, step: int):
    task.samplers['content'] = SignalAt(task.samplers['content'], step)
  return wrap
