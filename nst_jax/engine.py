"""The optimisation engine: build a problem from a config and arrays, run it in jitted chunks.

Nothing here touches files or flags; :mod:`nst_jax.runner` adds those. The loop over steps is a
``lax.scan`` inside one jitted function per chunk of ``log_every`` steps, so the host only syncs
once per chunk (to print progress, check for NaN/Inf and save intermediate images).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from jax import lax
import ml_collections
import numpy as np

from nst_jax import config as config_lib
from nst_jax import compile_cache, controls, image_io, losses, objective, optim, vgg
from nst_jax.errors import ConfigError, NonFiniteLossError


def _floats(text, what: str) -> Optional[list[float]]:
  if text is None or (isinstance(text, str) and not text.strip()):
    return None
  if isinstance(text, str):
    text = [t for t in text.replace(' ', ',').split(',') if t]
  try:
    return [float(t) for t in text]
  except (TypeError, ValueError):
    raise ConfigError(f'{what} must be comma-separated numbers, got {text!r}') from None


def _layer_weights(text, layers, what):
  values = _floats(text, what)
  if values is not None and len(values) != len(layers):
    raise ConfigError(f'{what} has {len(values)} values for {len(layers)} layers {list(layers)}')
  return values


def layer_weight_lists(config, spec: objective.Spec
                       ) -> tuple[Optional[list], Optional[list]]:
  """The config's per-layer content and style weights (None = 1/L each).

  Explicit ``*_layer_weights`` win; ``layer_weighting='geometric'`` fills in the others.
  """
  content_w = _layer_weights(config.content_layer_weights, spec.content_layers,
                             'content_layer_weights')
  style_w = _layer_weights(config.style_layer_weights, spec.style_layers, 'style_layer_weights')
  if config.get('layer_weighting', 'uniform') == 'geometric':
    base = float(config.geometric_base)
    content_w = content_w or objective.geometric_layer_weights(spec.content_layers, base, True)
    style_w = style_w or objective.geometric_layer_weights(spec.style_layers, base)
  return content_w, style_w


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for any invalid field (before anything expensive happens)."""
  c = config
  if c.mode not in config_lib.MODES:
    raise ConfigError(f'unknown mode {c.mode!r}; choose one of {", ".join(config_lib.MODES)}')
  if c.init not in config_lib.INITS:
    raise ConfigError(f'unknown init {c.init!r}; choose one of {", ".join(config_lib.INITS)}')
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
                        ('loss_norm', losses.LOSS_NORMS), ('tv_type', losses.TV_TYPES)):
    if c[what] not in allowed:
      raise ConfigError(f'unknown {what} {c[what]!r}; choose one of {", ".join(allowed)}')
  for what, allowed in (('color_control', controls.COLOR_CONTROLS),
                        ('color_match_mode', controls.COLOR_MATCH_MODES),
                        ('layer_weighting', config_lib.LAYER_WEIGHTINGS)):
    if c.get(what, allowed[0]) not in allowed:
      raise ConfigError(f'unknown {what} {c[what]!r}; choose one of {", ".join(allowed)}')
  if c.get('stages') and c.height and c.width:
    raise ConfigError('stages set the longest side per stage; use them without height/width')
  controls.parse_stages(c.get('stages', ''))
  if sum(bool(c.get(f)) for f in ('mask', 'masks', 'labels')) > 1:
    raise ConfigError('give only one of mask, masks and labels')
  if c.get('scale_mix_layer'):
    vgg.canonical_layer(c.scale_mix_layer)
  optim.spec_and_hyper(c.optimizer, c.image_range)
  make_spec(c)


def make_spec(config) -> objective.Spec:
  content_layers = vgg.parse_layers(config.content_layers)
  style_layers = vgg.parse_layers(config.style_layers)
  for l in content_layers + style_layers:
    if l.endswith('_pool'):
      raise ConfigError(f'{l} is a pooling layer; content and style layers must be conv layers')
  if config.mode == 'content_reconstruction':
    style_layers = ()
  elif config.mode == 'texture_synthesis':
    content_layers = ()
  if not content_layers and not style_layers:
    raise ConfigError('no content or style layers: nothing to optimise')
  chain = bool(config.get('chain', False)) and bool(style_layers)
  if chain and len(style_layers) < 2:
    raise ConfigError('chain (correlation chain) needs at least two style layers')
  return objective.Spec(content_layers, style_layers, config.pooling, config.conv_impl,
                        config.loss_norm, config.tv_type, float(config.image_range),
                        use_tv=float(config.tv_weight) != 0., chain=chain,
                        remat=','.join(map(str, vgg.parse_remat(config.get('remat', 'none')))))


