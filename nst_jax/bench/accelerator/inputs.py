"""What the accelerator suite measures on: sizes per mode, weights and media.

:class:`Plan` holds every size, step count and repeat count, for the real suite
(:func:`real_plan`) and for ``--smoke`` (:func:`smoke_plan`: the same code paths at tiny sizes).
:class:`Inputs` gives each target its weights and media, made on first use: the real ones (the
shared photos and paintings, the converted VGG19, the built-in 26-style network, Magenta's Ghiasi
network, the shared video clip, the training photos) when they are found, else random weights
and synthetic media of the same shapes, and always those with ``--smoke`` (speed does not depend
on weight values). Each result line names what was used (``weights``, ``inputs``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Union

import jax.numpy as jnp
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.errors import NSTError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.io import log
from nst_jax.models import ghiasi
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.models import weights

SHARED = Path('../shared')  # beside the repository root, where the suite runs (as bench/)
CONTENT = SHARED / 'images' / 'tubingen.jpg'
STYLE = SHARED / 'images' / 'starry_night.jpg'
VIDEO = SHARED / 'videos' / 'bunny.mp4'


@dataclasses.dataclass(frozen=True)
class Plan:
  """Sizes (px, longest side unless said), step and repeat counts of every target."""
  smoke: bool
  lbfgs_size: int = 512          # the gatys2015 preset's size
  lbfgs_evals: int = 500         # the preset's num_steps
  max_lo: int = 512              # the largest-image search range (longest side)
  max_hi: int = 32768
  max_step: int = 64             # sizes searched are multiples of this
  max_steps: int = 3             # steps of the confirming run
  max_retries: int = 3           # smaller sizes tried when the confirming run runs out of memory
  sweep_ks: tuple[int, ...] = (8, 32)
  sweep_size: int = 256
  sweep_steps: int = 50
  sweep_repeats: int = 2
  net_size: int = 1024
  net_repeats: int = 20
  video_size: int = 1920         # longest side: 1080p for a 16:9 clip
  video_frames: int = 0          # 0 = the whole clip
  video_batch: int = 4           # the fast job's default batch_size
  synthetic_video: tuple[int, int, int, float] = (1080, 1920, 120, 30.)  # H, W, frames, fps
  train_size: int = 256          # configs/johnson2016.py
  train_batch: int = 4
  train_chunk: int = 20
  train_repeats: int = 3
  budget_s: float = 480.         # the whole suite: 8 minutes
  # Rough seconds per target on a GPU, to skip a target that would overrun the budget.
  expected_s: tuple[tuple[str, float], ...] = (
      ('lbfgs_500', 45.), ('sweep_k8', 45.), ('sweep_k32', 60.), ('fast_1024', 20.),
      ('ghiasi_1024', 25.), ('video_1080p', 45.), ('train_johnson2016', 45.),
      ('max_image', 90.))

  def expected(self, target: str) -> float:
    return 0. if self.smoke else dict(self.expected_s).get(target, 30.)


def real_plan(budget_s: float = 480.) -> Plan:
  return Plan(smoke=False, budget_s=budget_s)


def smoke_plan(budget_s: float = 170.) -> Plan:
  """Tiny sizes: the whole suite in well under a minute on a 2-core CPU (warm caches)."""
  return Plan(smoke=True, lbfgs_size=64, lbfgs_evals=4, max_lo=32, max_hi=128, max_step=16,
              max_steps=4, max_retries=1, sweep_ks=(2, 2), sweep_size=48, sweep_steps=2,
              sweep_repeats=1, net_size=64, net_repeats=2, video_size=64, video_frames=4,
              video_batch=2, synthetic_video=(48, 64, 6, 24.), train_size=32, train_batch=1,
              train_chunk=2, train_repeats=1, budget_s=budget_s)


def synthetic_image(h: int, w: int, seed: int) -> np.ndarray:
  """A smooth random uint8 RGB image (gradients, stripes and noise), deterministic per seed."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w] / max(h, w)
  chans = []
  for _ in range(3):
    a, b, c, f = rng.uniform(-1, 1, 4)
    chans.append(0.5 + 0.25 * (a * x + b * y) + 0.25 * np.sin(6.28 * f * 3 * (x + c * y)))
  img = np.stack(chans, -1) + rng.normal(0, 0.03, (h, w, 3))
  return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def random_vgg19(seed: int = 0) -> dict:
  """A randomly initialised VGG19 (N(0, 1/(9 C_in)) kernels: activations stay finite)."""
  rng = np.random.default_rng(seed)
  return {layer: {'kernel': jnp.asarray(rng.normal(0., np.sqrt(1. / (9 * shape[2])), shape),
                                        jnp.float32),
                  'bias': jnp.zeros(shape[3], jnp.float32)}
          for layer, shape in weights.VGG19_CONV_SHAPES.items()}


def random_ghiasi(path: Path, seed: int = 0) -> Path:
  """A converted-format Ghiasi ``.npz`` of random weights (what ``ghiasi.load`` accepts)."""
  rng = np.random.default_rng(seed)
  flat = {}
  for name, shape in ghiasi.expected_shapes().items():
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    flat[name] = (rng.normal(0., 0.5 / np.sqrt(fan_in), shape) if len(shape) > 1
                  else np.zeros(shape)).astype(np.float32)
  flat['eps'] = np.array(1e-3, np.float32)
  fileio.write_npz(path, flat)
  return path


