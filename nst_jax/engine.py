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
from nst_jax import compile_cache, controls, image_io, objective, optim, spatial, vgg
from nst_jax.errors import ConfigError, NonFiniteLossError


def parse_floats(text: Any, what: str) -> Optional[list[float]]:
  """A comma/space-separated string (or sequence) of numbers as floats; None if empty."""
  if text is None or (isinstance(text, str) and not text.strip()):
    return None
  if isinstance(text, str):
    text = [t for t in text.replace(' ', ',').split(',') if t]
  try:
    return [float(t) for t in text]
  except (TypeError, ValueError):
    raise ConfigError(f'{what} must be comma-separated numbers, got {text!r}') from None


def _layer_weights(text: Any, layers: Sequence[str], what: str) -> Optional[list[float]]:
  values = parse_floats(text, what)
  if values is not None and len(values) != len(layers):
    raise ConfigError(f'{what} has {len(values)} values for {len(layers)} layers {list(layers)}')
  return values


def layer_weight_lists(config: ml_collections.ConfigDict, spec: objective.Spec
                       ) -> tuple[Optional[list], Optional[list]]:
  """The config's per-layer content and style weights (None = 1/L each).

  Explicit ``*_layer_weights`` win; ``layer_weighting='geometric'`` fills in the others.
  """
  content_w = _layer_weights(config.content_layer_weights, spec.content_layers,
                             'content_layer_weights')
  style_w = _layer_weights(config.style_layer_weights, spec.style_layers, 'style_layer_weights')
  if config.layer_weighting == 'geometric':
    base = float(config.geometric_base)
    content_w = content_w or objective.geometric_layer_weights(spec.content_layers, base, True)
    style_w = style_w or objective.geometric_layer_weights(spec.style_layers, base)
  return content_w, style_w


# Validation lives beside the schema (nst_jax/config.py); engine.validate is the same function.
validate = config_lib.validate


def make_spec(config: ml_collections.ConfigDict) -> objective.Spec:
  """The static part of the objective (layers, pooling, norms); raises ConfigError for bad
  layer choices."""
  content_layers, style_layers, chain = config_lib.layer_choice(config)
  return objective.Spec(content_layers, style_layers, config.pooling, config.conv_impl,
                        config.loss_norm, config.tv_type, float(config.image_range),
                        use_tv=float(config.tv_weight) != 0., chain=chain,
                        remat=','.join(map(str, vgg.parse_remat(config.remat))),
                        conv_dtype=config.conv_dtype)


def run_conv_impl(config: ml_collections.ConfigDict, shape: Sequence[int]) -> str:
  """The run's conv_impl: ``auto`` resolved by the run's length (:func:`vgg.resolve_conv_impl`;
  short runs compile direct convolutions, long ones Winograd's)."""
  return vgg.resolve_conv_impl(config.conv_impl, int(shape[0]) * int(shape[1]),
                               int(config.num_steps) + 1)


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
  mspec: optim.MethodSpec
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
  mspec: optim.MethodSpec
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
  content_r: Any = None if content is None else image_io.resize_image(content, shape=shape,
                                                                      max_pixels=cap)
  region, kept, kept_masks, hold = _regions(shape, content_r, styles, masks, style_masks)
  longest = max(1, round(max(shape) * float(config.style_scale)))
  styles_r: Any = [image_io.resize_image(s, size=longest, max_pixels=cap) for s in kept]
  _check_size(spec, shape, 'the output')
  for s in styles_r:
    _check_size(spec, s.shape[:2], 'a style image (after style_scale)')
  smasks_r = None if kept_masks is None else [
      None if m is None else controls.prepare_masks([m], s.shape[:2], [f'style mask {i + 1}'])[0]
      for i, (m, s) in enumerate(zip(kept_masks, styles_r))]
  blend: Any = parse_floats(config.style_blend_weights, 'style_blend_weights')
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
  spec = spec._replace(project=hold is not None and preserve,
                       use_hold=hold is not None and preserve_weight != 0.,
                       conv_impl=run_conv_impl(config, shape))
  content_w, style_w = layer_weight_lists(config, spec)
  weights = objective.make_weights(
      spec, config.content_weight, config.style_weight, config.tv_weight, content_w, style_w,
      config.loss_scale, config.gram_shift, preserve_weight)
  mspec, hyper = optim.spec_and_hyper(config.optimizer, config.image_range)
  mspec = optim.fit_history(mspec, config.num_steps, bool(config.save_every or config.resume))
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


# ---------------------------------------------------------------------------------------------
# Jitted pieces. Params, targets and weights are arguments (not closed-over constants), so the
# 80 MB of weights never become HLO literals and one compiled program serves any inputs.


def _fns(params: Mapping, targets: objective.Targets, weights: objective.Weights,
         spec: objective.Spec) -> tuple[Callable, Callable]:
  value_fn = lambda z: objective.objective(z, params, targets, weights, spec)
  return value_fn, jax.value_and_grad(value_fn)


