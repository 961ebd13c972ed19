"""Know before you run: a peak-memory estimate for a problem, printed, and a one-line refusal.

Where the memory of a run goes (measured with XLA's memory analysis on CPU, gatys2015 layers):

* the process before the optimisation: Python, JAX, the VGG19 weights (host and device copies),
  the targets (``rss_now``);
* the optimiser state: the image, its gradient and, for L-BFGS, ``2 x history`` image-sized
  vectors (100 pairs at 1024x768 are 1.9 GB; :func:`nst_jax.optimize.method.fit_history` caps the
  history at ``num_steps``, ``optimizer.history_dtype=bfloat16`` halves it);
* the temporaries of one evaluation (forward activations kept for the backward pass and their
  cotangents, dominated by VGG block 1 at full resolution, ~1.8 KB per pixel; Winograd adds its
  transformed and flipped kernels, ~210 MB, and transformed tiles, ~0.2 KB per pixel);
* an overhead: allocator slack and XLA's memory while compiling (~200 MB for the Winograd
  programs with a cold compilation cache), fit on measured runs.

:func:`estimate` uses the formula (no compilation); :func:`xla_estimate` uses XLA's memory
analysis of the compiled chunk program when a compiled program is at hand. :func:`check` prints
the estimate and raises :class:`InsufficientMemoryError` (an ``NSTError``: one line, exit 1) with
what it needs, what is free and which option makes it fit, instead of an OOM kill.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax

from nst_jax.errors import ImageError, NSTError
from nst_jax.io import log
from nst_jax.losses import objective
from nst_jax.losses import style as style_lib
from nst_jax.models import vgg
from nst_jax.optimize import method as method_lib
from nst_jax.optimize import problem as problem_lib

MB = 2 ** 20
GB = 2 ** 30
# Calibration (XLA memory analysis of the chunk program, gatys2015 layers, 128-512 px on CPU).
# (Refit 2026-12-02 on the chunk programs at 192x256 and 384x512 after losses.gram's own VJP.)
TEMP_PER_PIXEL = {'direct': 1820, 'winograd': 2000}   # bytes per output pixel
TEMP_FIXED = {'direct': 53 * MB, 'winograd': 264 * MB}  # flipped / transformed kernels
# Max pooling's gradient (a mask per 2x2 block) keeps more than average pooling's (measured on the
# same chunk programs with pooling=max: +530 bytes per pixel; gatys2015 uses avg).
TEMP_MAX_POOL_PER_PIXEL = 530


def temp_per_pixel(impl: str, pooling: str = 'avg') -> int:
  """Bytes of evaluation temporaries per output pixel (``impl``: 'direct' or 'winograd')."""
  return TEMP_PER_PIXEL[impl] + (TEMP_MAX_POOL_PER_PIXEL if pooling == 'max' else 0)


def temp_bytes(impl: str, pooling: str, pixels: int) -> int:
  """Bytes of one evaluation's temporaries at ``pixels`` output pixels."""
  return TEMP_FIXED[impl] + temp_per_pixel(impl, pooling) * pixels


# What measured peaks add to the model: allocator slack and host copies, plus XLA's own memory
# while compiling the programs (a cold compilation cache; a warm one needs less, so the estimate
# errs on the safe side). Direct: fit on whole `run.py` runs of 3 steps at 384x512 and 768x1024,
# cold cache (2026-11-25). Winograd: refit 2026-12-02 on `bench --memory --conv_impl=winograd2`
# with cold caches (3 steps at 192x256, 384x512, 768x1024 and 100 steps at 192x256: measured
# peak minus process, state and temporaries = 340-364 MB + ~210 B per pixel; cold minus warm
# peaks, XLA's compilation, 70-200 MB). The 2026-11-25 fit (700 MB) predated losses.gram's own VJP
# and overestimated those runs by 11-36%.
OVERHEAD_FIXED = {'direct': 60 * MB, 'winograd': 160 * MB}
OVERHEAD_PER_PIXEL = {'direct': 650, 'winograd': 210}
COMPILE = {'direct': 100 * MB, 'winograd': 200 * MB}
SAFETY = 0.95         # refuse when the estimate is above this share of the free memory


class InsufficientMemoryError(NSTError):
  """The run would need more memory than is free."""


@dataclasses.dataclass
class Estimate:
  rss_now: int        # resident bytes of this process before the optimisation
  state: int          # optimiser state (image, gradient, history)
  temp: int           # temporaries of one evaluation
  overhead: int
  source: str         # 'formula' or 'xla'

  @property
  def peak(self) -> int:
    return self.rss_now + self.state + self.temp + self.overhead

  def as_dict(self) -> dict:
    return {'estimated_peak_mb': round(self.peak / MB), 'rss_now_mb': round(self.rss_now / MB),
            'state_mb': round(self.state / MB), 'temp_mb': round(self.temp / MB),
            'overhead_mb': round(self.overhead / MB), 'estimate_source': self.source}

  def line(self) -> str:
    return (f'memory estimate ({self.source}): {self.peak / GB:.2f} GB peak = process '
            f'{self.rss_now / GB:.2f} + optimiser state {self.state / GB:.2f} + evaluation '
            f'{self.temp / GB:.2f} + overhead {self.overhead / GB:.2f}')


