"""AdaIN arbitrary style transfer (Huang & Belongie 2017) on the project's VGG19.

"Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization" (ICCV 2017,
arXiv:1703.06868): the encoder is VGG19 up to relu4_1 (:mod:`nst_jax.models.vgg`, frozen, Caffe
weights, RGB 0..255 input); the AdaIN layer aligns each channel's mean and standard deviation of
the content features to the style's; a decoder mirroring the encoder (nearest-neighbour 2x
upsampling instead of pooling, reflection padding, no normalisation) maps the result back to an
image. Only the decoder is trained (:func:`loss_terms`, through :mod:`nst_jax.training.loop`):

* content loss: ``mean((f(g(t)) - t)^2)`` at relu4_1, with ``t = AdaIN(f(c), f(s))`` (paper eq. 12);
* style loss: ``sum_l mean((mu_l(g(t)) - mu_l(s))^2) + mean((sigma_l(g(t)) - sigma_l(s))^2)`` over
  relu1_1, relu2_1, relu3_1, relu4_1 (eq. 13, squared as in the authors' PyTorch code);
* total ``content + style_weight * style`` (style weight 10, the paper's lambda);
* features in the units of the authors' normalised VGG19 (:data:`FEATURE_SCALE`), the output
  scored as saved (clipped, :func:`as_saved`).

Before the AdaIN loss the decoder can be pre-trained as an inverse of relu4_1
(:func:`reconstruction_loss_terms`, Li et al. 2017's decoder loss; the ``adain.pretrain_steps``
of :mod:`nst_jax.training.tasks.adain`); the same decoder serves WCT (:mod:`nst_jax.models.wct`).

Statistics are over the spatial axes with the population variance and ``eps = 1e-5`` inside the
square root. Inference: :func:`stylize` (``alpha`` interpolates features between the content's and
the AdaIN target, eq. 14; several styles mix their feature statistics, eq. 15's convex weights;
with masks, :func:`adain_regions` gives each region its own style: the paper's spatial control).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError, NSTError
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.models import convolution, vgg

ENCODER_LAYER = 'block4_conv1'  # relu4_1
STYLE_LAYERS = ('block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1')  # relu1_1..4_1
EPS = 1e-5
# Decoder (the paper's Sec. 6 / authors' code): mirrors VGG19 relu4_1 -> input. 'up' = nearest x2.
DECODER_LAYOUT = (256, 'up', 256, 256, 256, 128, 'up', 128, 64, 'up', 64, 3)
# The output conv's unit: its 0..1 output times 255 (authors' code: the decoder outputs 0..1
# images). Decoders saved before this (model.json without 'output_scale' and 'input_scale') took
# raw relu4_1 and output 0..255 directly; load_decoder converts them to the same function.
OUTPUT_SCALE = 255.
# The output conv's initial bias: the ImageNet mean colour (vgg.BGR_MEAN, in RGB, 0..1), so an
# untrained decoder starts at mid grey rather than black.
_OUTPUT_BIAS_INIT = tuple(m / OUTPUT_SCALE for m in vgg.BGR_MEAN[::-1])
# Each layer's mean activation on photos: our Caffe VGG19 over 64 BSDS500 crops of 256 px (photos
# rescaled to 512, the adain2017 preset's crops), measured 2026-12-03 (spread over 8 batches of 8:
# +-11 %, 8 %, 7 %, 7 %). The authors' "normalised" VGG19 (Gatys et al. 2015 rescaled every filter
# to mean activation 1 over ImageNet) has these near 1: the losses and the decoder's input divide
# by them to work in those units (see loss_terms and Decoder).
FEATURE_SCALE = {'block1_conv1': 18.8, 'block2_conv1': 100., 'block3_conv1': 92.,
                 'block4_conv1': 367.}


def mean_std(features: jax.Array, eps: float = EPS, mask: Optional[jax.Array] = None
             ) -> tuple[jax.Array, jax.Array]:
  """Per-channel mean and standard deviation over the spatial axes of (..., H, W, C) features.

  ``std = sqrt(population variance + eps)``. With ``mask`` (..., H, W) the statistics are
  weighted by it (the paper's spatial control: one AdaIN per region).
  """
  if mask is None:
    mu = jnp.mean(features, axis=(-3, -2), keepdims=True)
    var = jnp.mean(jnp.square(features - mu), axis=(-3, -2), keepdims=True)
  else:
    m = mask[..., None]
    area = jnp.maximum(jnp.sum(m, axis=(-3, -2), keepdims=True), 1e-8)
    mu = jnp.sum(features * m, axis=(-3, -2), keepdims=True) / area
    var = jnp.sum(jnp.square(features - mu) * m, axis=(-3, -2), keepdims=True) / area
  return mu, jnp.sqrt(var + eps)


def adain(content: jax.Array, style: jax.Array, eps: float = EPS) -> jax.Array:
  """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y) (paper eq. 8), NHWC features."""
  mu_c, sd_c = mean_std(content, eps)
  mu_s, sd_s = mean_std(style, eps)
  return sd_s * (content - mu_c) / sd_c + mu_s


def adain_from_stats(content: jax.Array, mu_s: jax.Array, sd_s: jax.Array,
                     eps: float = EPS) -> jax.Array:
  """AdaIN with given target statistics (e.g. mixed from several styles)."""
  mu_c, sd_c = mean_std(content, eps)
  return sd_s * (content - mu_c) / sd_c + mu_s


def adain_regions(content: jax.Array, masks: jax.Array, mu_s: jax.Array, sd_s: jax.Array,
                  alpha: float | jax.Array = 1., eps: float = EPS) -> jax.Array:
  """Per-region AdaIN (the paper's spatial control): one feature map, decoded once.

  Region ``r`` (mask ``m_r``) gets ``AdaIN_r(f) = sd_s[r] (f - mu_r(f)) / sd_r(f) + mu_s[r]``, with
  the content's mean and standard deviation taken over that region only (weighted by ``m_r``)
  and the style statistics of painting ``r``; ``alpha`` blends each with ``f`` (eq. 14). The
  result is ``t = sum_r w_r AdaIN_r(f) + (1 - min(sum_r m_r, 1)) f`` with ``w_r = m_r /
  max(sum_r m_r, 1)`` (overlaps normalised, the content's own features where no mask covers).

  Args:
    content: (N, h, w, C) features.
    masks: (K, h, w) region masks in 0..1 on the feature grid.
    mu_s, sd_s: (K, C) (or any (K, ..., C)) style statistics per region.
    alpha: 0..1, per-region interpolation towards the AdaIN target.
    eps: inside the square root of the content's variance.

  Returns:
    (N, h, w, C) features.
  """
  k, c = masks.shape[0], content.shape[-1]
  mu_s = jnp.reshape(mu_s, (k, 1, 1, 1, c))
  sd_s = jnp.reshape(sd_s, (k, 1, 1, 1, c))
  f = content[None]                                   # (1, N, h, w, C)
  mu_c, sd_c = mean_std(f, eps, masks[:, None])       # (K, N, 1, 1, C), over each region
  t = sd_s * (f - mu_c) / sd_c + mu_s
  t = alpha * t + (1. - alpha) * f                     # (K, N, h, w, C)
  total = jnp.sum(masks, 0)
  w = masks / jnp.maximum(total, 1.)[None]
  return (jnp.einsum('khw,knhwc->nhwc', w, t)
          + (1. - jnp.minimum(total, 1.))[None, :, :, None] * content)


def _reflect_pad(x: jax.Array, p: int = 1) -> jax.Array:
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')


def conv3x3_reflect(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A 3x3 conv of ``x`` reflection-padded by 1 (NHWC x HWIO), computed as XLA:CPU likes it.

  Equal to ``VALID`` conv of ``_reflect_pad(x)``, but that ran 1.5-2x slower on XLA:CPU (forward
  and kernel gradient) than a ``SAME`` (zero-padded) conv of the same size; the outputs differ
  only on the border, so the interior comes from the ``SAME`` conv and the four border lines
  from ``VALID`` convs of 3-wide strips of the reflection-padded input (2/H + 2/W extra work).
  """
  xp = _reflect_pad(x)
  y = convolution.conv3x3_same(x, kernel)
  valid = lambda part: convolution.plain(part, kernel, 1, 'VALID')
  top, bottom = valid(xp[:, :3]), valid(xp[:, -3:])
  y = jnp.concatenate([top, y[:, 1:-1], bottom], axis=1)
  left, right = valid(xp[:, :, :3]), valid(xp[:, :, -3:])
  return jnp.concatenate([left, y[:, :, 1:-1], right], axis=2)


class _Conv3x3Reflect(nn.Module):
  """nn.Conv's parameters (LeCun-normal 'kernel' HWIO, zero 'bias'), reflection padding."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv3x3_reflect(x, kernel) + bias


def upsample_nearest(x: jax.Array) -> jax.Array:
  """2x nearest-neighbour upsampling of NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Decoder(nn.Module):
  """The AdaIN decoder: relu4_1 features (N, h, w, 512) -> RGB 0..255 (N, 8h, 8w, 3).

  The decoder works in the authors' units: its input is divided by relu4_1's mean activation
  (:data:`FEATURE_SCALE`, their normalised VGG's scale) and its output conv's 0..1 result
  multiplied by :data:`OUTPUT_SCALE` (255: their decoder outputs 0..1 images); it starts at the
  mean colour of ImageNet (:func:`init_decoder`). Upsampling is nearest-neighbour and every conv
  reflection-padded, as in Huang & Belongie's decoder: transposed (or strided) convolutions would
  print a checkerboard, zero padding dark borders.

  Attributes:
    width: multiplies every hidden width (1 = the paper's 256/128/64 channels).
  """
  width: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array,
               hidden_map: Optional[Callable[[int, jax.Array], jax.Array]] = None) -> jax.Array:
    """``hidden_map(i, h)``: replaces hidden activation ``i`` (1-based: the output of conv i and
    its ReLU) by its value (decoder-level matching, :func:`decoder_statistics`). The
    activations are sown as ``intermediates`` ``hidden{i}`` before the map."""
    n_conv = sum(1 for v in DECODER_LAYOUT if v != 'up')
    # With the output in 0..1 units (below), raw relu4_1 (mean ~370 on photos; the authors'
    # normalised VGG: ~1) would make every hidden activation ~370x theirs: an untrained decoder
    # put out noise of RMS ~14000 grey levels, and the output conv would need kernels hundreds of
    # times below its init, which each Adam step (~lr per parameter) changes by a large fraction.
    x = x / FEATURE_SCALE[ENCODER_LAYER]
    i = 0
    for v in DECODER_LAYOUT:
      if v == 'up':
        x = upsample_nearest(x)
        continue
      i += 1
      last = i == n_conv
      ch = 3 if last else max(1, int(round(float(v) * self.width)))
      if last:
        # Why 0..1 units: Adam moves each parameter by about the learning rate per step, so a
        # conv that output 0..255 directly (the shipped decoder until now) could move its bias
        # by ~1e-4..1e-3 grey levels a step: after 1445 steps its biases were still ~0.1, the
        # reconstructions' channel means 54/44/52 against the photo's 103/115/120 (dark, red and
        # blue above green: the purple cast). In 0..1 units the bias reaches any colour.
        x = OUTPUT_SCALE * _Conv3x3Reflect(ch, name=f'conv{i}')(x)
      else:
        x = nn.relu(_Conv3x3Reflect(ch, name=f'conv{i}')(x))
        self.sow('intermediates', f'hidden{i}', x)
        if hidden_map is not None:
          x = hidden_map(i, x)
    return x


def encode(vgg_params: Mapping, images: jax.Array, layers: Sequence[str] = (ENCODER_LAYER,),
           conv_impl: str = 'direct') -> dict[str, jax.Array]:
  """VGG19 features (max pooling) of RGB 0..255 NHWC images."""
  return vgg.features(vgg_params, images, tuple(layers), 'max', conv_impl)


def as_saved(images: jax.Array) -> jax.Array:
  """The decoder's output as it is saved (clipped to 0..255), with the identity's gradient.

  The losses score this, not the raw output: the shipped decoder put 2.5 % of a photo's pixels
  below 0 (down to -115), statistics VGG scored but no saved image has. The straight-through
  gradient keeps clipped pixels trainable (a plain clip would give them none).
  """
  return images + jax.lax.stop_gradient(jnp.clip(images, 0., 255.) - images)


def _scaled(features: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  return {l: f / FEATURE_SCALE[l] for l, f in features.items()}


def loss_terms(decoder_params: Mapping, vgg_params: Mapping, content: jax.Array,
               style: jax.Array, style_weight: float | jax.Array = 10., width: float = 1.0,
               conv_impl: str = 'direct', content_weight: float | jax.Array = 1.
               ) -> dict[str, jax.Array]:
  """The paper's training loss on a batch of (N, H, W, 3) RGB 0..255 content and style crops.

  Features are in the authors' normalised-VGG units (each layer divided by its
  :data:`FEATURE_SCALE`). In raw Caffe units the relu4_1 terms weighed (367 / 18.8)^2 ~ 380x the
  relu1_1 ones, where a painting's colours live: the style loss hardly asked for them, which is
  part of why the shipped decoder's colours drifted (dark, purple).
  """
  fc = _scaled(encode(vgg_params, content, (ENCODER_LAYER,), conv_impl))[ENCODER_LAYER]
  fs = _scaled(encode(vgg_params, style, STYLE_LAYERS, conv_impl))
  t = jax.lax.stop_gradient(adain(fc, fs[ENCODER_LAYER]))
  out = cast(jax.Array, Decoder(width).apply({'params': decoder_params},
                                             t * FEATURE_SCALE[ENCODER_LAYER]))
  fo = _scaled(encode(vgg_params, as_saved(out), STYLE_LAYERS, conv_impl))
  content_loss = content_weight * jnp.mean(jnp.square(fo[ENCODER_LAYER] - t))
  style_loss = jnp.zeros((), jnp.float32)
  for l in STYLE_LAYERS:
    mu_o, sd_o = mean_std(fo[l])
    mu_s, sd_s = mean_std(jax.lax.stop_gradient(fs[l]))
    style_loss += jnp.mean(jnp.square(mu_o - mu_s)) + jnp.mean(jnp.square(sd_o - sd_s))
  style_loss = style_weight * style_loss
  return {'content': content_loss, 'style': style_loss, 'total': content_loss + style_loss}


def reconstruction_loss_terms(decoder_params: Mapping, vgg_params: Mapping, images: jax.Array,
                              pixel_weight: float | jax.Array = 1.,
                              feature_weight: float | jax.Array = 1., width: float = 1.0,
                              conv_impl: str = 'direct') -> dict[str, jax.Array]:
  """The decoder as an inverse of VGG19 relu4_1 (Li et al. 2017, "Universal Style Transfer via
  Feature Transforms", Sec. 3.1: ``||I_o - I_i||^2 + lambda ||Phi(I_o) - Phi(I_i)||^2``).

  ``pixel``: mean squared error of the decoded (N, H, W, 3) images in 0..1 units; ``feature``:
  of their relu4_1 features in normalised-VGG units (:data:`FEATURE_SCALE`): the units of the
  weights 1 and 1 that eridgd/WCT-TF's decoder training uses by default (images in 0..1, the
  normalised VGG19).
  """
  f = encode(vgg_params, images, (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER]
  out = cast(jax.Array, Decoder(width).apply({'params': decoder_params}, f))
  pixel = jnp.mean(jnp.square((out - images) / OUTPUT_SCALE))
  fo = encode(vgg_params, as_saved(out), (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER]
  feature = jnp.mean(jnp.square((fo - f) / FEATURE_SCALE[ENCODER_LAYER]))
  pixel, feature = pixel_weight * pixel, feature_weight * feature
  return {'pixel': pixel, 'feature': feature, 'total': pixel + feature}


def init_decoder(seed: int = 0, width: float = 1.0) -> dict:
  """Freshly initialised decoder params (Flax defaults: LeCun normal kernels, zero biases; the
  output conv's bias the mean colour: :class:`Decoder`)."""
  # Drawn with NumPy from the traced shapes: Flax's init (or jax.random, op by op) took 16-19 s
  # on a busy 2-core CPU, nearly all of it compiling small programs.
  x = jax.ShapeDtypeStruct((1, 4, 4, vgg.CHANNELS[ENCODER_LAYER]), jnp.float32)
  shapes = jax.eval_shape(lambda x: Decoder(width).init(jax.random.PRNGKey(0), x)['params'], x)
  rng = np.random.default_rng(seed)
  params = {}
  for layer in sorted(shapes, key=lambda name: int(name[4:])):
    shape = shapes[layer]['kernel'].shape
    # Flax's lecun_normal: a normal truncated at 2 std, rescaled to variance 1 / fan_in.
    z = rng.standard_normal(shape)
    while np.any(bad := np.abs(z) > 2.):
      z[bad] = rng.standard_normal(int(bad.sum()))
    std = np.sqrt(1. / np.prod(shape[:-1])) / .87962566103423978
    params[layer] = {'kernel': jnp.asarray(z * std, jnp.float32),
                     'bias': jnp.zeros(shapes[layer]['bias'].shape, jnp.float32)}
  params[_OUTPUT_CONV]['bias'] = jnp.asarray(_OUTPUT_BIAS_INIT, jnp.float32)
  return params


# Decoder-level matching: the hidden activations to match, all of them (chosen on 20 tuning pairs
# against matching the four finer ones, every other one, the last two and half strength:
# docs/results/2026-12-08-adain-decoder-matching.md).
MATCHED_HIDDEN = (1, 2, 3, 4, 5, 6, 7, 8)


@functools.partial(jax.jit, static_argnames=('width', 'conv_impl'))
def _decoder_stats(decoder_params, vgg_params, style, width, conv_impl):
  fs = encode(vgg_params, style, (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER]
  _, state = Decoder(width).apply({'params': decoder_params}, fs, mutable=['intermediates'])
  hidden = state['intermediates']
  return tuple(mean_std(hidden[f'hidden{i}'][0]) for i in MATCHED_HIDDEN)


def decoder_statistics(decoder_params: Mapping, vgg_params: Mapping,
                       styles: Sequence[np.ndarray], width: Optional[float] = None,
                       conv_impl: str = 'direct') -> tuple[tuple[jax.Array, jax.Array], ...]:
  """Decoder-level targets: each painting's relu4_1 features decoded (its reconstruction), the
  channel means and standard deviations of the decoder's hidden activations
  :data:`MATCHED_HIDDEN`, stacked over paintings: one ((K, C_i), (K, C_i)) pair per activation.

  Matching a stylization's hidden activations to these (AdaIN inside the decoder, coarse to fine)
  carries the painting's statistics below relu4_1's scale, which AdaIN at relu4_1 alone does not
  reach; no training involved."""
  width = decoder_width(decoder_params) if width is None else width
  per = [_decoder_stats(decoder_params, vgg_params, jnp.asarray(pad_to_multiple(s)[0],
                                                                jnp.float32)[None],
                        float(width), conv_impl) for s in styles]
  return tuple((jnp.stack([p[j][0] for p in per]), jnp.stack([p[j][1] for p in per]))
               for j in range(len(MATCHED_HIDDEN)))


def _matcher(dstats, alpha, weights=None, masks=None):
  """The decoder's hidden_map for decoder-level matching (None where ``dstats`` is None)."""
  if dstats is None:
    return None
  targets = dict(zip(MATCHED_HIDDEN, dstats))

  def hidden_map(i, h):
    if i not in targets:
      return h
    mus, sds = targets[i]
    if masks is not None:  # per region, the masks pooled onto this activation's grid
      f = masks.shape[1] // h.shape[1]
      grid = masks.reshape(masks.shape[0], h.shape[1], f, h.shape[2], f).mean((2, 4))
      return adain_regions(h, grid, mus, sds, alpha)
    t = adain_from_stats(h, jnp.tensordot(weights, mus, 1), jnp.tensordot(weights, sds, 1))
    return alpha * t + (1. - alpha) * h

  return hidden_map


@functools.partial(jax.jit, static_argnames=('width', 'conv_impl'))
def _stylize(decoder_params, vgg_params, content, mus, sds, weights, alpha, width, conv_impl,
             dstats=None):
  fc = encode(vgg_params, content, (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER]
  mu = jnp.tensordot(weights, mus, 1)
  sd = jnp.tensordot(weights, sds, 1)
  t = adain_from_stats(fc, mu, sd)
  t = alpha * t + (1. - alpha) * fc
  return Decoder(width).apply({'params': decoder_params}, t, _matcher(dstats, alpha, weights))


def masks_to_grid(masks: jax.Array) -> jax.Array:
  """(K, H, W) masks -> the relu4_1 grid (K, H/8, W/8), pooled as the Gatys masks are
  (:func:`nst_jax.models.vgg.layer_masks`: 2x2 area averages at each pooling stage)."""
  return vgg.layer_masks(masks, (ENCODER_LAYER,))[ENCODER_LAYER]


@functools.partial(jax.jit, static_argnames=('width', 'conv_impl'))
def _stylize_regions(decoder_params, vgg_params, content, masks, mus, sds, alpha, width,
                     conv_impl, dstats=None):
  """content (1, H, W, 3) 0..255, masks (K, H, W): per-region AdaIN, one decoding; the photo is
  kept where no mask covers (composited by the uncovered fraction at full resolution)."""
  fc = encode(vgg_params, content, (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER]
  t = adain_regions(fc, masks_to_grid(masks), mus, sds, alpha)
  out = Decoder(width).apply({'params': decoder_params}, t, _matcher(dstats, alpha, masks=masks))
  covered = jnp.minimum(jnp.sum(masks, 0), 1.)[None, :, :, None]
  return covered * out + (1. - covered) * content


@functools.partial(jax.jit, static_argnames=('conv_impl',))
def _style_stats(vgg_params, style, conv_impl):
  return mean_std(encode(vgg_params, style, (ENCODER_LAYER,), conv_impl)[ENCODER_LAYER])


def pad_to_multiple(image: np.ndarray, k: int = 8) -> tuple[np.ndarray, tuple[int, int]]:
  """Reflect-pads the first two axes of (H, W, ...) to multiples of k; returns (padded, (H, W))."""
  h, w = image.shape[:2]
  ph, pw = (-h) % k, (-w) % k
  if ph or pw:
    image = np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), mode='reflect')
  return image, (h, w)


def style_statistics(vgg_params: Mapping, styles: Sequence[np.ndarray],
                     conv_impl: str = 'direct') -> tuple[jax.Array, jax.Array]:
  """The paintings' relu4_1 channel means and standard deviations, stacked: ((K, C), (K, C))."""
  stats = [_style_stats(vgg_params, jnp.asarray(s, jnp.float32)[None], conv_impl) for s in styles]
  return jnp.stack([m for m, _ in stats]), jnp.stack([s for _, s in stats])


def stylize(decoder_params: Mapping, content: np.ndarray, style, alpha: float = 1.0,
            style_weights: Optional[Sequence[float]] = None, vgg_params: Optional[Mapping] = None,
            width: Optional[float] = None, conv_impl: str = 'direct',
            masks: Optional[np.ndarray] = None,
            statistics: Optional[tuple[jax.Array, jax.Array]] = None,
            decoder_matching: bool = False,
            decoder_stats: Optional[tuple[tuple[jax.Array, jax.Array], ...]] = None
            ) -> np.ndarray:
  """Stylizes one photo with one or several paintings in one forward pass.

  Args:
    decoder_params: trained decoder params (:func:`load_decoder` gives them with their width).
    content: (H, W, 3) uint8 RGB photo, any size (padded by reflection to a multiple of 8 for
      the three poolings, then cropped back).
    style: one (H, W, 3) uint8 RGB painting or a list of them.
    alpha: content-style trade-off in 0..1 (paper eq. 14): 0 = the photo's own features, 1 =
      full AdaIN.
    style_weights: with several styles, convex weights mixing their relu4_1 mean/std (eq. 15);
      default equal.
    vgg_params: VGG19 params (default: :func:`nst_jax.models.weights.load_vgg19`).
    width: decoder width multiplier (default: inferred from the params).
    conv_impl: VGG convolution algorithm.
    masks: optional (K, H, W) float masks in 0..1 at the photo's size, one per style: per-region
      AdaIN (:func:`adain_regions`; the masks averaged onto the relu4_1 grid), decoded once; the
      photo where no mask covers. ``style_weights`` is then unused.
    statistics: the paintings' :func:`style_statistics`, when computed once for many photos
      (folders, video frames); default: computed here.
    decoder_matching: also match the decoder's hidden activations to the paintings'
      reconstructions (:func:`decoder_statistics`; mixed by ``style_weights``, per region with
      ``masks``, blended by ``alpha``). ``decoder_stats``: those statistics computed once.

  Returns:
    (H, W, 3) uint8 RGB.
  """
  styles, w = check_styles(style, style_weights, alpha)
  vgg_params = default_vgg(vgg_params)
  width = decoder_width(decoder_params) if width is None else width
  mus, sds = (style_statistics(vgg_params, styles, conv_impl) if statistics is None
              else statistics)
  dstats = None
  if decoder_matching:
    dstats = (decoder_statistics(decoder_params, vgg_params, styles, width, conv_impl)
              if decoder_stats is None else decoder_stats)
  padded, (h, wd) = pad_to_multiple(np.asarray(content))
  if masks is not None:
    out = _stylize_regions(decoder_params, vgg_params, jnp.asarray(padded, jnp.float32)[None],
                           padded_masks(masks, len(styles), (h, wd)), mus, sds,
                           jnp.float32(alpha), float(width), conv_impl, dstats)
    return image_io.to_uint8(np.asarray(out[0, :h, :wd]))
  out = _stylize(decoder_params, vgg_params, jnp.asarray(padded, jnp.float32)[None], mus, sds,
                 jnp.asarray(w), jnp.float32(alpha), float(width), conv_impl, dstats)
  return image_io.to_uint8(np.asarray(out[0, :h, :wd]))


def check_styles(style, style_weights: Optional[Sequence[float]], alpha: float
                 ) -> tuple[list[np.ndarray], np.ndarray]:
  """(paintings as a list, normalised float32 weights); ConfigError for a bad alpha or weights."""
  if not 0. <= float(alpha) <= 1.:
    raise ConfigError(f'alpha (strength) must be in 0..1, got {alpha}')
  styles = [style] if isinstance(style, np.ndarray) and style.ndim == 3 else list(style)
  if not styles:
    raise ConfigError('stylize needs at least one style image')
  w = np.ones(len(styles), np.float32) if style_weights is None else np.asarray(
      style_weights, np.float32)
  if w.shape != (len(styles),) or np.any(w < 0) or w.sum() <= 0:
    raise ConfigError(f'style_weights must be {len(styles)} non-negative numbers with a positive '
                      f'sum, got {list(np.ravel(w))}')
  return styles, w / w.sum()


def default_vgg(vgg_params: Optional[Mapping]) -> Mapping:
  """``vgg_params``, or the VGG19 weights :func:`nst_jax.models.weights.load_vgg19` finds."""
  if vgg_params is not None:
    return vgg_params
  from nst_jax.models import weights as weights_lib  # pylint: disable=g-import-not-at-top
  return weights_lib.load_vgg19()


def padded_masks(masks: np.ndarray, k: int, shape: tuple[int, int]) -> jax.Array:
  """(K, H, W) masks at the photo's size ``shape``, clipped to 0..1 and padded as
  :func:`pad_to_multiple` pads the photo (ConfigError if there are not ``k`` of that size)."""
  m = np.asarray(masks, np.float32)
  if m.shape != (k, *shape):
    raise ConfigError(f'masks must be {k} (one per style) of the photo\'s size '
                      f'{shape[0]}x{shape[1]}, got shape {m.shape}')
  m, _ = pad_to_multiple(np.transpose(np.clip(m, 0., 1.), (1, 2, 0)))
  return jnp.asarray(np.transpose(m, (2, 0, 1)))


def decoder_width(decoder_params: Mapping) -> float:
  """The width multiplier of a decoder from its first conv's output channels."""
  return float(np.shape(decoder_params['conv1']['kernel'])[-1]) / DECODER_LAYOUT[0]


# --- The model directory: model.npz (flat 'conv1/kernel' arrays) + model.json.

MODEL_KIND = 'adain_decoder'
_OUTPUT_CONV = f'conv{sum(1 for v in DECODER_LAYOUT if v != "up")}'


def save_decoder(directory, params: Mapping, width: float = 1.0, dtype=np.float32) -> None:
  """Writes ``model.npz`` (plain arrays, no pickle; ``dtype`` float32, or float16 to ship: half
  the size, loaded back as float32) and ``model.json``, atomically."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  flat = {f'{layer}/{name}': np.asarray(v, np.float32).astype(dtype)
          for layer, p in params.items() for name, v in p.items()}
  fileio.atomic_write(directory / 'model.npz', lambda tmp: np.savez(tmp, **flat), '.npz')  # type: ignore[arg-type]
  fileio.write_json(directory / 'model.json', {
      'kind': MODEL_KIND, 'width': float(width), 'encoder': 'vgg19 relu4_1 (max pooling)',
      'input': 'relu4_1 features of RGB 0..255', 'output': 'RGB 0..255',
      # The units (load_decoder converts other ones; decoders saved before these: 1 and 1).
      'input_scale': FEATURE_SCALE[ENCODER_LAYER], 'output_scale': OUTPUT_SCALE,
      'paper': 'Huang & Belongie 2017, arXiv:1703.06868'})


def load_decoder(directory) -> tuple[dict, float]:
  """(decoder params, width) from a model directory written by :func:`save_decoder` (or the
  ``model.npz`` path itself); one-line errors for a missing, corrupt or foreign model."""
  p = Path(directory)
  d = p.parent if p.suffix == '.npz' else p
  meta_path, npz = d / 'model.json', d / 'model.npz'
  if not npz.is_file() or not meta_path.is_file():
    raise NSTError(f'no AdaIN decoder at {directory}: expected model.npz and model.json (train '
                   'one with run.py --config=configs/adain2017.py --output=DIR)')
  try:
    meta = json.loads(meta_path.read_text())
    with np.load(npz, allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except Exception as e:  # pylint: disable=broad-except
    raise NSTError(f'AdaIN model {d} is unreadable ({type(e).__name__}: {e})') from e
  kind = meta.get('kind', meta.get('format')) if isinstance(meta, dict) else None
  if kind != MODEL_KIND:
    raise NSTError(f'{d} holds a {kind!r} model, not an AdaIN decoder (model.json kind '
                   f'{MODEL_KIND!r})')
  try:
    width = float(meta.get('width', 1.0))
    if not 0. < width <= 16.:
      raise ValueError(f'width {width}')
  except (TypeError, ValueError) as e:
    raise NSTError(f'{meta_path} has an invalid decoder width ({e})') from None
  # Decoders saved before the units were recorded took raw relu4_1 and output 0..255 (1 and 1).
  units = {}
  for field in ('input_scale', 'output_scale'):
    try:
      units[field] = float(meta.get(field, 1.0))
      if not 0. < units[field] < 1e6:
        raise ValueError(f'{field} {units[field]}')
    except (TypeError, ValueError) as e:
      raise NSTError(f'{meta_path} has an invalid {field} ({e})') from None
  # The same function in this decoder's units: conv1(x / a, K) = conv1(x / b, K * b / a), and
  # the output conv's kernel and bias times (its scale / OUTPUT_SCALE).
  convert = {'conv1': {'kernel': FEATURE_SCALE[ENCODER_LAYER] / units['input_scale']},
             _OUTPUT_CONV: {'kernel': units['output_scale'] / OUTPUT_SCALE,
                            'bias': units['output_scale'] / OUTPUT_SCALE}}
  params: dict = {}
  for k, v in flat.items():
    layer, _, name = k.partition('/')
    if not name or not np.issubdtype(v.dtype, np.floating):
      raise NSTError(f'{npz} is not an AdaIN decoder (unexpected array {k!r} of {v.dtype})')
    factor = convert.get(layer, {}).get(name, 1.)
    v = np.asarray(v, np.float32)  # float16 files too
    params.setdefault(layer, {})[name] = jnp.asarray(v if factor == 1. else v * np.float32(factor))
  ref = jax.eval_shape(lambda: init_decoder(0, width))
  if str(jax.tree.structure(ref)) != str(jax.tree.structure(params)) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params))):
    raise NSTError(f'{d} is not an AdaIN decoder of width {width:g} (another architecture)')
  return params, width