@functools.partial(jax.jit, static_argnames=('spec', 'mspec'))
def init_state(z0: jax.Array, params: Mapping, targets: objective.Targets,
               weights: objective.Weights, hyper: dict, spec: objective.Spec,
               mspec: optim.MethodSpec) -> Any:
  """The optimiser's initial state at ``z0``."""
  _, value_and_grad = _fns(params, targets, weights, spec)
  return optim.make_method(mspec).init(z0, hyper, value_and_grad)


def chunk_fn(state: Any, params: Mapping, targets: objective.Targets,
             weights: objective.Weights, spec: objective.Spec, mspec: optim.MethodSpec,
             length: int) -> tuple[Any, tuple[jax.Array, jax.Array]]:
  """``length`` optimisation steps as one ``lax.scan``; returns (state, (losses, evals))."""
  value_fn, value_and_grad = _fns(params, targets, weights, spec)
  method = optim.make_method(mspec)
  def body(s: Any, _: Any) -> tuple[Any, tuple[jax.Array, jax.Array]]:
    s, (loss, evals) = method.step(s, value_and_grad, value_fn)
    return s, (loss / weights.loss_scale, evals)
  return lax.scan(body, state, None, length=length)


run_chunk = jax.jit(chunk_fn, static_argnames=('spec', 'mspec', 'length'), donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=('spec',))
def terms(z: jax.Array, params: Mapping, targets: objective.Targets, weights: objective.Weights,
          spec: objective.Spec) -> dict[str, jax.Array]:
  """The weighted loss terms at ``z`` (content, style, tv, total, ...)."""
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
  stopped: bool = False              # stopped early by ``stop()`` (e.g. Ctrl-C), not finished


def optimize(problem: Problem, params: Mapping, num_steps: int, chunk: int = 50,
             on_chunk: Optional[Callable[[int, Any, dict], None]] = None,
             state: Any = None, start_step: int = 0, history: Optional[dict] = None,
             profile_dir: str = '', stop: Optional[Callable[[], bool]] = None) -> Result:
  """Runs ``num_steps`` steps in jitted chunks; calls ``on_chunk(step, state, info)`` after each.

  ``info`` holds the chunk's loss ``terms`` (with ``step``), the ``evals`` so far, ``timings``,
  the ``history`` and ``chunk_s`` (the chunk's run time). After each chunk, if ``stop()`` is
  true (e.g. :class:`nst_jax.interrupt.StopOnSignal`), returns early with ``stopped=True`` and
  the state and image of the last finished chunk. Raises NonFiniteLossError (with ``.image`` =
  the last finite image and ``.step``) if the objective becomes NaN or Inf.
  """
  p = problem
  args = (params, p.targets, p.weights)
  t0 = time.perf_counter()
  timings = {'compile_s': 0., 'run_s': 0.}
  if state is None:
    # The starting point's evaluation runs once: direct convolutions (issue 10), compiled ~5x
    # faster than Winograd's and with less memory; the gradient differs by float rounding only.
    init_exe, seconds = compile_cache.compiled(init_state, p.z0, *args, p.hyper,
                                               spec=p.spec._replace(conv_impl='direct'),
                                               mspec=p.mspec)
    timings['compile_s'] += seconds
    state = init_exe(p.z0, *args, p.hyper)
  state = spatial.place_state(state, p.z0)  # a split image: its history split too
  hist = history or {'losses': [], 'evals': optim.init_evals(p.mspec), 'terms': []}
  compiled = {}
  step = start_step
  last_good = np.asarray(state_image(state, p))
  stopped = False
  while step < num_steps:
    n = min(chunk, num_steps - step)
    if n not in compiled:  # Memoised per shapes: a second run of the same problem reuses it.
      compiled[n], seconds = compile_cache.compiled(run_chunk, state, *args, spec=p.spec,
                                                    mspec=p.mspec, length=n)
      timings['compile_s'] += seconds
    state = spatial.as_compiled_for(compiled[n], state)
    tr = time.perf_counter()
    if profile_dir and step == start_step:
      with jax.profiler.trace(profile_dir):
        with jax.profiler.StepTraceAnnotation('chunk', step_num=step):
          state, (chunk_losses, evals) = compiled[n](state, *args)
          chunk_losses = np.asarray(chunk_losses)
    else:
      state, (chunk_losses, evals) = compiled[n](state, *args)
      chunk_losses = np.asarray(chunk_losses)
    chunk_s = time.perf_counter() - tr
    timings['run_s'] += chunk_s
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
    terms_exe, seconds = compile_cache.compiled(terms, z_device, *args, spec=p.spec._replace(
        conv_impl=objective.target_spec(p.spec).conv_impl))  # direct: cheap to compile
    timings['compile_s'] += seconds
    t = {k: float(v) for k, v in terms_exe(z_device, *args).items()}
    t['step'] = step
    hist['terms'].append(t)
    if on_chunk is not None:
      on_chunk(step, state, {'terms': t, 'evals': hist['evals'], 'timings': timings,
                             'history': hist, 'chunk_s': chunk_s})
    if stop is not None and step < num_steps and stop():
      stopped = True
      break
  timings['total_s'] = time.perf_counter() - t0
  steps_run = step - start_step
  timings['s_per_step'] = timings['run_s'] / steps_run if steps_run else 0.
  image = render(p, last_good)
  return Result(image, hist['losses'], hist['evals'], step, hist['terms'], timings, state,
                stopped)