def rss_bytes() -> int:
  """Resident memory of this process now."""
  try:
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
  except (OSError, ValueError, IndexError):
    import resource  # pylint: disable=g-import-not-at-top
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_bytes() -> Optional[int]:
  """Memory this process may still take: MemAvailable, capped by a cgroup limit (None if
  unknown). On an accelerator: the device's free bytes."""
  dev = jax.devices()[0]
  if dev.platform != 'cpu':
    try:
      stats = dev.memory_stats() or {}
      return int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0))
    except Exception:  # pylint: disable=broad-except
      return None
  free = None
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          free = int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    with open('/sys/fs/cgroup/memory.max') as f:
      limit = f.read().strip()
    with open('/sys/fs/cgroup/memory.current') as f:
      used = int(f.read().strip())
    if limit != 'max':
      room = int(limit) - used
      free = room if free is None else min(free, room)
  except (OSError, ValueError):
    pass
  return free


def _impl(conv_impl: str) -> str:
  if conv_impl == 'auto':
    conv_impl = 'winograd2' if jax.default_backend() == 'cpu' else 'direct'
  return 'direct' if conv_impl == 'direct' else 'winograd'


def state_bytes(mspec: method_lib.MethodSpec, pixels: int) -> int:
  """The optimiser state: image, gradient (and Adam's moments, roughly) plus the history."""
  return 4 * 3 * pixels * 4 + method_lib.history_bytes(mspec, pixels)


def separate_shards(config) -> int:
  """Devices with memories of their own that one image is split over (``spatial_shards``): on
  accelerators each holds ~1/N of the image's memory; on the CPU, forced host devices share one
  RAM, so the whole image counts (1)."""
  n = int(config.get('spatial_shards', 1) or 0) if config is not None else 1
  devices = jax.devices()
  if devices[0].platform == 'cpu':
    return 1
  return len(devices) if n <= 0 else max(1, min(n, len(devices)))


