"""Ghiasi embedding refinement: one painting's 100-d style embedding optimised against the
project's perceptual loss, a task of the one training loop (:mod:`nst_jax.training.loop`).

Ghiasi et al.'s style prediction network maps a painting to an embedding in one pass; the
transformer then stylizes any photo with it. The prediction is a regression, not the optimum of
any loss: this task starts from it (:func:`nst_jax.models.ghiasi.predict` of the painting's centre
square at 256x256, as the ``arbitrary`` job computes it) and trains the embedding alone (every
network weight frozen) with the loss the feed-forward networks are trained with
(:func:`nst_jax.training.tasks.feedforward.batch_loss_terms`: content + Gram style + TV, the
config's layers and weights) of the transformer's outputs on random crops of the training photos
(``data_dir``, never the evaluation photos): optax Adam, ``chunk`` steps per jitted ``lax.scan``.

``--output=STYLE.npz`` is a style file (:mod:`nst_jax.models.ghiasi_style`), written atomically
at every save; the loop's own files (checkpoint, metrics, ``train.json``, ``config.json``) go to
the run directory beside it, ``STYLE.run/`` (:func:`run_directory`), so ``--config.resume=True``
continues an interrupted run. The arbitrary job takes the file in place of a painting:
``run.py --config=configs/arbitrary.py --style=STYLE.npz[,PAINTING] ...``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import numpy as np

from nst_jax.config import train as train_schema
from nst_jax.errors import ConfigError, ImageError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.losses import objective
from nst_jax.models import ghiasi, ghiasi_style
from nst_jax.training import data as data_lib
from nst_jax.training import loop as loop_lib
from nst_jax.training.tasks import feedforward

MIN_STYLE_SIDE = 16  # the arbitrary job's minimum painting side (jobs/arbitrary.py)
RUN_SUFFIX = '.run'


def run_directory(config) -> Path:
  """The loop's directory for ``--output=STYLE.npz``: ``STYLE.run`` beside the style file."""
  return Path(config.output).expanduser().with_suffix(RUN_SUFFIX)


def _painting(path: str, max_pixels: int) -> np.ndarray:
  """The painting as uint8 RGB; ImageError if unreadable, fully transparent or too small."""
  if image_io.is_fully_transparent(path):
    raise ImageError(f'style image {path} is fully transparent: it has no colours to learn')
  image = image_io.load_image(path, max_pixels=max_pixels)
  if min(image.shape[:2]) < MIN_STYLE_SIDE:
    raise ImageError(f'style image {path} is {image.shape[1]}x{image.shape[0]} px; both sides '
                     f'must be at least {MIN_STYLE_SIDE} px')
  return image


def check_inputs(config) -> None:
  """Every user error of a refinement run, before anything is written.

  Raises:
    ConfigError: not exactly one painting, a style file given as the painting, or an output
      that is not a ``.npz`` file.
    ImageError: an unreadable, fully transparent or too small painting; an unwritable output.
    WeightsError: Ghiasi weights that cannot be found or converted.
  """
  paths = train_schema.style_paths(config)
  if len(paths) != 1:
    raise ConfigError(f'embedding refinement takes one painting (--style=PAINTING), got '
                      f'{len(paths)}')
  if ghiasi_style.is_style_file(paths[0]):
    raise ConfigError(f'--style={paths[0]} is a style file; refinement starts from a painting')
  out = Path(config.output).expanduser()
  if out.suffix.lower() != ghiasi_style.SUFFIX:
    raise ConfigError(f'--output={config.output} must be a style file ending in .npz '
                      '(e.g. outputs/starry_night.npz)')
  fileio.check_writable(out, suffixes=(ghiasi_style.SUFFIX,))
  _painting(paths[0], int(config.max_pixels))
  ghiasi.resolve(config.ghiasi_weights or None)


@functools.lru_cache(maxsize=8)
def embedding_loss(spec: objective.Spec, eps: float, impl: str) -> Callable:
  """``loss(params, batch, consts) -> (total, terms)`` of one embedding (``params['embedding']``
  (100,)) on a batch of photos; cached so equal settings share one compiled chunk per process."""
  def loss(p, batch, consts):
    photos = batch['content'].astype(jnp.float32)
    emb = jnp.broadcast_to(p['embedding'][None], (photos.shape[0], ghiasi.EMBEDDING_DIM))
    out = ghiasi.transform({'transform': consts['transform'], 'eps': eps}, photos / 255., emb,
                           impl) * 255.
    terms = feedforward.batch_loss_terms(out, photos, consts['vgg'], consts['grams'],
                                         consts['weights'], spec)
    return terms['total'], terms
  return loss


def predicted_embedding(gparams: Mapping, painting: np.ndarray) -> np.ndarray:
  """The style prediction network's embedding (100,) of a uint8 painting (the job's input)."""
  x = jnp.asarray(ghiasi_style.predictor_input(painting))[None]
  return np.asarray(ghiasi.predict(gparams, x))[0]


def embedding_task(config, vgg_params: Mapping) -> loop_lib.Task:
  """The refinement of ``--style``'s embedding, saved to ``--output`` (a style file)."""
  check_inputs(config)
  path = train_schema.style_paths(config)[0]
  out = Path(config.output).expanduser().resolve()
  name = Path(path).stem
  painting = _painting(path, int(config.max_pixels))
  gparams = ghiasi.load(config.ghiasi_weights or None)
  init = predicted_embedding(gparams, painting)
  spec = feedforward.objective_spec(config)
  weights = feedforward.objective_weights(config, spec)
  style = image_io.resize_image(painting, size=int(config.style_size),
                                max_pixels=int(config.max_pixels))
  grams = feedforward.style_targets(vgg_params, spec, [style])
  impl = str(config.net.impl)
  loss = embedding_loss(spec, float(gparams['eps']), impl)
  photo = data_lib.sample_photo(config)

  def sample(p, consts):  # what the arbitrary job makes of the photo with this embedding
    del consts
    x = jnp.asarray(photo, jnp.float32)[None] / 255.
    y = ghiasi.transform(gparams, x, jnp.asarray(p['embedding'])[None])
    return image_io.to_uint8(np.asarray(y)[0] * 255.)

  info: dict[str, Any] = {'painting': str(path), 'init': 'predicted',
                          'trained_with': _loss_description(config)}

  def save(directory: Path, p) -> None:
    del directory  # the style file goes to --output; the loop's files stay in the run directory
    emb = np.asarray(p['embedding'], np.float32)
    ghiasi_style.save(out, emb, name, dict(info, moved_from_predicted=float(
        np.linalg.norm(emb - init))))

  params = {'embedding': jnp.asarray(init, jnp.float32)}
  consts = {'vgg': vgg_params, 'grams': grams, 'weights': weights,
            'transform': gparams['transform']}
  return loop_lib.Task('ghiasi_embedding', params, loss, consts,
                       {'content': data_lib.content_sampler(config)}, save,
                       sample if photo is not None else None,
                       {'style': str(path), 'style_file': str(out),
                        'predicted_embedding_norm': float(np.linalg.norm(init))},
                       model_file=str(out))


def _loss_description(config) -> dict:
  keys = ('content_layers', 'style_layers', 'content_weight', 'style_weight', 'tv_weight',
          'content_layer_weights', 'style_layer_weights', 'loss_norm', 'crop_size',
          'batch_size', 'learning_rate', 'style_size', 'data_dir')
  return {k: config[k] for k in keys}
