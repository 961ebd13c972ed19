"""New styles in a trained N-style network (Dumoulin, Shlens & Kudlur 2017, the section on
integrating new styles): a task of the one training loop (:mod:`nst_jax.training.loop`).

A network trained for N styles with conditional instance normalisation learns a new painting
when only that painting's instance-norm rows (one gamma and one beta vector per normalised layer)
are trained, with every convolution kernel frozen (Magenta's ``image_stylization_finetune.py``
trains the InstanceNorm variables alone). This task starts from the built-in 26-style network
(``multistyle26``, the fast job's default) or any N-style model directory
(``finetune.model``), appends one row per ``--style`` painting, trains the new rows with the
from-scratch task's perceptual loss (:func:`nst_jax.training.tasks.feedforward.batch_loss_terms`:
content + Gram style + TV, the config's layers and weights) on the training photos, and writes a
model directory of N + K styles: the N original rows and kernels unchanged (bit for bit), the new
styles at indices N, N + 1, ... so ``configs/fast.py --model=DIR --config.style_index=N`` uses
the first new one and mixes such as ``7:0.5,26:0.5`` blend old and new.

* ``finetune.train_all=True`` trains the kernels (and biases) too. The N original styles are
  still in the model, but since the shared kernels move for the new styles only, their outputs
  change (the catastrophic-forgetting trade-off; off by default).
* ``finetune.init`` starts the new rows from ``mean`` (default): the mean of the N styles' rows
  (with linear mixing, the network's output for the uniform blend of all styles: a middle point
  of the learned style space, from which every style is a short way off); ``nearest``: for each
  new painting, the rows among the N styles and their mean with the lowest training loss on a
  fixed batch of training photos (never above ``mean`` at step 0, but in our runs it picked the
  same style, 15, a pastel mosaic, for both candy and la_muse and ended 3-7% above ``mean`` after
  40-80 steps; its probe costs N + 1 loss evaluations, 20-50 s on the 2-core CPU);
  ``identity``: gamma 1, beta 0 (Magenta's fresh
  InstanceNorm variables; the slowest start). Measurements: configs/finetune_cpu.py.

The trainable state (the new rows, the kernels with ``train_all``, and Adam's moments) is the
loop's carry, so checkpoints and Ctrl-C/resume cover it; the frozen part is the base model,
whose fingerprint (``base_sha256`` in ``model.json``'s info) a resume checks. Bad inputs (a
painting too small or fully transparent, a base model that is not an N-style network, the base
directory as ``--output``) are refused by :func:`check_inputs` before anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import images as image_io
from nst_jax.losses import objective
from nst_jax.models import model_dir as model_io
from nst_jax.models import transformer as networks
from nst_jax.models import transformer_params as network_params
from nst_jax.models import vgg
from nst_jax.training import data as data_lib
from nst_jax.training import loop as loop_lib
from nst_jax.training.tasks import feedforward

INITS = ('nearest', 'mean', 'identity')
# Ours: a painting whose shorter side is under 32 px holds too few strokes to define a style;
# resized to style_size (256) it is a blur, not a texture.
MIN_STYLE_SIDE = 32
BUILTIN = 'multistyle26'


# --- The base model and the inputs.


def base_model(config) -> model_io.Model:
  """The N-style network to start from (``finetune.model``; '' = the built-in multistyle26).

  Raises:
    ModelError: missing or corrupt, or not an N-style network (fewer than two styles, or no
      conditional instance-norm layers: nothing to fine-tune).
  """
  name = str(config.finetune.model).strip()
  if not name or (name in model_io.BUILTINS and not Path(name).expanduser().exists()):
    model = model_io.load_builtin(name or BUILTIN)
  else:
    model = model_io.load_model(name)
  where = model.source or name
  if not norm_layers(model.config):
    raise model_io.ModelError(f'model {where} has no instance-norm layers (no gamma/beta to '
                              'fine-tune); start from an N-style network such as the built-in '
                              f'{BUILTIN} (finetune.model=\'\')')
  if model.num_styles < 2:
    raise model_io.ModelError(
        f'model {where} is a single-style network, not an N-style one (conditional instance '
        'norm): its gamma/beta were learned for one style only; start from an N-style network '
        f"such as the built-in {BUILTIN} (finetune.model='') or train one with "
        'configs/dumoulin2017.py')
  return model


def norm_layers(netcfg: networks.NetworkConfig) -> list[str]:
  """The layers with (conditional) instance norm: those with gamma/beta rows."""
  return [l for l, s in networks.param_shapes(netcfg).items() if 'gamma' in s]


def fingerprint(model: model_io.Model) -> str:
  """sha256 of the architecture and every parameter (names and bytes)."""
  h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
  flat = network_params.flatten_params(model.params)
  for k in sorted(flat):
    h.update(k.encode())
    h.update(np.ascontiguousarray(flat[k], np.float32).tobytes())
  return h.hexdigest()


def check_painting(path: str, style_size: int, max_pixels: int, deepest: Optional[str]
                   ) -> np.ndarray:
  """The painting as uint8 at ``style_size``; ImageError if fully transparent or too small."""
  if image_io.is_fully_transparent(path):
    raise ImageError(f'style image {path} is fully transparent: it has no colours to learn')
  full = image_io.load_image(path, max_pixels=max_pixels)
  h, w = full.shape[:2]
  if min(h, w) < MIN_STYLE_SIDE:
    raise ImageError(f'style image {path} is {w}x{h} px, too small to learn a style from: its '
                     f'shorter side needs at least {MIN_STYLE_SIDE} px')
  image = image_io.resize_image(full, size=style_size, max_pixels=max_pixels)
  stride = vgg.STRIDE[vgg.canonical_layer(deepest)] if deepest else 1
  if min(image.shape[:2]) < stride:
    raise ImageError(f'style image {path} is {image.shape[1]}x{image.shape[0]} px at '
                     f'style_size={style_size}, too small for {deepest} (its shorter side needs '
                     f'{stride} px): raise style_size or use a less elongated painting')
  return image


def _deepest(config) -> Optional[str]:
  layers = vgg.parse_layers(config.style_layers)
  return max(layers, key=lambda l: vgg.STRIDE[l]) if layers else None


def check_inputs(config) -> model_io.Model:
  """Every user error of a fine-tuning run, before anything is written; returns the base model.

  Raises:
    ConfigError: unknown ``finetune.init``, the base directory given as ``--output``, or a
      resume whose checkpoint was trained from another base model.
    ImageError: a painting that is unreadable, fully transparent or too small.
    ModelError: see :func:`base_model`.
  """
  f = config.finetune
  if f.init not in INITS:
    raise ConfigError(f'unknown finetune.init {f.init!r}; choose one of {", ".join(INITS)}')
  paths = train_schema.style_paths(config)
  if not paths:
    raise ConfigError('fine-tuning needs --style=PAINTING (several, comma separated, for several '
                      'new styles)')
  out = Path(config.output).expanduser()
  name = str(f.model).strip()
  if name and Path(name).expanduser().exists() and (
      Path(name).expanduser().resolve() == out.resolve()):
    raise ConfigError(f'--output={config.output} is the base model directory; write the '
                      'fine-tuned model to another directory (the base stays unchanged)')
  model = base_model(config)
  for p in paths:
    check_painting(p, int(config.style_size), int(config.max_pixels), _deepest(config))
  if config.resume and (out / loop_lib.CHECKPOINT).exists() and (out / model_io.JSON).exists():
    try:
      saved = json.loads((out / model_io.JSON).read_text()).get('info', {}).get('base_sha256')
    except (OSError, ValueError, AttributeError):
      saved = None  # The checkpoint's own checks report a broken output directory.
    if saved and saved != fingerprint(model):
      raise ConfigError(f'the checkpoint in {out} was fine-tuned from another base model than '
                        f'{model.source or BUILTIN} (its parameters differ); resume with the '
                        'same finetune.model or delete the checkpoint')
  return model


# --- Parameters: trainable (new rows, optionally the kernels) and frozen.


def new_config(model: model_io.Model, k: int) -> networks.NetworkConfig:
  """The base architecture with the ``k`` new styles only (what a training step runs)."""
  return dataclasses.replace(model.config, num_styles=k)


def split(model: model_io.Model, rows: Mapping[str, Mapping[str, np.ndarray]], train_all: bool
          ) -> tuple[dict, dict]:
  """(trainable, frozen): ``trainable['new']`` the new rows (K, C) per normalised layer and, with
  ``train_all``, ``trainable['shared']`` the kernels and biases; ``frozen`` those otherwise."""
  shared = {l: {n: np.asarray(a, np.float32) for n, a in p.items() if n not in ('gamma', 'beta')}
            for l, p in model.params.items()}
  trainable: dict[str, Any] = {'new': {l: {n: np.asarray(a, np.float32) for n, a in r.items()}
                                       for l, r in rows.items()}}
  if train_all:
    trainable['shared'] = shared
    return trainable, {}
  return trainable, shared


def assemble(trainable: Mapping, frozen: Mapping) -> dict:
  """The K-style network's nested params from the two parts."""
  shared = trainable.get('shared', frozen)
  return {l: {**p, **trainable['new'].get(l, {})} for l, p in shared.items()}