def _device_pixels(shape, shards: int) -> int:
  """The pixels of an (H, W) image one of ``shards`` devices holds (rounded up)."""
  return -(-int(shape[0]) * int(shape[1]) // max(1, shards))


def estimate(shape, spec, mspec, rss_now: Optional[int] = None, shards: int = 1) -> Estimate:
  """The calibrated formula for an (H, W) problem (no compilation); with ``shards`` > 1 the
  memory of one of the devices its rows are split over (pixel-proportional parts / shards;
  weights and transformed kernels on each device)."""
  pixels = _device_pixels(shape, shards)
  impl = _impl(spec.conv_impl)
  temp = temp_bytes(impl, spec.pooling, pixels) + style_loss_bytes(shape, spec)
  return Estimate(rss_bytes() if rss_now is None else rss_now, state_bytes(mspec, pixels), temp,
                  overhead(pixels, impl), 'formula')


def style_loss_bytes(shape, spec) -> int:
  """What a non-Gram style loss (or STROTSS's content term) adds to an evaluation's temporaries
  (:func:`nst_jax.losses.style.loss_temp_bytes`; style images taken at the output's size)."""
  h, w = int(shape[0]), int(shape[1])
  dims = lambda l: (h // vgg.STRIDE[l], w // vgg.STRIDE[l], vgg.CHANNELS[l])
  extra = style_lib.loss_temp_bytes(spec.style_loss, spec.style_options,
                                    [dims(l) for l in spec.style_layers])
  if spec.content_loss == 'self_similarity' and spec.content_layers:
    extra += style_lib.loss_temp_bytes('strotss', spec.style_options,
                                       [dims(l) for l in spec.content_layers])
  return extra


def overhead(pixels: int, impl: str) -> int:
  return OVERHEAD_FIXED[impl] + OVERHEAD_PER_PIXEL[impl] * pixels + COMPILE[impl]


def xla_estimate(compiled, shape, mspec, rss_now: Optional[int] = None,
                 conv_impl: str = 'auto') -> Optional[Estimate]:
  """The estimate from XLA's memory analysis of a compiled chunk program (None if unavailable)."""
  try:
    ma = compiled.memory_analysis()
    temp = int(ma.temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except
    return None
  if temp <= 0:
    return None
  pixels = int(shape[0]) * int(shape[1])
  return Estimate(rss_bytes() if rss_now is None else rss_now, state_bytes(mspec, pixels), temp,
                  overhead(pixels, _impl(conv_impl)), 'xla')


def _fits(est: Estimate, free: int) -> bool:
  return est.peak <= SAFETY * free


def suggestion(est: Estimate, shape, spec, mspec, free: int, shards: int = 1) -> str:
  """The first option (cheapest first) with which the formula says the run fits, else the
  largest size that fits. On accelerators, more of the visible devices (``spatial_shards``)
  come first: they change nothing in the result."""
  devices = jax.devices()
  if devices[0].platform != 'cpu' and len(devices) > shards:
    wider = estimate(shape, spec, mspec, est.rss_now, len(devices))
    if _fits(wider, free):
      return f'--config.spatial_shards={len(devices)}'
  pixels = _device_pixels(shape, shards)
  impl = _impl(spec.conv_impl)

  def fits(state=None, impl_=impl) -> bool:
    temp = temp_bytes(impl_, spec.pooling, pixels) + style_loss_bytes(shape, spec)
    e = dataclasses.replace(est, state=est.state if state is None else state, temp=temp,
                            overhead=overhead(pixels, impl_))
    return _fits(e, free)

  if mspec.name == 'lbfgs_torch' and mspec.history_dtype == 'float32' and fits(
      state_bytes(mspec._replace(history_dtype='bfloat16'), pixels)):
    return '--config.optimizer.history_dtype=bfloat16'
  if mspec.name in ('lbfgs_torch', 'lbfgs'):
    for m in (50, 20, 10, 5):
      if m < mspec.history_size and fits(state_bytes(mspec._replace(history_size=m), pixels)):
        return f'--config.optimizer.history_size={m}'
  if impl == 'winograd' and fits(impl_='direct'):
    return '--config.conv_impl=direct'
  per_px = (est.state + style_loss_bytes(shape, spec)
            + (temp_per_pixel(impl, spec.pooling) + OVERHEAD_PER_PIXEL[impl]) * pixels) / pixels
  fixed = est.peak - per_px * pixels
  max_px = (SAFETY * free - fixed) / per_px if per_px else 0
  if max_px > 0:
    return f'--config.size={int(max(shape) * (max_px / pixels) ** 0.5)} (or stages ending there)'
  return 'a machine with more memory'


def check(shape, spec, mspec, config=None, compiled=None, quiet: bool = False) -> dict:
  """Prints the estimate; raises InsufficientMemoryError if it does not fit. Returns the
  estimate as a dict (for the run's JSON)."""
  shards = separate_shards(config)
  est = (xla_estimate(compiled, shape, mspec) if compiled is not None else None) or estimate(
      shape, spec, mspec, shards=shards)
  limit = float(config.get('memory_limit_gb', 0.) or 0.) if config is not None else 0.
  free = int(limit * GB) if limit > 0 else available_bytes()
  out = est.as_dict()
  out['free_mb'] = None if free is None else round(free / MB)
  if not quiet:
    log.info(est.line() + ('' if free is None else f'; {free / GB:.2f} GB free'))
  enabled = True if config is None else bool(config.get('memory_check', True))
  if enabled and free is not None and not _fits(est, free):
    h, w = shape
    per = f' per device ({shards} devices)' if shards > 1 else ''
    raise InsufficientMemoryError(
        f'{h}x{w} needs about {est.peak / GB:.1f} GB{per} ({est.source} estimate) but only '
        f'{free / GB:.1f} GB is free; it fits with '
        f'{suggestion(est, shape, spec, mspec, free, shards)} '
        '(or --config.memory_check=false to try anyway)')
  return out


def check_config(config, content, styles, quiet: bool = False) -> dict:
  """:func:`check` for a config and its (full-size) input images, before anything is built."""
  real = [s for s in styles if s is not None]
  if content is None and not real:
    return {}
  shape = problem_lib.output_shape(config, content, real)
  cap = int(config.get('max_pixels', 0) or 0)
  if cap and shape[0] * shape[1] > cap:  # The user's cap first: it is the cheaper answer.
    raise ImageError(f'the output {shape[1]}x{shape[0]} = {shape[0] * shape[1] / 1e6:.1f} '
                     f'megapixels is above the cap of {cap / 1e6:g} megapixels; use a smaller '
                     'size or raise the cap with max_pixels (config field `max_pixels`)')
  conv_impl = problem_lib.run_conv_impl(config, shape)
  spec = objective.make_spec(config)._replace(
      conv_impl=conv_impl, conv_dtype=problem_lib.run_conv_dtype(config, conv_impl))
  mspec, _ = method_lib.spec_and_hyper(config.optimizer, config.image_range)
  mspec = method_lib.fit_history(mspec, config.num_steps, bool(config.save_every or config.resume))
  return check(shape, spec, mspec, config, quiet=quiet)
