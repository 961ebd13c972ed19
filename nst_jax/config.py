"""The configuration schema of the ``stylize`` job, its validation, and config locking.

Presets call :func:`base_config` and override what their source specifies, so every field exists
in every config and ``--config.FIELD=VALUE`` works for all of them. Layer lists and per-layer
weights are comma-separated strings so they can be overridden on the command line
(``--config.style_layers=conv1_1,conv3_1``). Defaults live only in :func:`base_config`;
:func:`validate` (beside it) checks every field before anything expensive happens.

Configs are locked (:func:`lock`): setting a field that does not exist raises
:class:`~nst_jax.errors.ConfigError` naming the nearest valid field, whether the misspelling comes
from ``run.py --config.num_stpes=5``, ``run.py --modle=...`` or ``nst_jax.stylize(...,
num_stpes=5)``. Other jobs' schemas (``fast``, ``arbitrary``, ``train``) use the same helpers:
``lock(config)`` at the end of their ``*_config()`` and :func:`override` / :func:`apply_fields`
to set fields.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
from pathlib import Path
import sys
from typing import Any, Mapping, Optional, Union

import ml_collections

from nst_jax.errors import ConfigError

# Fields added after checkpoints were first written, with the value that means "as before": a
# config holding that value hashes as if the field did not exist, so checkpoints written before
# the field was added still resume (runner and training checkpoints; add new fields here).
ADDED_FIELDS: dict[str, Any] = {'conv_dtype': 'float32'}


def config_key(config: ml_collections.ConfigDict, ignore: tuple[str, ...]) -> str:
  """A hash of the config's fields but ``ignore`` (and :data:`ADDED_FIELDS` at their old
  meaning): a checkpoint resumes only into a config with its own key."""
  d = {k: v for k, v in config.to_dict().items()
       if k not in ignore and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

JOBS_STYLIZE = 'stylize'
MODES = ('transfer', 'content_reconstruction', 'texture_synthesis')
INITS = ('content', 'noise', 'style', 'image', 'blend')
LAYER_WEIGHTINGS = ('uniform', 'geometric')


def base_config() -> ml_collections.ConfigDict:
  """Every field of the ``stylize`` job with its default (the one place defaults live)."""
  c = ml_collections.ConfigDict()
  # What to run.
  c.job = 'stylize'                # the job runner.run dispatches on (see nst_jax/runner.py)
  c.mode = 'transfer'              # transfer | content_reconstruction | texture_synthesis
  c.content = ''                   # content image path (also --content)
  c.style = ''                     # style image path(s), comma separated (also --style)
  c.style_blend_weights = ''       # one weight per style image; '' = equal
  c.output = 'outputs/result.png'  # also --output
  # Image sizes.
  c.size = 512                     # longest side of the content image (px)
  c.height = 0                     # exact output height and width; 0 = from `size`
  c.width = 0
  c.style_scale = 1.0              # style image's longest side relative to the output's
  c.max_pixels = 40_000_000        # refuse larger source images (decompression-bomb guard)
  c.weights = ''                   # VGG19 weights (.h5 or converted .npz); '' = resolve (README)
  # Network.
  c.pooling = 'max'                # max | avg
  c.conv_impl = 'direct'           # direct | winograd2 | winograd4 | auto (CPU: winograd2)
  c.conv_dtype = 'float32'         # float32 | bfloat16 (operands of the VGG convolutions' products)
  # Loss.
  c.content_layers = 'block4_conv2'
  c.content_layer_weights = ''     # '' = 1/L each
  c.style_layers = 'block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1'
  c.style_layer_weights = ''       # '' = 1/L each
  c.content_weight = 1.0
  c.style_weight = 1e3
  c.tv_weight = 0.0
  c.loss_norm = 'gatys'            # gatys | keras | tf_tutorial (see nst_jax/losses.py)
  c.tv_type = 'l2'                 # l2 | l1 | keras
  c.loss_scale = 1.0               # objective multiplier seen by the optimiser only
  c.image_range = 255.0            # the optimiser sees pixels in 0..image_range
  # Initialisation.
  c.init = 'content'               # content | noise | style | image | blend
  c.init_image = ''                # for init='image'
  c.init_noise_ratio = 0.6         # for init='blend': (1-r) * content + r * noise
  c.seed = 0
  # Optimisation.
  c.num_steps = 500
  c.optimizer = o = ml_collections.ConfigDict()
  o.name = 'lbfgs_torch'           # lbfgs_torch | lbfgs | adam | sgd | rmsprop | nadam
  o.learning_rate = 1.0
  o.schedule = 'constant'          # constant | exponential
  o.decay_steps = 100
  o.decay_rate = 0.96
  o.staircase = False
  o.b1 = 0.9                       # adam / nadam
  o.b2 = 0.999
  o.eps = 1e-8                     # adam / nadam / rmsprop
  o.momentum = 0.0                 # sgd / rmsprop
  o.rms_decay = 0.9                # rmsprop
  o.history_size = 100             # lbfgs / lbfgs_torch (lbfgs_torch: capped at num_steps)
  o.history_dtype = 'float32'      # lbfgs_torch history storage: float32 | bfloat16 | float16
  o.max_linesearch_steps = 20      # lbfgs (optax zoom line search)
  # Logging, checkpoints and safety.
  c.log_every = 50                 # steps per jitted chunk; progress printed after each chunk
  c.save_every = 0                 # write an intermediate PNG every N steps (0 = never)
  c.resume = False                 # continue from the checkpoint beside the output, if any
  c.profile_dir = ''               # write a jax.profiler trace of the first chunk here
  # Compilation and memory (issue 10; see README, Performance and memory).
  c.compile_cache = ''             # '' = $NST_JAX_COMPILE_CACHE or ~/.cache/nst_jax/jax_cache; off
  c.remat = 'none'                 # recompute VGG blocks in the backward: none | all | early | 1,2
  c.memory_check = True            # estimate peak memory first; refuse (one line) if it cannot fit
  c.memory_limit_gb = 0.0          # memory the run may use; 0 = what the OS reports available
  c.spatial_shards = 1             # split the image's rows over this many devices (0 = all)
  # Perceptual control (Gatys et al. 2016) and Novak & Nikulin 2016 (see README.md).
  c.mask = ''                      # one region: white = styled, black = held to the content
  c.masks = ''                     # one mask per style image, comma separated (several regions)
  c.labels = ''                    # label image: one region per colour (sorted), one style each
  c.style_masks = ''               # per style image: a mask of the part to use ('' = all of it)
  c.preserve = True                # compose pixels no styled region covers from the content
  c.preserve_weight = 0.0          # hold term: weight of mean((x - content)^2) on those pixels
  c.color_control = 'none'         # none | luminance | match_style | original_colors
  c.color_match_mode = 'cholesky'  # cholesky | eigen (for color_control=match_style)
  c.stages = ''                    # coarse-to-fine 'SIZE:STEPS,...' (e.g. '256:200,512:100')
  c.scale_mix_layer = ''           # with 2 styles: layers >= this from style 1, shallower from 2
  c.gram_shift = 0.0               # activation shift in the Gram matrices (Novak: -1)
  c.chain = False                  # correlation chain between neighbouring style layers (Novak)
  c.layer_weighting = 'uniform'    # uniform | geometric (Novak: style falls, content rises)
  c.geometric_base = 2.0           # ratio between neighbouring layers' geometric weights
  # Sweeps (nst_jax/sweep.py): a non-empty `sweep.axes` turns the run into a batched grid.
  c.sweep = s = ml_collections.ConfigDict()
  s.axes = ''                      # 'FIELD=V1,V2;FIELD2=W1,W2' ('+' joins list items: layer sets)
  s.mode = 'product'               # product | zip
  s.rows = ''                      # contact-sheet row axes ('' = first axis of a product)
  s.max_batch = 16                 # configs per compiled batch; larger groups run in chunks
  s.shard = True                   # shard the batch axis over all devices
  s.distributed = False            # call jax.distributed.initialize() first (multi-host)
  s.cell_size = 256                # longest side of a contact-sheet thumbnail
  s.cost_analysis = True           # record XLA's FLOPs per step (one more lowering per group)
  c.output_dir = ''                # sweep output directory ('' = outputs/sweep; --output_dir)
  return lock(c)



def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for any invalid field of a ``stylize`` config (before anything expensive
  happens: before images are read and programs compiled)."""
  # Lazy imports: loading a preset must not import JAX.
  from nst_jax import controls, losses, optim, vgg  # pylint: disable=g-import-not-at-top
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
                        ('conv_dtype', vgg.CONV_DTYPES),
                        ('loss_norm', losses.LOSS_NORMS), ('tv_type', losses.TV_TYPES),
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
  optim.spec_and_hyper(c.optimizer, c.image_range)
  layer_choice(c)


