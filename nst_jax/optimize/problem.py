"""The optimisation problem: a config and arrays become the static spec, numeric weights and
targets the loop optimises (:class:`Problem`), plus :func:`validate`, the check of every field
of a ``stylize`` config before anything expensive happens.

Nothing here touches files or flags (:mod:`nst_jax.jobs.stylize` adds those); the loop is
:mod:`nst_jax.optimize.loop`, the stages :mod:`nst_jax.optimize.stages`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nst_jax.config.stylize import INITS, LAYER_WEIGHTINGS, MODES
from nst_jax.errors import ConfigError
from nst_jax.io import images as image_io
from nst_jax.losses import controls, objective
from nst_jax.losses import style as style_lib
from nst_jax.losses import terms as terms_lib
from nst_jax.models import vgg
from nst_jax.optimize import method as method_lib
from nst_jax.runtime import devices


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for any invalid field of a ``stylize`` config (before anything expensive
  happens: before images are read and programs compiled)."""
  c = config
  if c.mode not in MODES:
    raise ConfigError(f'unknown mode {c.mode!r}; choose one of {", ".join(MODES)}')
  if c.init not in INITS:
    raise ConfigError(f'unknown init {c.init!r}; choose one of {", ".join(INITS)}')
  if (c.height or c.width) and not (c.height > 0 and c.width > 0):
    raise ConfigError(f'height and width must both be positive, got {c.height}x{c.width}')
  if not (c.height and c.width) and c.size <= 0:
    raise ConfigError(f'size must be a positive number of pixels, got {c.size}')
  if c.num_steps < 0:
    raise ConfigError(f'num_steps must be >= 0, got {c.num_steps}')
  if c.log_every <= 0 or c.save_every < 0:
    raise ConfigError('log_every must be >= 1 and save_every >= 0')
  if c.style_scale <= 0 or c.image_range <= 0:
    raise ConfigError('style_scale and image_range must be positive')
  if not 0. <= c.init_noise_ratio <= 1.:
    raise ConfigError(f'init_noise_ratio must be in [0, 1], got {c.init_noise_ratio}')
  for what, allowed in (('pooling', vgg.POOLINGS), ('conv_impl', vgg.CONV_IMPLS),
                        ('conv_dtype', devices.CONV_DTYPE_CHOICES),
                        ('loss_norm', terms_lib.LOSS_NORMS), ('tv_type', terms_lib.TV_TYPES),
                        ('color_control', controls.COLOR_CONTROLS),
                        ('color_match_mode', controls.COLOR_MATCH_MODES),
                        ('layer_weighting', LAYER_WEIGHTINGS)):
    if c[what] not in allowed:
      raise ConfigError(f'unknown {what} {c[what]!r}; choose one of {", ".join(allowed)}')
  if c.stages and c.height and c.width:
    raise ConfigError('stages set the longest side per stage; use them without height/width')
  controls.parse_stages(c.stages)
  if sum(bool(c[f]) for f in ('mask', 'masks', 'labels')) > 1:
    raise ConfigError('give only one of mask, masks and labels')
  if c.scale_mix_layer:
    vgg.canonical_layer(c.scale_mix_layer)
  method_lib.spec_and_hyper(c.optimizer, c.image_range)
  objective.layer_choice(c)
  _validate_style_loss(c)


def _validate_style_loss(c: ml_collections.ConfigDict) -> None:
  """The style loss, its options, and the features it cannot be combined with."""
  opts = style_lib.options(c)
  name = c.style_loss
  if name != 'gram':
    if c.chain or float(c.gram_shift) != 0.:
      raise ConfigError(f'chain and gram_shift (Novak & Nikulin) change Gram matrices; '
                        f'style_loss={name} has none (use style_loss=gram)')
    style_lib.check_masks(name, opts, bool(c.mask or c.masks or c.labels or c.style_masks))
  if (name != 'gram' or c.content_loss != 'mse') and int(c.spatial_shards) != 1:
    raise ConfigError(f'spatial sharding splits the Gram and content sums over image rows; '
                      f'style_loss={name} with content_loss={c.content_loss} is not split that '
                      'way: use spatial_shards=1 (or sweep configurations over the devices)')