def appended(model: model_io.Model, trainable: Mapping) -> tuple[networks.NetworkConfig, dict]:
  """The N + K style network: the base rows then the new ones; kernels trained or the base's."""
  k = next(iter(trainable['new'].values()))['gamma'].shape[0]
  shared = trainable.get('shared')
  params: dict[str, dict[str, np.ndarray]] = {}
  for l, p in model.params.items():
    params[l] = {}
    for n, a in p.items():
      if n in ('gamma', 'beta'):
        params[l][n] = np.concatenate([a, np.asarray(trainable['new'][l][n], np.float32)])
      else:
        params[l][n] = np.asarray(shared[l][n] if shared is not None else a, np.float32)
  return dataclasses.replace(model.config, num_styles=model.num_styles + k), params


# --- Initial rows.


def mean_rows(model: model_io.Model, k: int) -> dict:
  return {l: {n: np.repeat(model.params[l][n].mean(0, keepdims=True), k, 0).astype(np.float32)
              for n in ('gamma', 'beta')} for l in norm_layers(model.config)}


def identity_rows(model: model_io.Model, k: int) -> dict:
  shapes = networks.param_shapes(new_config(model, k))
  return {l: {'gamma': np.ones(shapes[l]['gamma'], np.float32),
              'beta': np.zeros(shapes[l]['beta'], np.float32)} for l in norm_layers(model.config)}