def state_image(state: Any, problem: Problem) -> jax.Array:
  return optim.make_method(problem.mspec).image(state)


def render(problem: Problem, z: Any) -> np.ndarray:
  """The uint8 RGB result of an optimiser-domain image: held pixels composed from the content,
  and the content's chroma put back for ``color_control`` luminance / original_colors."""
  x = objective.compose(jnp.asarray(z), problem.targets, problem.spec)
  image = image_io.to_uint8(np.asarray(objective.to_image(x, problem.spec)))
  if problem.color_control in ('luminance', 'original_colors') and problem.content is not None:
    image = controls.original_colors(image, problem.content)
  return image


def stage_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """One config per coarse-to-fine stage (``config.stages``), or ``[config]`` without stages.

  Each stage sets ``size`` and ``num_steps``; stages after the first start from the previous
  stage's result (``init='image'``, upsampled by the problem builder).
  """
  stages = controls.parse_stages(config.stages)
  if not stages:
    return [config]
  out = []
  for i, (size, steps) in enumerate(stages):
    c = config_lib.lock(ml_collections.ConfigDict(config.to_dict()))
    c.size, c.num_steps, c.stages = size, steps, ''
    c.resume = False  # The same programs (optimiser history size) when a staged run resumes.
    if i:
      c.init = 'image'
    out.append(c)
  return out


StageRunner = Callable[[int, ml_collections.ConfigDict, Problem], Result]


def run_stages(config: ml_collections.ConfigDict, params: Mapping, content: Optional[np.ndarray],
               styles: Sequence[Optional[np.ndarray]], init_image: Optional[np.ndarray] = None,
               masks: Optional[Sequence[np.ndarray]] = None,
               style_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
               run_stage: Optional[StageRunner] = None, first_stage: int = 0
               ) -> list[tuple[ml_collections.ConfigDict, Problem, Result]]:
  """The one stage loop: builds and optimises each stage of :func:`stage_configs` (one stage
  without ``config.stages``), each later stage starting from the previous result.

  ``run_stage(index, stage_config, problem) -> Result`` optimises one stage (default:
  :func:`optimize` with the stage's ``num_steps`` and ``log_every``); the runner passes one that
  adds progress, metrics, checkpoints and Ctrl-C handling. A stage that returns
  ``stopped=True`` ends the loop. Returns (stage config, problem, result) per stage run.
  ``first_stage`` skips the stages before it (a resumed run: ``init_image`` is then the image
  that stage started from).
  """
  if run_stage is None:
    run_stage = lambda i, c, p: optimize(p, params, c.num_steps, c.log_every)
  out: list[tuple[ml_collections.ConfigDict, Problem, Result]] = []
  image = init_image
  for i, c in enumerate(stage_configs(config)):
    if i < first_stage:
      continue
    problem = build_problem(c, params, content, styles, image, masks, style_masks)
    result = run_stage(i, c, problem)
    out.append((c, problem, result))
    if result.stopped:
      break
    image = result.image
  return out


def with_overrides(config: Optional[ml_collections.ConfigDict], overrides: Mapping[str, Any],
                   how: str = '') -> ml_collections.ConfigDict:
  """A locked copy of ``config`` (default :func:`~nst_jax.config.base_config`) with
  ``overrides`` applied; a misspelt field raises ConfigError naming the nearest one."""
  c = config_lib.lock(ml_collections.ConfigDict(
      config.to_dict() if config is not None else config_lib.base_config().to_dict()))
  return config_lib.override(c, overrides, how)


def stylize(content: Optional[np.ndarray], style: Any,
            config: Optional[ml_collections.ConfigDict] = None, params: Optional[Mapping] = None,
            init_image: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
            masks: Optional[Sequence[np.ndarray]] = None,
            style_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
            **overrides: Any) -> np.ndarray:
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
      color_control='luminance', stages='128:100,256:50'`` (a dict for a sub-config:
      ``optimizer={'name': 'adam'}``); a misspelt name raises ConfigError naming the nearest
      field. Mask files named in the config (``mask``, ``masks``, ``labels``,
      ``style_masks``) are read when no arrays are given.

  Returns:
    The result as a (H, W, 3) uint8 RGB array.
  """
  config = with_overrides(config, overrides, ' given to stylize()')
  validate(config)
  compile_cache.enable(config.compile_cache)  # issue 10: persistent XLA cache
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
  stages = run_stages(config, params, content, styles, init_image, masks, style_masks)
  return stages[-1][2].image


def _as_rgb_uint8(a: Any) -> np.ndarray:
  a = np.asarray(a)
  if a.ndim != 3 or a.shape[-1] != 3:
    raise ConfigError(f'images must be (H, W, 3) RGB arrays, got shape {a.shape}')
  return a if a.dtype == np.uint8 else image_io.to_uint8(a)