def run_conv_impl(config: ml_collections.ConfigDict, shape: Sequence[int]) -> str:
  """The run's conv_impl: ``auto`` resolved by the run's length (:func:`vgg.resolve_conv_impl`;
  short runs compile direct convolutions, long ones Winograd's)."""
  return vgg.resolve_conv_impl(config.conv_impl, int(shape[0]) * int(shape[1]),
                               int(config.num_steps) + 1)


def run_conv_dtype(config: ml_collections.ConfigDict, conv_impl: str) -> str:
  """The run's conv_dtype: ``auto`` resolved per device (:mod:`nst_jax.runtime.devices`), and
  float32 where that gives bfloat16 on a CPU but the run compiles direct convolutions: XLA:CPU's
  bfloat16 direct convolutions are no faster (0.358 against 0.337 s per evaluation at 192x256 on
  the AMX Xeon); its gain is in Winograd's matrix products (0.17 against 0.26 s)."""
  dtype = devices.resolve_conv_dtype(config.conv_dtype)
  if (config.conv_dtype == 'auto' and dtype == 'bfloat16' and conv_impl == 'direct'
      and jax.default_backend() == 'cpu'):
    return 'float32'
  return dtype


def output_shape(config: ml_collections.ConfigDict, content: Optional[np.ndarray],
                 styles: Sequence[np.ndarray]) -> tuple[int, int]:
  """(H, W) of the result: exact height/width, else `size` as longest side of the content."""
  if config.height and config.width:
    return int(config.height), int(config.width)
  ref = content if content is not None else styles[0]
  h, w = ref.shape[:2]
  scale = config.size / max(h, w)
  return max(1, round(h * scale)), max(1, round(w * scale))


@dataclasses.dataclass
class Problem:
  """Everything one optimisation needs, as arrays plus static specs."""
  spec: objective.Spec
  mspec: method_lib.MethodSpec
  weights: objective.Weights
  hyper: dict
  targets: objective.Targets
  z0: jax.Array
  shape: tuple[int, int]
  content: Optional[np.ndarray] = None  # uint8 content at `shape`, for colour post-processing
  color_control: str = 'none'


@dataclasses.dataclass
class Inputs:
  """A problem before its targets: the validated, resized inputs of one config.

  :func:`build_problem` is :func:`prepare` plus :func:`problem_targets`; sweeps call
  :func:`prepare` per config and compute targets shared by a group once.
  """
  spec: objective.Spec
  mspec: method_lib.MethodSpec
  weights: objective.Weights
  hyper: dict
  z0: jax.Array
  shape: tuple[int, int]
  content: Optional[np.ndarray]           # uint8 content at `shape` (None without content)
  content_in: Any                         # the content the targets see (luminance: gray)
  styles_in: list[Any]                    # styles the targets see (resized, colour-controlled)
  blend: Optional[Any]                    # style blend weights (list, or a matrix), or None
  region: Optional[np.ndarray]            # (R, H, W) styled-region masks, or None
  style_masks: Optional[list]             # per-style masks at each style's size (or None)
  hold: Optional[np.ndarray]              # pixels held to the content, or None
  color_control: str = 'none'


def _regions(shape: tuple[int, int], content: Optional[np.ndarray], styles: list, masks: Any,
             style_masks: Any) -> tuple[Any, list, Any, Optional[np.ndarray]]:
  """Region masks (R, H, W), their styles, style masks and the held pixels (or None)."""
  if masks is None or len(masks) == 0:
    if any(s is None for s in styles):
      raise ConfigError("a 'none' style marks an unstyled region: it needs masks")
    return None, list(styles), style_masks, None
  if content is None:
    raise ConfigError('spatial control (masks) needs a content image')
  if len(masks) > 1 and len(masks) != len(styles):
    raise ConfigError(f'{len(masks)} masks need one style image each (or "none" for an '
                      f'unstyled region), got {len(styles)} style images')
  region = controls.prepare_masks(masks, shape)
  if len(masks) == 1:
    if any(s is None for s in styles):
      raise ConfigError("a 'none' style marks an unstyled region among several masks")
    styled, styles_kept, smasks = region, list(styles), style_masks
  else:
    keep = [i for i, s in enumerate(styles) if s is not None]
    if not keep:
      raise ConfigError('every region is unstyled: give at least one style image')
    styled, styles_kept = region[keep], [styles[i] for i in keep]
    smasks = None if style_masks is None else [style_masks[i] for i in keep]
  hold = controls.hold_mask(styled)
  return styled, styles_kept, smasks, (hold if hold.max() > 1e-3 else None)