@functools.lru_cache(maxsize=8)
def _probe_fn(netcfg: networks.NetworkConfig, spec: objective.Spec):
  """jit ``(params, photos, sw, idx, consts) -> total``: the training loss of one candidate."""
  def total(params, photos, sw, idx, consts):
    out = networks.apply_params(netcfg, params, photos / 255., sw, True, winograd=False) * 255.
    return feedforward.batch_loss_terms(out, photos, consts['vgg'], consts['grams'],
                                        consts['weights'], spec, idx)['total']
  return jax.jit(total)


def probe_losses(model: model_io.Model, photos: np.ndarray, consts: Mapping,
                 spec: objective.Spec, k: int) -> np.ndarray:
  """(N + 1, K) training losses on ``photos``: candidate c (style c of the base, or the mean
  of all for c = N) for new style k."""
  n = model.num_styles
  cand = {l: dict(p) for l, p in model.params.items()}
  for l, rows in mean_rows(model, 1).items():
    for name, r in rows.items():
      cand[l][name] = np.concatenate([model.params[l][name], r])
  netcfg = dataclasses.replace(model.config, num_styles=n + 1)
  fn = _probe_fn(netcfg, spec)
  params = jax.tree.map(jnp.asarray, cand)
  x = jnp.asarray(photos, jnp.float32)
  eye = np.eye(n + 1, dtype=np.float32)
  out = np.zeros((n + 1, k))
  for c in range(n + 1):
    for j in range(k):
      idx = jnp.full((x.shape[0],), j, jnp.int32)
      out[c, j] = float(fn(params, x, jnp.asarray(eye[c]), idx, consts))
  return out


def nearest_rows(model: model_io.Model, losses: np.ndarray) -> tuple[dict, list[str]]:
  """The rows of each new style's lowest-loss candidate, and the candidates' names."""
  n = model.num_styles
  best = [int(i) for i in np.argmin(losses, axis=0)]
  mean = mean_rows(model, 1)
  rows = {l: {name: np.stack([model.params[l][name][b] if b < n else mean[l][name][0]
                              for b in best]).astype(np.float32) for name in ('gamma', 'beta')}
          for l in norm_layers(model.config)}
  return rows, [model.styles[b] if b < n else 'mean' for b in best]