class Inputs:
  """Weights and media for the targets, made on first use inside ``workdir`` (a temp dir)."""

  def __init__(self, plan: Plan, workdir: Union[str, Path]):
    self.plan, self.dir = plan, Path(workdir)
    self._cache: dict[str, Any] = {}
    self.provenance: dict[str, str] = {}

  def _once(self, key: str, make):
    if key not in self._cache:
      self._cache[key] = make()
    return self._cache[key]

  def _fallback(self, what: str, error: Exception) -> None:
    log.warning(f'accelerator suite: {what}: {error}; timing with random {what} instead')

  # --- Images ----------------------------------------------------------------------------

  def _image_file(self, real: Path, name: str, hw: tuple[int, int], seed: int) -> str:
    if not self.plan.smoke and real.is_file():
      self.provenance['inputs'] = 'shared'
      return str(real)
    self.provenance.setdefault('inputs', 'synthetic')
    path = self.dir / f'{name}.png'
    if not path.is_file():
      image_io.save_image(path, synthetic_image(*hw, seed))
    return str(path)

  def content_file(self) -> str:
    return self._once('content_file', lambda: self._image_file(CONTENT, 'content', (768, 1024), 1))

  def style_file(self) -> str:
    return self._once('style_file', lambda: self._image_file(STYLE, 'style', (640, 1024), 2))

  def content(self) -> np.ndarray:
    return self._once('content', lambda: image_io.load_image(self.content_file()))

  def style(self) -> np.ndarray:
    return self._once('style', lambda: image_io.load_image(self.style_file()))

  # --- Weights ---------------------------------------------------------------------------

  def vgg(self) -> dict:
    def make():
      if not self.plan.smoke:
        try:
          params = weights.load_vgg19(allow_download=False)
          self.provenance['vgg'] = 'real'
          return params
        except (NSTError, ImportError, OSError) as e:  # missing files, or onnx to convert them
          self._fallback('VGG19 weights', e)
      self.provenance['vgg'] = 'random'
      return random_vgg19()
    return self._once('vgg', make)

  def fast_model(self) -> str:
    """A model directory holding the built-in 26-style network (random weights if missing)."""
    def make():
      config, params = networks.multistyle26(), None
      if not self.plan.smoke:
        try:
          m = model_io.load_builtin('multistyle26')
          config, params = m.config, m.params
          self.provenance['fast'] = 'real'
        except (NSTError, ImportError, OSError) as e:  # missing files, or onnx to convert them
          self._fallback('multistyle26 weights', e)
      if params is None:
        self.provenance['fast'] = 'random'
        params = network_params.init_params(config, seed=0)
      return str(model_io.save_model(self.dir / 'multistyle26', config, params))
    return self._once('fast_model', make)

  def ghiasi_weights(self) -> str:
    def make():
      if not self.plan.smoke:
        try:
          path = str(ghiasi.resolve())
          ghiasi.load(path)
          self.provenance['ghiasi'] = 'real'
          return path
        except (NSTError, ImportError, OSError) as e:  # missing files, or onnx to convert them
          self._fallback('Ghiasi weights', e)
      self.provenance['ghiasi'] = 'random'
      return str(random_ghiasi(self.dir / 'ghiasi_random.npz'))
    return self._once('ghiasi', make)

  def no_onnx_dir(self) -> str:
    """An empty directory: the Ghiasi benchmark then skips its onnxruntime (CPU) comparison."""
    d = self.dir / 'no_onnx'
    d.mkdir(exist_ok=True)
    return str(d)

  # --- Video and training data -------------------------------------------------------------

  def video(self) -> tuple[str, str]:
    """(path, 'shared' | 'synthetic'): the shared clip, else a synthetic one."""
    def make():
      if not self.plan.smoke and VIDEO.is_file():
        return str(VIDEO), 'shared'
      from nst_jax.io import video  # pylint: disable=g-import-not-at-top
      h, w, n, fps = self.plan.synthetic_video
      path = self.dir / 'synthetic.mp4'
      base = synthetic_image(h, w, 3)
      with video.VideoWriter(path, fps, (h, w)) as writer:
        for i in range(n):
          writer.write(np.roll(base, 4 * i, axis=1))
      return str(path), 'synthetic'
    return self._once('video', make)

  def train_overrides(self) -> dict:
    """Data fields for the training benchmark: the shared photos, else synthetic ones."""
    def make():
      c = train_schema.train_config()
      if not self.plan.smoke and Path(c.data_dir).is_dir() and STYLE.is_file():
        self.provenance['train_data'] = 'shared'
        return {}
      self.provenance['train_data'] = 'synthetic'
      d = self.dir / 'photos'
      side = max(2 * self.plan.train_size, 64)
      for i in range(4 if self.plan.smoke else 16):
        image_io.save_image(d / f'photo{i}.png', synthetic_image(side, side + 16, 10 + i))
      return {'data_dir': str(d), 'style': self.style_file(), 'num_images': 0}
    return self._once('train', make)

  def info(self, *keys: str) -> dict[str, Optional[str]]:
    return {k: self.provenance.get(k) for k in keys}
