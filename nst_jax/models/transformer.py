"""Feed-forward image transformation networks (Johnson et al. 2016; Dumoulin et al. 2017).

One Flax module, :class:`Transformer`, covers both published layouts through
:class:`NetworkConfig`:

  reflect pad + conv k x k (stride 1)  -> norm -> ReLU          ``down_widths[0]``
  [reflect pad 1 + conv 3x3 stride 2   -> norm -> ReLU] * n     ``down_widths[1:]``
  [x + norm(conv(ReLU(norm(conv(x)))))] * ``residual_blocks``   (3x3, reflect pad 1)
  [nearest x2 resize + reflect pad 1 + conv 3x3 -> norm -> ReLU] ``up_widths``
  reflect pad + conv k x k -> (norm if ``norm_last``) -> output activation (0..1)

Every norm is instance normalisation; with ``num_styles = N > 1`` it is *conditional* instance
normalisation (Dumoulin et al.): one (gamma, beta) row per style and layer, and a convex
``style_weights`` vector (or one per batch element) mixes the rows at inference. Images are NHWC
float32 in 0..1, any size (odd too: the output is cropped to the input's size).

Presets: :func:`johnson2016` (32, 64, 128 channels, 5 residual blocks, 64, 32, tanh) and
:func:`multistyle26` (the shipped 26-style Magenta network: 32 channels throughout, 6 residual
blocks, 8 and 4 channels up, norm on the last conv, no conv biases, sigmoid).

Parameters are a plain nested dict ``{layer: {'kernel' HWIO, 'bias'?, 'gamma' (N, C),
'beta' (N, C)}}`` with layer names ``contract_i``, ``res_i_j``, ``expand_i`` (the names of the
ONNX file with dots -> underscores); :mod:`nst_jax.models.transformer_params` converts them to
and from the flat ``'layer/name'`` form stored in ``model.npz`` (see
:mod:`nst_jax.models.model_dir`), Flax's variables and the ONNX file's initializers.

Speed (``impl='fast'``, the default): XLA:CPU convolutions are slow with few channels, so the
module computes the same function with reformulated convolutions (all exact up to float
rounding, checked against ``impl='direct'`` in the tests): the first k x k conv as a
space-to-depth conv (2x2 blocks: 4*C_in channels in, 4*C_out out, a ceil((k+1)/2)^2 kernel),
nearest-resize + 3x3 conv as one sub-pixel 3x3 conv at the low resolution (edge padding,
4*C_out outputs) + depth-to-space, and the 3x3 stride-1 convs by Winograd F(2x2,3x3) or, for
larger layers, F(4x4,3x3) (see ``WINOGRAD_MAX_FLOATS``). On the CPU, where the native kernel is
built, every convolution instead runs on :func:`nst_jax.models.convolution.fused_conv`, a direct
convolution that also pads, applies the previous instance norm and ReLU while reading, and
returns the next norm's statistics (:func:`apply_native`; ``NATIVE_CONV``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError
from nst_jax.models import convolution
from nst_jax.models import winograd as winograd_lib

Params = dict[str, dict[str, jax.Array]]
ACTIVATIONS = ('sigmoid', 'tanh', 'linear')
IMPLS = ('fast', 'direct')
# Benchmark-only variants: the fast path with XLA's convolutions and Winograd (what the native
# kernel adds), and with XLA's own 3x3 convs too (what Winograd adds).
BENCH_IMPLS = IMPLS + ('fast_xla', 'fast_no_winograd')
# impl='fast' on the CPU: the native fused convolution where it is built. Measured 2-9x XLA:CPU's
# convolution on these layers, the 26-style network 1.40-1.53x -> 0.79-0.95x onnxruntime's time
# at 512 px (2-core EPYC; docs/results/2026-12-08-native-conv.md).
NATIVE_CONV = True
MIN_SIDE = 8
# Whether impl='fast' also rewrites the stride-2 convs (space-to-depth + 2x2 conv). Measured
# slower than XLA's own strided conv on the 2-core CPU (docs/results/2026-12-03-one-pass.md).
FAST_STRIDE2 = False
# impl='fast' runs convs in row strips of at most this many im2col floats (see :func:`conv`).
STRIP_FLOATS = 2 ** 19
ONE_PASS_NORM = True   # impl='fast': instance-norm statistics in one pass (see instance_norm)
BLOCK_NORM = True      # impl='fast': normalise the first conv in its space-to-depth layout
# impl='fast' runs a 3x3 stride-1 conv by Winograd F(2x2,3x3) when its output (positions x the
# larger channel count) is at most this many floats: 2.1-2.6x faster than XLA's conv up to
# 192x192x32 and 96x96x128, slower from 256x256x32 on (the transforms leave the cache; row strips
# did not help). Larger ones run F(4x4,3x3) on an odd tile grid: 1.3-1.5x faster than XLA's conv
# at 256x256x32, 384x384x32 and 128x128x128. Measured on the 2-core CPU
# (docs/results/2026-12-03-one-pass.md).
WINOGRAD_MAX_FLOATS = 3 * 2 ** 19
WINOGRAD_LARGE_TILE: Optional[int] = 4  # the larger convs' Winograd tile (None: XLA's conv)
# ...and only from this many output positions: below, it saves under ~0.5 ms a conv while the
# 26-style network's compile time doubles (1.4 -> 2.9 s at 64 px; ours, 2-core CPU).
WINOGRAD_MIN_POSITIONS = 64 * 64
UNROLL_STRIPS = 4  # up to this many strips are unrolled; more run in a lax.map loop


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """Architecture of a :class:`Transformer` (everything that shapes its parameters)."""
  down_widths: tuple[int, ...] = (32, 64, 128)  # first conv, then one stride-2 conv each
  residual_blocks: int = 5                      # width = down_widths[-1]
  up_widths: tuple[int, ...] = (64, 32)         # one nearest-x2 + 3x3 conv each
  in_kernel: int = 9
  out_kernel: int = 9
  channels: int = 3                             # image channels in and out
  num_styles: int = 1                           # > 1: conditional instance norm
  output_activation: str = 'tanh'               # sigmoid | tanh (rescaled to 0..1) | linear
  norm_last: bool = False                       # instance norm on the output conv too
  use_bias: bool = True                         # conv biases
  eps: float = 1e-5                             # instance norm epsilon

  def __post_init__(self):
    object.__setattr__(self, 'down_widths', tuple(int(w) for w in self.down_widths))
    object.__setattr__(self, 'up_widths', tuple(int(w) for w in self.up_widths))
    validate(self)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d['down_widths'], d['up_widths'] = list(self.down_widths), list(self.up_widths)
    return d

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> 'NetworkConfig':
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
      raise ConfigError(f'unknown network config field(s) {", ".join(unknown)}; known: '
                        f'{", ".join(sorted(fields))}')
    try:
      return cls(**dict(d))
    except (TypeError, ValueError) as e:
      raise ConfigError(f'invalid network config {json.dumps(dict(d), default=str)}: {e}') from e


def validate(c: NetworkConfig) -> None:
  """Raises ConfigError for an impossible architecture."""
  if not c.down_widths or any(w <= 0 for w in c.down_widths + c.up_widths):
    raise ConfigError(f'network widths must be positive, got down={c.down_widths} '
                      f'up={c.up_widths}')
  if c.residual_blocks < 0 or c.num_styles < 1 or c.channels < 1:
    raise ConfigError('residual_blocks must be >= 0, num_styles and channels >= 1')
  if c.in_kernel < 1 or c.out_kernel < 1 or c.in_kernel % 2 == 0 or c.out_kernel % 2 == 0:
    raise ConfigError(f'in_kernel/out_kernel must be odd and positive, got {c.in_kernel}, '
                      f'{c.out_kernel}')
  if c.output_activation not in ACTIVATIONS:
    raise ConfigError(f'unknown output_activation {c.output_activation!r}; choose one of '
                      f'{", ".join(ACTIVATIONS)}')
  if not c.eps > 0:
    raise ConfigError(f'eps must be positive, got {c.eps}')


def johnson2016(num_styles: int = 1) -> NetworkConfig:
  """Johnson et al. 2016 with the standard fixes (instance norm, resize-convs, reflect pads)."""
  return NetworkConfig(down_widths=(32, 64, 128), residual_blocks=5, up_widths=(64, 32),
                       num_styles=num_styles, output_activation='tanh', norm_last=False,
                       use_bias=True)


def multistyle26() -> NetworkConfig:
  """The shipped 26-style network (../shared/weights/magenta/multistyle26.onnx)."""
  return NetworkConfig(down_widths=(32, 32, 32), residual_blocks=6, up_widths=(8, 4),
                       num_styles=26, output_activation='sigmoid', norm_last=True,
                       use_bias=False, eps=1e-5)


PRESETS = {'johnson2016': johnson2016, 'multistyle26': multistyle26}


def layer_names(c: NetworkConfig) -> list[str]:
  names = [f'contract_{i}' for i in range(len(c.down_widths))]
  names += [f'res_{i}_{j}' for i in range(c.residual_blocks) for j in (0, 1)]
  names += [f'expand_{i}' for i in range(len(c.up_widths) + 1)]
  return names


def param_shapes(c: NetworkConfig) -> dict[str, dict[str, tuple[int, ...]]]:
  """``{layer: {name: shape}}`` of every parameter (HWIO kernels, (N, C) gamma/beta)."""
  specs = []  # (name, kernel, c_in, c_out, normed)
  cin = c.channels
  for i, w in enumerate(c.down_widths):
    specs.append((f'contract_{i}', c.in_kernel if i == 0 else 3, cin, w, True))
    cin = w
  for i in range(c.residual_blocks):
    specs += [(f'res_{i}_{j}', 3, cin, cin, True) for j in (0, 1)]
  for i, w in enumerate(c.up_widths):
    specs.append((f'expand_{i}', 3, cin, w, True))
    cin = w
  specs.append((f'expand_{len(c.up_widths)}', c.out_kernel, cin, c.channels, c.norm_last))
  shapes = {}
  for name, k, ci, co, normed in specs:
    s: dict[str, tuple[int, ...]] = {'kernel': (k, k, ci, co)}
    if c.use_bias:
      s['bias'] = (co,)
    if normed:
      s['gamma'] = s['beta'] = (c.num_styles, co)
    shapes[name] = s
  return shapes


# --- Building blocks (pure functions on NHWC arrays) ---------------------------------------

def reflect_pad(x: jax.Array, p: int, mode: str = 'reflect') -> jax.Array:
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode) if p else x


def space_to_depth(x: jax.Array, b: int = 2) -> jax.Array:
  """(B, H, W, C) -> (B, H/b, W/b, b*b*C), channel index = (row phase, col phase, c)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // b, w // b, b * b * c)