def probe_photos(sampler: data_lib.CropSampler, count: int, seed: int) -> np.ndarray:
  """A fixed batch of training crops for the nearest-style probe (its own seeded stream)."""
  rng = np.random.default_rng([seed, 7])
  idx = rng.choice(len(sampler), size=min(count, len(sampler)), replace=False)
  return np.stack([sampler.crop_one(sampler.images[int(i)], rng) for i in idx])


# --- The task.


@functools.lru_cache(maxsize=16)
def batch_loss_fn(netcfg: networks.NetworkConfig, spec: objective.Spec, fast: bool):
  """``loss(trainable, batch, consts) -> (total, terms)``: the from-scratch task's loss of the
  K-style network assembled from the trainable and frozen parameters (cached, so equal
  configurations share one compiled chunk)."""
  def loss(p, batch, consts):
    photos = batch['content'].astype(jnp.float32)
    idx = batch.get('style_index')
    eye = jnp.eye(netcfg.num_styles, dtype=jnp.float32)
    sw = eye[idx] if idx is not None else eye[0]
    out = networks.apply_params(netcfg, assemble(p, consts['frozen']), photos / 255., sw,
                                fast, winograd=False) * 255.
    terms = feedforward.batch_loss_terms(out, photos, consts['vgg'], consts['grams'],
                                         consts['weights'], spec, idx)
    return terms['total'], terms
  return loss


def finetune_task(config, vgg_params: Mapping) -> loop_lib.Task:
  """New styles (``--style``, comma separated) appended to an N-style network."""
  model = check_inputs(config)
  paths = train_schema.style_paths(config)
  deepest = _deepest(config)
  styles = [check_painting(p, int(config.style_size), int(config.max_pixels), deepest)
            for p in paths]
  k, n = len(styles), model.num_styles
  train_all = bool(config.finetune.train_all)
  netcfg = new_config(model, k)
  spec = feedforward.objective_spec(config)
  weights = feedforward.objective_weights(config, spec)
  grams = feedforward.style_targets(vgg_params, spec, styles)
  consts: dict[str, Any] = {'vgg': vgg_params, 'grams': grams, 'weights': weights}
  content = data_lib.content_sampler(config)
  init: dict[str, Any] = {'method': config.finetune.init}
  if config.finetune.init == 'nearest':
    photos = probe_photos(content, int(config.batch_size), int(config.seed))
    losses = probe_losses(model, photos, consts, spec, k)
    rows, names = nearest_rows(model, losses)
    init.update(start=dict(zip([Path(p).stem for p in paths], names)),
                start_loss=[float(v) for v in losses.min(0)],
                mean_loss=[float(v) for v in losses[n]])
  elif config.finetune.init == 'mean':
    rows = mean_rows(model, k)
  else:
    rows = identity_rows(model, k)
  trainable, frozen = split(model, rows, train_all)
  consts['frozen'] = frozen
  samplers: dict[str, Any] = {'content': content}
  if k > 1:
    samplers['style_index'] = feedforward.StyleIndexSampler(k, int(config.batch_size),
                                                            int(config.seed) + 2)
  loss = batch_loss_fn(netcfg, spec, config.net.get('impl', 'direct') == 'fast')
  photo = data_lib.sample_photo(config)
  apply = jax.jit(lambda p, fz, x, sw: networks.apply_params(netcfg, assemble(p, fz), x, sw,
                                                             True))
  eye = jnp.eye(k, dtype=jnp.float32)

  def sample(p, consts_):
    x = jnp.asarray(photo, jnp.float32)[None] / 255.
    outs = [np.asarray(apply(p, consts_['frozen'], x, eye[i]))[0] for i in range(min(k, 8))]
    return image_io.to_uint8(np.concatenate(outs, axis=1) * 255.)

  base_sha = fingerprint(model)
  info = {'finetuned_from': model.source or BUILTIN, 'base_sha256': base_sha,
          'base_styles': n, 'new_styles': {str(n + i): p for i, p in enumerate(paths)},
          'train_all': train_all, 'init': init}

  def save(directory: Path, p) -> None:
    cfg, params = appended(model, jax.device_get(p))
    model_io.save_model(directory, cfg, params, list(model.styles) + [Path(s).stem for s in paths],
                        dict(info, style_paths=list(paths),
                             trained_with=feedforward._loss_description(config)))

  return loop_lib.Task('finetune', jax.tree.map(jnp.asarray, trainable), loss, consts, samplers,
                       save, sample if photo is not None else None,
                       {'styles': paths, 'network': netcfg.to_dict(), **info})