def _check_size(spec: objective.Spec, shape: Sequence[int], what: str) -> None:
  """Every used layer needs at least one position (VGG pools 'VALID')."""
  if not spec.layers:
    return
  deepest = max(spec.layers, key=lambda l: vgg.STRIDE[l])
  if min(shape) < vgg.STRIDE[deepest]:
    raise ConfigError(f'{what} is {shape[0]}x{shape[1]} px, too small for {deepest}: its shorter '
                      f'side needs at least {vgg.STRIDE[deepest]} px (raise size or use '
                      'shallower layers)')


def prepare(config: ml_collections.ConfigDict, content: Optional[np.ndarray],
            styles: Sequence[Optional[np.ndarray]], init_image: Optional[np.ndarray] = None,
            masks: Optional[Sequence[np.ndarray]] = None,
            style_masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> Inputs:
  """Validates ``config`` and prepares its inputs: everything of :func:`build_problem` but the
  targets (which need the network). Arguments as for :func:`build_problem`."""
  validate(config)
  spec = objective.make_spec(config)
  styles = list(styles)
  real_styles = [s for s in styles if s is not None]
  needs_content = bool(spec.content_layers) or config.init in ('content', 'blend')
  if needs_content and content is None:
    raise ConfigError(f'mode={config.mode} with init={config.init} needs a content image')
  if spec.style_layers and not real_styles:
    raise ConfigError(f'mode={config.mode} needs at least one style image')
  if style_masks is not None and len(style_masks) != len(styles):
    raise ConfigError(f'{len(style_masks)} style masks for {len(styles)} style images')
  shape = output_shape(config, content, real_styles)
  cap = int(config.max_pixels)  # The user's cap holds for every output-size check.
  content_r: Any = None if content is None else image_io.resize_image(content, shape=shape,
                                                                      max_pixels=cap)
  region, kept, kept_masks, hold = _regions(shape, content_r, styles, masks, style_masks)
  longest = max(1, round(max(shape) * float(config.style_scale)))
  styles_r: Any = [image_io.resize_image(s, size=longest, max_pixels=cap) for s in kept]
  _check_size(spec, shape, 'the output')
  for s in styles_r:
    _check_size(spec, s.shape[:2], 'a style image (after style_scale)')
  for what, hw in [('the output', shape)] + [('a style image', s.shape[:2]) for s in styles_r]:
    style_lib.check_size(spec.style_loss, spec.style_options, spec.style_layers, vgg.STRIDE, hw,
                         what)
  smasks_r = None if kept_masks is None else [
      None if m is None else controls.prepare_masks([m], s.shape[:2], [f'style mask {i + 1}'])[0]
      for i, (m, s) in enumerate(zip(kept_masks, styles_r))]
  blend: Any = objective.parse_floats(config.style_blend_weights, 'style_blend_weights')
  if blend is not None and len(blend) != len(kept):
    raise ConfigError(f'{len(blend)} style_blend_weights for {len(kept)} style images')
  if config.scale_mix_layer:
    if len(kept) != 2 or region is not None and len(region) > 1 or blend is not None:
      raise ConfigError('scale_mix_layer mixes exactly two style images (coarse, fine), without '
                        'style_blend_weights or several masks')
    src = controls.scale_mix_sources(spec.style_layers, config.scale_mix_layer)
    blend = np.array([[float(s == i) for s in src] for i in range(2)], np.float32)
  color = config.color_control
  content_in: Any = content_r  # NumPy arrays; jax arrays from the colour helpers
  styles_in: Any = styles_r
  if color == 'luminance' and content_r is not None:
    content_in, styles_in = controls.luminance_inputs(content_r, styles_r)
    content_in, styles_in = np.asarray(content_in), [np.asarray(s) for s in styles_in]
  elif color == 'luminance':
    styles_in = [np.asarray(controls.gray3(controls.rgb_to_yiq(s)[..., 0])) for s in styles_r]
  elif color == 'match_style' and content_r is not None:
    styles_in = [np.asarray(controls.match_color(s, content_r, config.color_match_mode))
                 for s in styles_r]
  preserve, preserve_weight = bool(config.preserve), float(config.preserve_weight)
  if hold is not None and not (preserve or preserve_weight):
    hold = None
  conv_impl = run_conv_impl(config, shape)
  spec = spec._replace(project=hold is not None and preserve,
                       use_hold=hold is not None and preserve_weight != 0.,
                       conv_impl=conv_impl, conv_dtype=run_conv_dtype(config, conv_impl))
  content_w, style_w = objective.layer_weight_lists(config, spec)
  weights = objective.make_weights(
      spec, config.content_weight, config.style_weight, config.tv_weight, content_w, style_w,
      config.loss_scale, config.gram_shift, preserve_weight, int(config.seed))
  mspec, hyper = method_lib.spec_and_hyper(config.optimizer, config.image_range, spec.conv_dtype)
  mspec = method_lib.fit_history(mspec, config.num_steps, bool(config.save_every or config.resume))
  start: Any = initial_image(config, shape, content_in, styles_in, init_image)
  if color == 'luminance':
    start = np.asarray(controls.gray3(controls.rgb_to_yiq(start)[..., 0]))
  z0 = objective.from_image(start, spec)
  return Inputs(spec, mspec, weights, hyper, z0, shape, content_r, content_in, styles_in, blend,
                region, smasks_r, hold, color)


def problem_targets(params: Mapping, inputs: Inputs) -> objective.Targets:
  """The targets (content features, style Grams, masks) of prepared inputs."""
  i = inputs
  return objective.compute_targets(params, i.spec, i.content_in, i.styles_in, i.blend, i.region,
                                   i.style_masks, i.hold)


def build_problem(config: ml_collections.ConfigDict, params: Mapping,
                  content: Optional[np.ndarray], styles: Sequence[Optional[np.ndarray]],
                  init_image: Optional[np.ndarray] = None,
                  masks: Optional[Sequence[np.ndarray]] = None,
                  style_masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> Problem:
  """Resizes the uint8 RGB inputs per the config, computes targets and the initial image.

  The one way to build a problem: single runs, coarse-to-fine stages and sweeps (through
  :func:`prepare`) all come here.

  Args:
    config: a config (see :mod:`nst_jax.config.schema`).
    params: VGG19 params.
    content: (H, W, 3) uint8 content image (None for texture synthesis).
    styles: uint8 style images; with several masks a None entry marks an unstyled region.
    init_image: starting image for ``init='image'``.
    masks: optional float (H, W) region masks in [0, 1] of any size (resized to the output):
      one mask with any number of styles (blended) or one mask per style. Pixels no styled
      region covers are held to the content (``config.preserve``, ``config.preserve_weight``).
    style_masks: optional per-style masks (or None entries) selecting part of each style image.
  """
  i = prepare(config, content, styles, init_image, masks, style_masks)
  return Problem(i.spec, i.mspec, i.weights, i.hyper, problem_targets(params, i), i.z0, i.shape,
                 i.content, i.color_control)


def initial_image(config: ml_collections.ConfigDict, shape: tuple[int, int],
                  content: Optional[np.ndarray], styles: Sequence[np.ndarray],
                  init_image: Optional[np.ndarray] = None) -> np.ndarray:
  """The starting point in RGB 0..255 float32."""
  noise = lambda: np.asarray(jax.random.uniform(jax.random.PRNGKey(config.seed), (*shape, 3),
                                                jnp.float32, 0., 255.))
  if config.init == 'content':
    return np.asarray(content, np.float32)
  if config.init == 'noise':
    return noise()
  if config.init == 'style':
    return image_io.resize_image(styles[0], shape=shape, max_pixels=int(config.max_pixels)
                                 ).astype(np.float32)
  if config.init == 'image':
    if init_image is None:
      raise ConfigError("init='image' needs an init image (config.init_image)")
    return image_io.resize_image(init_image, shape=shape, max_pixels=int(config.max_pixels)
                                 ).astype(np.float32)
  r = float(config.init_noise_ratio)
  return (1. - r) * np.asarray(content, np.float32) + r * noise()