def depth_to_space(x: jax.Array, b: int = 2) -> jax.Array:
  """Inverse of :func:`space_to_depth`."""
  n, h, w, c = x.shape
  x = x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * b, w * b, c // (b * b))


def impl_choices(impl: str, bench: bool = False) -> tuple[bool, bool]:
  """``impl`` -> (fast, winograd); ``bench``: :data:`BENCH_IMPLS` are valid too. ConfigError
  naming the valid ones otherwise."""
  valid = BENCH_IMPLS if bench else IMPLS
  if impl not in valid:
    raise ConfigError(f'unknown impl {impl!r}; valid: {", ".join(valid)}')
  return impl != 'direct', impl in ('fast', 'fast_xla')


def use_native(impl: str = 'fast') -> bool:
  """Whether ``impl`` runs on the native fused convolution here (``'fast'`` on a CPU with the
  kernel built, unless ``NATIVE_CONV`` is off)."""
  return impl == 'fast' and NATIVE_CONV and convolution.fused_conv_available()


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1,
         strip_floats: Optional[int] = None, winograd: bool = False) -> jax.Array:
  """VALID NHWC convolution (padding is explicit, done by the caller).

  ``strip_floats``: if given, the conv runs in row strips whose im2col working set (output
  positions x taps x input channels) is at most about that many floats; the strips overlap by the
  kernel's halo, so the result is the same. XLA:CPU's convolution slows down several-fold once
  that working set leaves the cache (measured on the Ghiasi network; docs/design/ghiasi_port.md).
  """
  k, _, cin, _ = kernel.shape
  oh = (x.shape[1] - k) // stride + 1
  ow = (x.shape[2] - k) // stride + 1
  if winograd and k == 3 and stride == 1 and oh * ow >= WINOGRAD_MIN_POSITIONS:
    small = x.shape[0] * oh * ow * max(cin, kernel.shape[3]) <= WINOGRAD_MAX_FLOATS
    tile = 2 if small else WINOGRAD_LARGE_TILE
    if tile:
      return winograd_lib.conv3x3_valid(x, kernel, tile)
  strips = 1 if not strip_floats else -(-(x.shape[0] * oh * ow * k * k * cin) // strip_floats)
  rows = -(-oh // max(1, min(strips, oh)))
  n = -(-oh // rows)
  plain = lambda part: convolution.conv_valid(part, kernel, stride)
  if n == 1:
    return plain(x)
  if n <= UNROLL_STRIPS:
    return jnp.concatenate([plain(x[:, r0 * stride:(min(oh, r0 + rows) - 1) * stride + k])
                            for r0 in range(0, oh, rows)], axis=1)
  # Many strips: one loop (compile time independent of the image size), equal strips.
  need = (n * rows - 1) * stride + k
  x = jnp.pad(x, ((0, 0), (0, max(0, need - x.shape[1])), (0, 0), (0, 0)))
  span = (rows - 1) * stride + k
  ys = lax.map(lambda i: plain(lax.dynamic_slice_in_dim(x, i * rows * stride, span, axis=1)),
               jnp.arange(n))
  _, b, _, ow_, co = ys.shape
  return jnp.moveaxis(ys, 0, 1).reshape(b, n * rows, ow_, co)[:, :oh]


def s2d_kernel(kernel: jax.Array) -> jax.Array:
  """A stride-1 k x k kernel as the kernel of the same conv on 2x2 space-to-depth input.

  Returns (K, K, 4*C_in, 4*C_out) with K = (k + 2) // 2: output phase (a, b) of block (I, J)
  is the sum over block taps (U, V) and input phases (c, d) of tap (2U + c - a, 2V + d - b).
  """
  k, _, ci, co = kernel.shape
  kk = (k + 2) // 2
  # sel[a, c, U, u] = 1 if u == 2U + c - a.
  sel = np.zeros((2, 2, kk, k), np.float32)
  for a in range(2):
    for c in range(2):
      for u_blk in range(kk):
        u = 2 * u_blk + c - a
        if 0 <= u < k:
          sel[a, c, u_blk, u] = 1.
  w = jnp.einsum('acUu,bdVv,uvio->UVcdiabo', sel, sel, kernel, precision=lax.Precision.HIGHEST)
  return w.reshape(kk, kk, 4 * ci, 4 * co)


def s2d_input(xp: jax.Array, k: int, out_hw: tuple[int, int]) -> jax.Array:
  """The padded ``xp`` of a stride-1 k x k VALID conv with output ``out_hw``, zero-padded to
  whole 2x2 blocks of output and space-to-depth'ed: the input of :func:`s2d_kernel`'s conv."""
  kk = (k + 2) // 2
  bh, bw = -(-out_hw[0] // 2), -(-out_hw[1] // 2)  # output blocks
  need_h, need_w = 2 * (bh + kk - 1), 2 * (bw + kk - 1)
  xp = jnp.pad(xp, ((0, 0), (0, need_h - xp.shape[1]), (0, need_w - xp.shape[2]), (0, 0)))
  return space_to_depth(xp)


def conv_s2d(xp: jax.Array, kernel: jax.Array, out_hw: tuple[int, int],
             strip_floats: Optional[int] = None, blocks: bool = False,
             native: bool = False) -> jax.Array:
  """Stride-1 VALID conv of the padded ``xp`` via 2x2 space-to-depth; cropped to ``out_hw``
  (``blocks``: the uncropped space-to-depth output, (B, ceil(H/2), ceil(W/2), 4 * C_out));
  ``native``: the block conv by :func:`convolution.fused_conv`."""
  xs = s2d_input(xp, kernel.shape[0], out_hw)
  if native:
    y = convolution.fused_conv(xs, s2d_kernel(kernel))[0]
  else:
    y = conv(xs, s2d_kernel(kernel), 1, strip_floats)
  return y if blocks else depth_to_space(y)[:, :out_hw[0], :out_hw[1]]


def stride2_kernel(kernel: jax.Array) -> jax.Array:
  """A 3x3 stride-2 kernel as a 2x2 stride-1 kernel on 2x2 space-to-depth input."""
  _, _, ci, co = kernel.shape
  w = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # 4x4, taps 3 are zero
  w = w.reshape(2, 2, 2, 2, ci, co).transpose(0, 2, 1, 3, 4, 5)  # (U, V, c, d, i, o)
  return w.reshape(2, 2, 4 * ci, co)


def conv_stride2(xp: jax.Array, kernel: jax.Array, fast: bool,
                 strip_floats: Optional[int] = None) -> jax.Array:
  """3x3 stride-2 VALID conv of the padded ``xp`` (output ceil((Hp - 1) / 2) - ...)."""
  if not fast:
    return conv(xp, kernel, 2, strip_floats)
  hp, wp = xp.shape[1:3]
  oh, ow = (hp - 3) // 2 + 1, (wp - 3) // 2 + 1
  xp = jnp.pad(xp, ((0, 0), (0, 2 * oh + 2 - hp), (0, 2 * ow + 2 - wp), (0, 0)))
  return conv(space_to_depth(xp), stride2_kernel(kernel), 1, strip_floats)


# up[a] rows for output phase a at low-res taps r = -1, 0, 1 (rows) from up taps u = 0, 1, 2.
_SUBPIXEL = np.array([[[1, 0, 0], [0, 1, 1], [0, 0, 0]],
                      [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], np.float32)


def subpixel_kernel(kernel: jax.Array) -> jax.Array:
  """3x3 kernel after a nearest x2 resize -> (3, 3, C_in, 4*C_out) at the low resolution."""
  _, _, ci, co = kernel.shape
  w = jnp.einsum('aru,bsv,uvio->rsiabo', _SUBPIXEL, _SUBPIXEL, kernel,
                 precision=lax.Precision.HIGHEST)
  return w.reshape(3, 3, ci, 4 * co)


def upsample_conv(x: jax.Array, kernel: jax.Array, fast: bool,
                  strip_floats: Optional[int] = None, winograd: bool = False) -> jax.Array:
  """Nearest x2 resize, reflect pad 1, 3x3 conv: (B, H, W, C) -> (B, 2H, 2W, C_out)."""
  if not fast:
    up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return conv(reflect_pad(up, 1), kernel)
  # Reflect-padding the upsampled image repeats its edge row = edge-padding the low-res one.
  return depth_to_space(conv(reflect_pad(x, 1, 'edge'), subpixel_kernel(kernel), 1,
                             strip_floats, winograd))


def instance_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float,
                  one_pass: bool = False) -> jax.Array:
  """Per-image, per-channel normalisation over all axes but the first and last (H, W; or the
  blocks and phases of a space-to-depth layout); ``gamma``/``beta`` (B, C) or (C,).

  ``one_pass``: mean and variance from one read of ``x`` (sums of ``x - s`` and its square,
  shifted by the image's first pixel ``s`` so the subtraction does not cancel); XLA fuses both
  sums into a single pass. Otherwise the textbook two passes.
  """
  axes = tuple(range(1, x.ndim - 1))
  if one_pass:
    shift = lax.stop_gradient(x[(slice(None),) + (slice(0, 1),) * len(axes)])
    d = x - shift
    m1 = jnp.mean(d, axis=axes, keepdims=True)
    var = jnp.maximum(jnp.mean(jnp.square(d), axis=axes, keepdims=True) - jnp.square(m1), 0.)
    mean = shift + m1
  else:
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  scale = lax.rsqrt(var + eps) * _bc(gamma, x.ndim)
  return (x - mean) * scale + _bc(beta, x.ndim)


def _bc(v: jax.Array, ndim: int = 4) -> jax.Array:
  return v.reshape((-1,) + (1,) * (ndim - 2) + (v.shape[-1],))


def mix(table: jax.Array, style_weights: jax.Array) -> jax.Array:
  """Conditional-norm row mixing: (B, N) or (N,) weights x (N, C) table -> (B, C) or (C,)."""
  return jnp.matmul(style_weights, table, precision=lax.Precision.HIGHEST)


# --- The module ------------------------------------------------------------------------------

class Transformer(nn.Module):
  """The image transformation network; ``__call__(images, style_weights=None)``.

  Attributes:
    config: the architecture.
    impl: 'fast' (reformulated convolutions, default) or 'direct' (plain lax convolutions).
  """
  config: NetworkConfig
  impl: str = 'fast'

  @nn.compact
  def __call__(self, images: jax.Array, style_weights: Optional[jax.Array] = None) -> jax.Array:
    """Stylizes ``images`` (B, H, W, C) in 0..1; returns (B, H, W, C) in 0..1.

    ``style_weights``: (N,) or (B, N) convex mix of the N styles (rows summing to 1); None means
    style 0 (the only one for single-style networks).
    """
    c = self.config
    if self.impl not in IMPLS:
      raise ConfigError(f'unknown impl {self.impl!r}; choose one of {", ".join(IMPLS)}')
    fast = self.impl == 'fast'
    x = jnp.asarray(images, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != c.channels:
      raise ConfigError(f'expected images of shape (B, H, W, {c.channels}), got {x.shape}')
    h, w = x.shape[1:3]
    if min(h, w) < MIN_SIDE:
      raise ConfigError(f'image is {w}x{h}; both sides must be at least {MIN_SIDE} px')
    if style_weights is None:
      style_weights = jnp.zeros((c.num_styles,), jnp.float32).at[0].set(1.)
    sw = jnp.asarray(style_weights, jnp.float32)
    if sw.shape[-1] != c.num_styles or sw.ndim not in (1, 2):
      raise ConfigError(f'style_weights must have shape ({c.num_styles},) or (B, '
                        f'{c.num_styles}), got {sw.shape}')
    shapes = param_shapes(c)
    init = nn.initializers
    params = {}
    for name, s in shapes.items():
      p = {'kernel': self.param(f'{name}.kernel', init.variance_scaling(1., 'fan_in', 'normal'),
                                s['kernel'])}
      if 'bias' in s:
        p['bias'] = self.param(f'{name}.bias', init.zeros, s['bias'])
      if 'gamma' in s:
        p['gamma'] = self.param(f'{name}.gamma', init.ones, s['gamma'])
        p['beta'] = self.param(f'{name}.beta', init.zeros, s['beta'])
      params[name] = p
    return apply_params(c, params, x, sw, fast)


def activate(c: NetworkConfig, y: jax.Array) -> jax.Array:
  """The output activation, to 0..1 (tanh rescaled)."""
  if c.output_activation == 'sigmoid':
    return jax.nn.sigmoid(y)
  if c.output_activation == 'tanh':
    return (jnp.tanh(y) + 1.) * 0.5
  return y


def apply_params(c: NetworkConfig, params: Mapping[str, Mapping[str, jax.Array]],
                 x: jax.Array, style_weights: jax.Array, fast: bool = True,
                 winograd: Optional[bool] = None, native: Optional[bool] = None) -> jax.Array:
  """The forward pass on nested params (what :class:`Transformer` runs).

  ``winograd`` (default: ``fast``): the 3x3 stride-1 convs by Winograd where it pays (see
  ``WINOGRAD_MAX_FLOATS`` and what follows it). Training passes False: its gradients then stay
  the training convolution's (``convolution.conv_valid``), whose VJP keeps XLA:CPU on its fast
  path. ``native`` (default: ``winograd``'s value where :func:`use_native` holds): every conv on
  the native fused convolution (:func:`apply_native`; inference: its gradient is XLA's).
  """
  h, w = x.shape[1:3]
  wg = fast if winograd is None else winograd
  if native is None:
    native = wg and use_native()
  if native:
    return apply_native(c, params, x, style_weights)

  def post(name, y, relu=True, normed=True):
    p = params[name]
    if 'bias' in p:
      y = y + p['bias']
    if normed:
      y = instance_norm(y, mix(p['gamma'], style_weights), mix(p['beta'], style_weights), c.eps,
                        one_pass=fast and ONE_PASS_NORM)
    return jax.nn.relu(y) if relu else y

  sf = STRIP_FLOATS if fast else None
  k0 = params['contract_0']['kernel']
  xp = reflect_pad(x, c.in_kernel // 2)
  if fast and BLOCK_NORM and h % 2 == 0 and w % 2 == 0:
    # Even sizes: normalise the first conv's output in its space-to-depth layout (no garbage
    # rows to exclude), then one depth-to-space: one pass less over the biggest tensor.
    yb = conv_s2d(xp, k0, (h, w), sf, blocks=True)
    b_, bh, bw, _ = yb.shape
    yb = post('contract_0', yb.reshape(b_, bh, bw, 4, -1))
    y = depth_to_space(yb.reshape(b_, bh, bw, -1))
  else:
    y = conv_s2d(xp, k0, (h, w), sf) if fast else conv(xp, k0)
    y = post('contract_0', y)
  for i in range(1, len(c.down_widths)):
    y = post(f'contract_{i}', conv_stride2(reflect_pad(y, 1), params[f'contract_{i}']['kernel'],
                                           fast and FAST_STRIDE2, sf))
  for i in range(c.residual_blocks):
    r = post(f'res_{i}_0', conv(reflect_pad(y, 1), params[f'res_{i}_0']['kernel'], 1, sf, wg))
    y = y + post(f'res_{i}_1', conv(reflect_pad(r, 1), params[f'res_{i}_1']['kernel'], 1, sf,
                                    wg), relu=False)
  for i in range(len(c.up_widths)):
    y = post(f'expand_{i}', upsample_conv(y, params[f'expand_{i}']['kernel'], fast, sf, wg))
  last = f'expand_{len(c.up_widths)}'
  yp = reflect_pad(y, c.out_kernel // 2)
  kl = params[last]['kernel']
  out_hw = (yp.shape[1] - c.out_kernel + 1, yp.shape[2] - c.out_kernel + 1)
  y = conv_s2d(yp, kl, out_hw, sf) if fast else conv(yp, kl)
  y = post(last, y, relu=False, normed=c.norm_last)
  y = y[:, :h, :w]  # odd sizes: the stride-2 convs round up, the upsampling doubles
  return activate(c, y)


def _phase_stats(stats: jax.Array, phases: int = 4) -> jax.Array:
  """(N, 2, phases * C) per-phase mean / variance -> (N, 2, C) over all phases (the law of total
  variance: no difference of large sums)."""
  n, _, pc = stats.shape
  st = stats.reshape(n, 2, phases, pc // phases)
  mean = jnp.mean(st[:, 0], axis=1)
  var = jnp.mean(st[:, 1], axis=1) + jnp.mean(jnp.square(st[:, 0] - mean[:, None]), axis=1)
  return jnp.stack([mean, var], axis=1)


def apply_native(c: NetworkConfig, params: Mapping[str, Mapping[str, jax.Array]],
                 x: jax.Array, style_weights: jax.Array) -> jax.Array:
  """:func:`apply_params` on the native fused convolution (CPU, float32), the same function.

  Every conv reads its input with the previous layer's instance norm (and ReLU) applied while
  reading (``pre``), pads while reading, and returns its own norm's statistics, so each large
  tensor is written once and read once; a residual block's sum is written by the conv that
  reads it (``skip``). A normed layer's bias is left out (the norm subtracts it again). The
  upsampling convs run in their sub-pixel form, the last conv in its space-to-depth form.
  """
  fc = convolution.fused_conv
  h, w = x.shape[1:3]
  kernel = lambda name: params[name]['kernel']

  def affine(name, stats, phases=1):
    p = params[name]
    scale = lax.rsqrt(stats[:, 1] + c.eps) * mix(p['gamma'], style_weights)
    shift = mix(p['beta'], style_weights) - stats[:, 0] * scale
    return jnp.tile(scale, (1, phases)), jnp.tile(shift, (1, phases))

  y, st = fc(x, kernel('contract_0'), 1, c.in_kernel // 2)
  a, b = affine('contract_0', st)
  for i in range(1, len(c.down_widths)):
    y, st = fc(y, kernel(f'contract_{i}'), 2, 1, scale=a, shift=b, pre='affine_relu')
    a, b = affine(f'contract_{i}', st)
  pre, skip = 'affine_relu', None  # what the next conv applies to y: relu(norm(.)) (+ skip)
  for i in range(c.residual_blocks):
    r, st, skip = fc(y, kernel(f'res_{i}_0'), 1, 1, scale=a, shift=b, pre=pre, skip=skip,
                     keep_input=True)
    a, b = affine(f'res_{i}_0', st)
    y, st = fc(r, kernel(f'res_{i}_1'), 1, 1, scale=a, shift=b, pre='affine_relu')
    a, b = affine(f'res_{i}_1', st)
    pre = 'affine'
  for i in range(len(c.up_widths)):
    y, st = fc(y, subpixel_kernel(kernel(f'expand_{i}')), 1, 1, edge=True, scale=a, shift=b,
               pre=pre, skip=skip)[:2]
    a, b = affine(f'expand_{i}', _phase_stats(st))
    pre, skip = 'affine_relu', None
    y = depth_to_space(y)
  if skip is not None:  # no upsampling convs: the last residual sum, in XLA
    y, pre = y * a[:, None, None] + b[:, None, None] + skip, 'none'
  # The last conv in the space-to-depth form (4x fewer kernel taps than the 9x9 conv): the
  # previous norm applied per (phase, channel) while reading; where the input's sides are odd
  # the pad to whole blocks is zeros (y and its reflection padding, mapped, are exact: the map
  # is per channel), reaching only the output rows and columns cropped below.
  last, k = f'expand_{len(c.up_widths)}', c.out_kernel
  yp = reflect_pad(y, k // 2)
  oh, ow = yp.shape[1] - k + 1, yp.shape[2] - k + 1
  yb, st = fc(s2d_input(yp, k, (oh, ow)), s2d_kernel(kernel(last)), scale=jnp.tile(a, (1, 4)),
              shift=jnp.tile(b, (1, 4)), pre=pre)
  if 'bias' in params[last] and not c.norm_last:
    yb = yb + jnp.tile(params[last]['bias'], 4)
  if c.norm_last and oh % 2 == 0 and ow % 2 == 0:
    a, b = affine(last, _phase_stats(st), phases=4)  # whole blocks: the output's statistics
    y = depth_to_space(yb * a[:, None, None] + b[:, None, None])[:, :h, :w]
  else:
    y = depth_to_space(yb)[:, :oh, :ow]
    if c.norm_last:
      p = params[last]
      y = instance_norm(y, mix(p['gamma'], style_weights), mix(p['beta'], style_weights),
                        c.eps, one_pass=True)
    y = y[:, :h, :w]
  return activate(c, y)