def layer_choice(config: ml_collections.ConfigDict
                 ) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
  """(content layers, style layers, chain) in canonical names, after ``mode`` drops one list.

  Raises ConfigError for unknown or pooling layers, no layers at all, or a chain of one layer.
  """
  from nst_jax import vgg  # pylint: disable=g-import-not-at-top
  content_layers = tuple(vgg.parse_layers(config.content_layers))
  style_layers = tuple(vgg.parse_layers(config.style_layers))
  for layer in content_layers + style_layers:
    if layer.endswith('_pool'):
      raise ConfigError(f'{layer} is a pooling layer; content and style layers must be conv '
                        'layers')
  if config.mode == 'content_reconstruction':
    style_layers = ()
  elif config.mode == 'texture_synthesis':
    content_layers = ()
  if not content_layers and not style_layers:
    raise ConfigError('no content or style layers: nothing to optimise')
  chain = bool(config.chain) and bool(style_layers)
  if chain and len(style_layers) < 2:
    raise ConfigError('chain (correlation chain) needs at least two style layers')
  return content_layers, style_layers, chain


def split_list(text: Any) -> list[str]:
  """A comma-separated config string (paths, names) as a list, blanks dropped."""
  return [p.strip() for p in str(text or '').split(',') if p.strip()]


# ---------------------------------------------------------------------------------------------
# Locking and overriding (shared by every job's schema).


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks ``config`` (and its sub-configs) against new fields; returns it."""
  config.lock()
  return config


def field_names(config: Union[ml_collections.ConfigDict, Mapping]) -> list[str]:
  """Every leaf field as a dotted path (``'optimizer.learning_rate'``), sorted."""
  out = []
  for k, v in config.items():
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      out += [f'{k}.{sub}' for sub in field_names(v)]
    else:
      out.append(str(k))
  return sorted(out)


def nearest_field(config: Union[ml_collections.ConfigDict, Mapping], name: str) -> Optional[str]:
  """The field whose dotted path is closest to ``name`` (or None if nothing is close)."""
  names = field_names(config)
  match = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
  if not match:  # Compare leaves too: 'lerning_rate' -> 'optimizer.learning_rate'.
    leaves = {n.rsplit('.', 1)[-1]: n for n in names}
    leaf = difflib.get_close_matches(name.rsplit('.', 1)[-1], list(leaves), n=1, cutoff=0.6)
    match = [leaves[leaf[0]]] if leaf else []
  return match[0] if match else None


def unknown_field(config: ml_collections.ConfigDict, name: str, how: str = '') -> ConfigError:
  """The ConfigError for a field ``name`` the config lacks, naming the nearest valid field.

  ``how`` is appended after the name (e.g. ``' given to stylize()'``).
  """
  near = nearest_field(config, name)
  job = config.get('job', '') if hasattr(config, 'get') else ''
  where = f' (job={job})' if job else ''
  hint = f'; did you mean {near!r}?' if near else '; see the schema in nst_jax/config.py'
  return ConfigError(f'unknown config field {name!r}{how}{where}{hint}')


def has_field(config: ml_collections.ConfigDict, path: str) -> bool:
  node: Any = config
  for part in path.split('.'):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return False
    node = node[part]
  return True


def override(config: ml_collections.ConfigDict, overrides: Mapping[str, Any],
             how: str = '') -> ml_collections.ConfigDict:
  """Sets dotted-path fields in place (``{'optimizer.name': 'adam', 'size': 256}``).

  A dict value for a sub-config sets its fields one by one. Unknown fields raise ConfigError
  naming the nearest valid field; a value of the wrong type raises ConfigError too. Returns
  ``config``.
  """
  for path, value in overrides.items():
    if not has_field(config, path):
      raise unknown_field(config, path, how)
    *parents, leaf = path.split('.')
    node = config
    for p in parents:
      node = node[p]
    if isinstance(node[leaf], ml_collections.ConfigDict) and isinstance(value, Mapping):
      override(config, {f'{path}.{k}': v for k, v in value.items()}, how)
      continue
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f'config field {path}={value!r}{how}: {e}') from None
  return config


def apply_fields(config: ml_collections.ConfigDict, values: Mapping[str, Any],
                 how: str = ' (flag --{name})') -> ml_collections.ConfigDict:
  """Sets the config field of the same name for every non-None value (run.py's --content,
  --style, --output, --model, ... flags). A name the config lacks raises ConfigError.
  """
  for name, value in values.items():
    if value is None:
      continue
    if not has_field(config, name):
      near = nearest_field(config, name)
      hint = f' (nearest field: {near!r})' if near else ''
      raise ConfigError(f'--{name} does not apply to this config (job='
                        f'{config.get("job", "?")}): it has no field {name!r}{hint}')
    override(config, {name: value}, how.format(name=name))
  return config


# ---------------------------------------------------------------------------------------------
# Presets (configs/ is a package: presets import each other; files load by path too).

CONFIGS_DIR = Path(__file__).resolve().parent.parent / 'configs'


def load_preset(name_or_path: Union[str, Path]) -> ml_collections.ConfigDict:
  """``get_config()`` of a preset: a name in ``configs/`` (``'gatys2015'``) or a file path.

  Presets are modules of the ``configs`` package (``from configs import gatys2015``); the
  project root is put on ``sys.path`` if needed so this works from any working directory.
  """
  path = Path(name_or_path)
  if path.suffix != '.py':
    path = CONFIGS_DIR / f'{name_or_path}.py'
  if not path.is_file():
    raise ConfigError(f'no preset {name_or_path!r}: expected a file {path}')
  root = str(path.resolve().parent.parent)
  if root not in sys.path:
    sys.path.insert(0, root)
  if path.resolve().parent == CONFIGS_DIR or (path.resolve().parent / '__init__.py').is_file():
    module = importlib.import_module(f'{path.resolve().parent.name}.{path.stem}')
  else:
    spec = importlib.util.spec_from_file_location(f'_nst_preset_{path.stem}', path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  return module.get_config()