def output_shape(config, content: Optional[np.ndarray], styles: Sequence[np.ndarray]):
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
  mspec: optim.MethodSpec
  weights: objective.Weights
  hyper: dict
  targets: objective.Targets
  z0: jax.Array
  shape: tuple[int, int]
  content: Optional[np.ndarray] = None  # uint8 content at `shape`, for colour post-processing
  color_control: str = 'none'


def _regions(shape, content, styles, masks, style_masks):
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


def _check_size(spec: objective.Spec, shape, what: str) -> None:
  """Every used layer needs at least one position (VGG pools 'VALID')."""
  if not spec.layers:
    return
  deepest = max(spec.layers, key=lambda l: vgg.STRIDE[l])
  if min(shape) < vgg.STRIDE[deepest]:
    raise ConfigError(f'{what} is {shape[0]}x{shape[1]} px, too small for {deepest}: its shorter '
                      f'side needs at least {vgg.STRIDE[deepest]} px (raise size or use '
                      'shallower layers)')


def build_problem(config, params: Mapping, content: Optional[np.ndarray],
                  styles: Sequence[Optional[np.ndarray]], init_image: Optional[np.ndarray] = None,
                  masks: Optional[Sequence[np.ndarray]] = None,
                  style_masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> Problem:
  """Resizes the uint8 RGB inputs per the config, computes targets and the initial image.

  Args:
    config: a config (see :mod:`nst_jax.config`).
    params: VGG19 params.
    content: (H, W, 3) uint8 content image (None for texture synthesis).
    styles: uint8 style images; with several masks a None entry marks an unstyled region.
    init_image: starting image for ``init='image'``.
    masks: optional float (H, W) region masks in [0, 1] of any size (resized to the output):
      one mask with any number of styles (blended) or one mask per style. Pixels no styled
      region covers are held to the content (``config.preserve``, ``config.preserve_weight``).
    style_masks: optional per-style masks (or None entries) selecting part of each style image.
  """
  validate(config)
  spec = make_spec(config)
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
  cap = int(config.max_pixels)  # The user's cap holds for every output-size check (issue 10).
  content_r = None if content is None else image_io.resize_image(content, shape=shape,
                                                                 max_pixels=cap)
  region, styles, style_masks, hold = _regions(shape, content_r, styles, masks, style_masks)
  longest = max(1, round(max(shape) * float(config.style_scale)))
  styles_r = [image_io.resize_image(s, size=longest, max_pixels=cap) for s in styles]
  _check_size(spec, shape, 'the output')
  for s in styles_r:
    _check_size(spec, s.shape[:2], 'a style image (after style_scale)')
  smasks_r = None if style_masks is None else [
      None if m is None else controls.prepare_masks([m], s.shape[:2], [f'style mask {i + 1}'])[0]
      for i, (m, s) in enumerate(zip(style_masks, styles_r))]
  blend = _floats(config.style_blend_weights, 'style_blend_weights')
  if blend is not None and len(blend) != len(styles):
    raise ConfigError(f'{len(blend)} style_blend_weights for {len(styles)} style images')
  if config.get('scale_mix_layer'):
    if len(styles) != 2 or region is not None and len(region) > 1 or blend is not None:
      raise ConfigError('scale_mix_layer mixes exactly two style images (coarse, fine), without '
                        'style_blend_weights or several masks')
    src = controls.scale_mix_sources(spec.style_layers, config.scale_mix_layer)
    blend = np.array([[float(s == i) for s in src] for i in range(2)], np.float32)
  color = config.get('color_control', 'none')
  content_in, styles_in = content_r, styles_r
  if color == 'luminance' and content_r is not None:
    content_in, styles_in = controls.luminance_inputs(content_r, styles_r)
    content_in, styles_in = np.asarray(content_in), [np.asarray(s) for s in styles_in]
  elif color == 'luminance':
    styles_in = [np.asarray(controls.gray3(controls.rgb_to_yiq(s)[..., 0])) for s in styles_r]
  elif color == 'match_style' and content_r is not None:
    styles_in = [np.asarray(controls.match_color(s, content_r, config.color_match_mode))
                 for s in styles_r]
  preserve, preserve_weight = bool(config.get('preserve', True)), float(
      config.get('preserve_weight', 0.))
  if hold is not None and not (preserve or preserve_weight):
    hold = None
  spec = spec._replace(project=hold is not None and preserve,
                       use_hold=hold is not None and preserve_weight != 0.)
  targets = objective.compute_targets(params, spec, content_in, styles_in, blend, region,
                                      smasks_r, hold)
  content_w, style_w = layer_weight_lists(config, spec)
  weights = objective.make_weights(
      spec, config.content_weight, config.style_weight, config.tv_weight, content_w, style_w,
      config.loss_scale, config.get('gram_shift', 0.), preserve_weight)
  mspec, hyper = optim.spec_and_hyper(config.optimizer, config.image_range)
  mspec = optim.fit_history(mspec, config.num_steps, bool(config.save_every or config.resume))
  start = initial_image(config, shape, content_in, styles_in, init_image)
  if color == 'luminance':
    start = np.asarray(controls.gray3(controls.rgb_to_yiq(start)[..., 0]))
  z0 = objective.from_image(start, spec)
  return Problem(spec, mspec, weights, hyper, targets, z0, shape, content_r, color)


def initial_image(config, shape, content, styles, init_image=None) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# Jitted pieces. Params, targets and weights are arguments (not closed-over constants), so the
# 80 MB of weights never become HLO literals and one compiled program serves any inputs.


def _fns(params, targets, weights, spec):
  value_fn = lambda z: objective.objective(z, params, targets, weights, spec)
  return value_fn, jax.value_and_grad(value_fn)


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def init_state(z0, params, targets, weights, hyper, spec, mspec):
  _, value_and_grad = _fns(params, targets, weights, spec)
  return optim.make_method(mspec).init(z0, hyper, value_and_grad)


def chunk_fn(state, params, targets, weights, spec, mspec, length):
  """``length`` optimisation steps as one ``lax.scan``; returns (state, (losses, evals))."""
  value_fn, value_and_grad = _fns(params, targets, weights, spec)
  method = optim.make_method(mspec)
  def body(s, _):
    s, (loss, evals) = method.step(s, value_and_grad, value_fn)
    return s, (loss / weights.loss_scale, evals)
  return lax.scan(body, state, None, length=length)


run_chunk = jax.jit(chunk_fn, static_argnames=('spec', 'mspec', 'length'), donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('spec',))
def terms(z, params, targets, weights, spec):
  return objective.loss_terms(z, params, targets, weights, spec)


@dataclasses.dataclass
class Result:
  image: np.ndarray                  # uint8 (H, W, 3)
  losses: list[float]                # objective (unscaled) at every step's evaluation
  evals: int                         # objective+gradient evaluations, line searches included
  steps: int
  terms: list[dict]                  # loss terms at each chunk boundary, with their step
  timings: dict
  state: Any = None


def optimize(problem: Problem, params: Mapping, num_steps: int, chunk: int = 50,
             on_chunk: Optional[Callable[[int, Any, dict], None]] = None,
             state: Any = None, start_step: int = 0, history: Optional[dict] = None,
             profile_dir: str = '') -> Result:
  """Runs ``num_steps`` steps in jitted chunks; calls ``on_chunk(step, state, info)`` after each.

  Raises NonFiniteLossError (with ``.image`` = the last finite image and ``.step``) if the
  objective becomes NaN or Inf.
  """
  p = problem
  args = (params, p.targets, p.weights)
  t0 = time.perf_counter()
  if state is None:
    state = init_state(p.z0, *args, p.hyper, spec=p.spec, mspec=p.mspec)
  hist = history or {'losses': [], 'evals': optim.init_evals(p.mspec), 'terms': []}
  timings = {'compile_s': 0., 'run_s': 0.}
  compiled = {}
  step = start_step
  last_good = np.asarray(state_image(state, p))
  while step < num_steps:
    n = min(chunk, num_steps - step)
    if n not in compiled:  # Memoised per shapes: a second run of the same problem reuses it.
      compiled[n], seconds = compile_cache.compiled(run_chunk, state, *args, spec=p.spec,
                                                    mspec=p.mspec, length=n)
      timings['compile_s'] += seconds
    tr = time.perf_counter()
    if profile_dir and step == start_step:
      with jax.profiler.trace(profile_dir):
        with jax.profiler.StepTraceAnnotation('chunk', step_num=step):
          state, (chunk_losses, evals) = compiled[n](state, *args)
          chunk_losses = np.asarray(chunk_losses)
    else:
      state, (chunk_losses, evals) = compiled[n](state, *args)
      chunk_losses = np.asarray(chunk_losses)
    timings['run_s'] += time.perf_counter() - tr
    z_device = state_image(state, p)
    z = np.asarray(z_device)
    if not np.all(np.isfinite(chunk_losses)) or not np.all(np.isfinite(z)):
      bad = step + int(np.argmin(np.isfinite(chunk_losses))) if not np.all(
          np.isfinite(chunk_losses)) else step + n
      err = NonFiniteLossError(
          f'the loss became NaN/Inf at step {bad}; stopped, keeping the image of step {step}. '
          'Lower the learning rate or the loss weights (or raise loss_scale for L-BFGS).')
      err.image, err.step = render(p, last_good), step
      raise err
    step += n
    last_good = z
    hist['losses'].extend(float(v) for v in chunk_losses)
    hist['evals'] += int(np.sum(evals))
    t = {k: float(v) for k, v in terms(z_device, *args, spec=p.spec._replace(
        conv_impl=objective.target_spec(p.spec).conv_impl)).items()}  # cheap to compile
    t['step'] = step
    hist['terms'].append(t)
    if on_chunk is not None:
      on_chunk(step, state, {'terms': t, 'evals': hist['evals'], 'timings': timings,
                             'history': hist})
  timings['total_s'] = time.perf_counter() - t0
  steps_run = step - start_step
  timings['s_per_step'] = timings['run_s'] / steps_run if steps_run else 0.
  image = render(p, last_good)
  return Result(image, hist['losses'], hist['evals'], step, hist['terms'], timings, state)


def state_image(state, problem: Problem):
  return optim.make_method(problem.mspec).image(state)


def render(problem: Problem, z) -> np.ndarray:
  """The uint8 RGB result of an optimiser-domain image: held pixels composed from the content,
  and the content's chroma put back for ``color_control`` luminance / original_colors."""
  x = objective.compose(jnp.asarray(z), problem.targets, problem.spec)
  image = image_io.to_uint8(np.asarray(objective.to_image(x, problem.spec)))
  if problem.color_control in ('luminance', 'original_colors') and problem.content is not None:
    image = controls.original_colors(image, problem.content)
  return image


def stage_configs(config) -> list[ml_collections.ConfigDict]:
  """One config per coarse-to-fine stage (``config.stages``), or ``[config]`` without stages.

  Each stage sets ``size`` and ``num_steps``; stages after the first start from the previous
  stage's result (``init='image'``, upsampled by the problem builder).
  """
  stages = controls.parse_stages(config.get('stages', ''))
  if not stages:
    return [config]
  out = []
  for i, (size, steps) in enumerate(stages):
    c = ml_collections.ConfigDict(config.to_dict())
    c.size, c.num_steps, c.stages = size, steps, ''
    if i:
      c.init = 'image'
    out.append(c)
  return out


def stylize(content: Optional[np.ndarray], style, config: Optional[ml_collections.ConfigDict]
            = None, params: Optional[Mapping] = None, init_image: Optional[np.ndarray] = None,
            mask=None, masks=None, style_masks=None, **overrides) -> np.ndarray:
  """Stylizes a uint8 RGB content image with one or more uint8 RGB style images.

  Args:
    content: (H, W, 3) uint8 RGB (None for texture synthesis).
    style: one (H, W, 3) uint8 RGB array or a list of them (blended by
      ``config.style_blend_weights``, or one per mask; None marks an unstyled region).
    config: a config from ``configs/`` (default: :func:`nst_jax.config.base_config`).
    params: VGG19 params (default: :func:`nst_jax.weights.load_vgg19`).
    init_image: starting image for ``init='image'``.
    mask: one (H, W) float mask in [0, 1] (white = styled, black = kept from the content).
    masks: a list of such masks, one per style image (several regions).
    style_masks: per style image, a mask (or None) selecting the part of it to use.
    **overrides: config fields to override, e.g. ``size=256, num_steps=100,
      color_control='luminance', stages='128:100,256:50'``. Mask files named in the config
      (``mask``, ``masks``, ``labels``, ``style_masks``) are read when no arrays are given.

  Returns:
    The result as a (H, W, 3) uint8 RGB array.
  """
  config = ml_collections.ConfigDict(config if config is not None else config_lib.base_config())
  config.update(overrides)
  compile_cache.enable(config.get('compile_cache', ''))  # issue 10: persistent XLA cache
  if params is None:
    from nst_jax import weights  # pylint: disable=g-import-not-at-top
    params = weights.load_vgg19()
  styles = [] if style is None else ([style] if isinstance(style, np.ndarray) and style.ndim == 3
                                     else list(style))
  content = None if content is None else _as_rgb_uint8(content)
  styles = [None if s is None else _as_rgb_uint8(s) for s in styles]
  if mask is not None and masks is not None:
    raise ConfigError('give mask or masks, not both')
  masks = [mask] if mask is not None else masks
  if masks is None or style_masks is None:
    file_masks, file_style_masks = controls.config_masks(config, len(styles))
    masks = file_masks if masks is None else masks
    style_masks = file_style_masks if style_masks is None else style_masks
  image = init_image
  for c in stage_configs(config):  # Later stages start from the previous result.
    problem = build_problem(c, params, content, styles, image, masks, style_masks)
    image = optimize(problem, params, c.num_steps, c.log_every).image
  return image


def _as_rgb_uint8(a) -> np.ndarray:
  a = np.asarray(a)
  if a.ndim != 3 or a.shape[-1] != 3:
    raise ConfigError(f'images must be (H, W, 3) RGB arrays, got shape {a.shape}')
  return a if a.dtype == np.uint8 else image_io.to_uint8(a)
