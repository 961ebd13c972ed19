"""The convolutions with hand-written VJPs, side by side.

All three compute ``lax.conv_general_dilated``'s value on NHWC/HWIO operands; what they change
is the backward pass. Autodiff's gradient of a convolution is a convolution whose kernel is the
forward kernel flipped and transposed, and XLA:CPU folds that transpose into the convolution's
dimension labels; inside a ``lax.scan`` (an optimisation or training chunk) it then runs the
gradient as a naive convolution loop, several times slower. Each rule below materialises the
flipped kernel behind ``lax.optimization_barrier`` so the gradient is an ordinary convolution:

* :func:`same_conv`: VGG19's 3x3 SAME convolution, operands optionally in bfloat16
  (:mod:`nst_jax.models.vgg`; the Winograd algorithms are in :mod:`nst_jax.models.winograd`).
* :func:`conv_valid`: strided VALID convolutions of the feed-forward transformer, kernel
  gradient included (:mod:`nst_jax.models.transformer`).
* :func:`conv3x3_same`: the AdaIN decoder's 3x3 convolution, its kernel gradient as nine matrix
  products (:mod:`nst_jax.models.adain`).

And one forward pass of another kind, :func:`fused_conv`: the native CPU kernel
(``nst_jax/runtime/cpu_conv.cc``) the one-pass networks' inference runs, with the padding, the
previous instance norm and the next one's statistics folded in; its gradient is autodiff's of
:func:`fused_conv_reference`, the same function in XLA.

They stay three functions: their operands, strides and kernel gradients differ, and each was
measured against autodiff in its own setting (the design notes in docs/design/convolutions.md).
"""

from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nst_jax.runtime import native

DN = ('NHWC', 'HWIO', 'NHWC')


def _operand_conv(x: jax.Array, kernel: jax.Array, dtype: str = 'float32') -> jax.Array:
  """The convolution with its operands in ``dtype`` (``'float32'``: as given, float64 included)
  and the result in ``x``'s dtype."""
  dtype = x.dtype if dtype == 'float32' else dtype
  return lax.conv_general_dilated(
      x.astype(dtype), kernel.astype(dtype), (1, 1), 'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), preferred_element_type=x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def same_conv(x: jax.Array, kernel: jax.Array, dtype: str = 'float32') -> jax.Array:
  """VGG19's 3x3 'SAME' convolution (operands in ``dtype``, accumulated in ``x``'s dtype)
  whose input gradient is a plain convolution with the materialised flipped kernel."""
  return _operand_conv(x, kernel, dtype)


def same_conv_fwd(x, kernel, dtype):
  return _operand_conv(x, kernel, dtype), (x, kernel)


def same_conv_bwd(dtype, res, g):
  """The input gradient as a plain HWIO convolution with the flipped, transposed kernel.

  Materialising that kernel (``optimization_barrier``) keeps XLA:CPU from folding the transpose
  into the convolution's dimension labels, which inside ``lax.scan`` made it fall back to a naive
  convolution loop (~3x slower steps); the result is the same as autodiff's.
  """
  x, kernel = res
  flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  input_grad = _operand_conv(g, flipped, dtype)
  return input_grad, jax.vjp(lambda k: _operand_conv(x, k, dtype), kernel)[1](g)[0]


same_conv.defvjp(same_conv_fwd, same_conv_bwd)


def plain(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: str = 'VALID') -> jax.Array:
  """``lax.conv_general_dilated`` on NHWC/HWIO operands (the value every rule here computes)."""
  return lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """Strided VALID NHWC/HWIO convolution whose gradients are plain NHWC convolutions.

  The value is ``lax.conv_general_dilated``'s. The gradients are what JAX's own rule computes,
  written as ordinary convolutions on explicitly transposed operands: inside a ``lax.scan`` (a
  training chunk) XLA:CPU otherwise runs the weight gradients of these convolutions as a naive
  loop, 8.8x slower (slim network, 128 px, batch 4: 3.7 s instead of 0.42 s per step; with this
  rule 0.63 s). The unit tests checks both gradients against ``jax.vjp`` of the plain
  convolution.
  """
  return plain(x, kernel, stride)


def _conv_valid_fwd(x, kernel, stride):
  return plain(x, kernel, stride), (x, kernel)


def _conv_valid_bwd(stride, res, g):
  x, kernel = res
  kh, kw = kernel.shape[:2]
  # Input gradient: the cotangent (dilated by the stride) against the flipped, transposed kernel,
  # padded back to the input's size (the rows/columns a stride skipped get zero gradient).
  extra = ((x.shape[1] - kh) % stride, (x.shape[2] - kw) % stride)
  flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  gx = lax.conv_general_dilated(g, flipped, (1, 1), [(kh - 1, kh - 1 + extra[0]),
                                                     (kw - 1, kw - 1 + extra[1])],
                                lhs_dilation=(stride, stride), dimension_numbers=DN)
  # Kernel gradient: channels as the batch, the batch as channels, the cotangent as the kernel
  # (dilated by the stride).
  xt, gt = lax.optimization_barrier((x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3)))
  xt = xt[:, :(g.shape[1] - 1) * stride + kh, :(g.shape[2] - 1) * stride + kw]
  gk = lax.conv_general_dilated(xt, gt, (1, 1), 'VALID', rhs_dilation=(stride, stride),
                                dimension_numbers=DN).transpose(1, 2, 0, 3)
  return gx, gk


conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


@jax.custom_vjp
def conv3x3_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """3x3 'SAME' (zero-padded) conv, NHWC x HWIO, with a backward pass XLA:CPU runs well:
  the input gradient a SAME conv with the materialised flipped kernel (as
  :func:`nst_jax.models.vgg.conv3x3` does), the kernel gradient nine (N*H*W)-long matrix products
  ``shifted(x)^T @ g`` instead of XLA's convolution over the batch."""
  return plain(x, kernel, 1, 'SAME')


def _conv3x3_same_fwd(x, kernel):
  return plain(x, kernel, 1, 'SAME'), (x, kernel)


def _conv3x3_same_bwd(res, g):
  x, kernel = res
  flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  dx = plain(g, flipped, 1, 'SAME')
  h, w = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dk = jnp.stack([jnp.stack([jnp.einsum('nhwc,nhwd->cd', xp[:, i:i + h, j:j + w], g)
                             for j in range(3)]) for i in range(3)])
  return dx, dk.astype(kernel.dtype)


conv3x3_same.defvjp(_conv3x3_same_fwd, _conv3x3_same_bwd)


# --- The native fused convolution (inference) -----------------------------------------------------

PRE = {'none': 0, 'affine': 1, 'affine_relu': 2}


def fused_conv_available() -> bool:
  """Whether :func:`fused_conv` runs here: a CPU backend with the native kernel built."""
  return jax.default_backend() == 'cpu' and native.conv_targets() is not None


def _pre_map(x, scale, shift, pre, skip):
  if pre != 'none':
    x = x * scale[:, None, None, :] + shift[:, None, None, :]
    if pre == 'affine_relu':
      x = jax.nn.relu(x)
  return x if skip is None else x + skip


def fused_conv_reference(x: jax.Array, kernel: jax.Array, scale: jax.Array, shift: jax.Array,
                         stride: int = 1, pad: int = 0, edge: bool = False, pre: str = 'none',
                         skip: jax.Array | None = None) -> tuple[jax.Array, ...]:
  """What :func:`fused_conv` computes, in XLA: z = ``x`` (N, H, W, Ci) mapped by ``pre`` with
  the per-image ``scale``/``shift`` (N, Ci), plus ``skip`` where given; z padded by ``pad``
  (reflect, or ``edge``) and convolved VALID with ``kernel`` (KH, KW, Ci, Co) at ``stride``.
  Returns (y, stats, z), stats (N, 2, Co) the per-channel mean and population variance of y over
  its positions."""
  z = _pre_map(x, scale, shift, pre, skip)
  zp = z
  if pad:
    zp = jnp.pad(z, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge' if edge else 'reflect')
  y = plain(zp, kernel, stride)
  mean = jnp.mean(y, axis=(1, 2))
  var = jnp.mean(jnp.square(y - mean[:, None, None, :]), axis=(1, 2))
  return y, jnp.stack([mean, var], axis=1), z


def _native_fused(x, kernel, scale, shift, skip, stride, pad, edge, pre, has_skip, keep):
  n, h, w, _ = x.shape
  kh, kw, _, co = kernel.shape
  cp = -(-co // 16) * 16  # the kernel's output vectors hold 16 channels: pad, then slice
  if cp != co:
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, cp - co)))
  oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
  out = [jax.ShapeDtypeStruct((n, oh, ow, cp), jnp.float32),
         jax.ShapeDtypeStruct((n, 2, cp), jnp.float32)]
  attrs = dict(stride=np.int64(stride), pad=np.int64(pad), pre=np.int64(PRE[pre]),
               edge=np.int64(edge))
  plain_target, residual_target = native.conv_targets()  # type: ignore[misc]
  if keep:
    out.append(jax.ShapeDtypeStruct(x.shape, jnp.float32))
    y, stats, z = jax.ffi.ffi_call(residual_target, tuple(out), vmap_method='sequential')(
        x, kernel, scale, shift, skip, has_skip=np.int64(has_skip), **attrs)
  else:
    y, stats = jax.ffi.ffi_call(plain_target, tuple(out), vmap_method='sequential')(
        x, kernel, scale, shift, **attrs)
    z = x  # not returned
  if cp != co:
    y, stats = y[..., :co], stats[..., :co]
  return y, stats, z


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8, 9, 10))
def _fused(x, kernel, scale, shift, skip, stride, pad, edge, pre, has_skip, keep):
  return _native_fused(x, kernel, scale, shift, skip, stride, pad, edge, pre, has_skip, keep)


def _fused_fwd(x, kernel, scale, shift, skip, stride, pad, edge, pre, has_skip, keep):
  out = _native_fused(x, kernel, scale, shift, skip, stride, pad, edge, pre, has_skip, keep)
  return out, (x, kernel, scale, shift, skip)


def _fused_bwd(stride, pad, edge, pre, has_skip, keep, res, g):
  x, kernel, scale, shift, skip = res

  def f(x, kernel, scale, shift, skip):
    y, st, z = fused_conv_reference(x, kernel, scale, shift, stride, pad, edge, pre,
                                    skip if has_skip else None)
    return y, st, z if keep else x

  return jax.vjp(f, x, kernel, scale, shift, skip)[1](g)


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_conv(x: jax.Array, kernel: jax.Array, stride: int = 1, pad: int = 0,
               edge: bool = False, scale: jax.Array | None = None,
               shift: jax.Array | None = None, pre: str = 'none',
               skip: jax.Array | None = None, keep_input: bool = False
               ) -> tuple[jax.Array, ...]:
  """:func:`fused_conv_reference` by the native CPU kernel (float32; see
  :func:`fused_conv_available`): (y, stats), and z as a third result where ``keep_input`` (or a
  ``skip`` is given). Differentiable (the reference's gradient), vmappable (one call per
  vmapped element). ``scale``/``shift`` (N, Ci) are needed for ``pre`` other than 'none'.

  Raises ValueError for a ``pre`` it does not know, operands of the wrong shapes, a padding the
  reflection cannot make, or where the kernel is not available.
  """
  if pre not in PRE:
    raise ValueError(f'pre {pre!r}: one of {", ".join(PRE)}')
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
    raise ValueError(f'fused_conv: x (N, H, W, Ci) and kernel (KH, KW, Ci, Co), got {x.shape} '
                     f'and {kernel.shape}')
  if skip is not None and skip.shape != x.shape:
    raise ValueError(f'fused_conv: skip must be shaped as x {x.shape}, got {skip.shape}')
  if pad >= min(x.shape[1:3]):
    raise ValueError(f'fused_conv: padding {pad} needs a side above it, got {x.shape[1:3]}')
  if not fused_conv_available():
    raise ValueError(f'fused_conv: the native convolution is off here (backend '
                     f'{jax.default_backend()})')
  n, ci = x.shape[0], x.shape[3]
  if pre == 'none':
    scale = shift = jnp.zeros((n, ci), jnp.float32)
  elif scale is None or shift is None:
    raise ValueError(f'fused_conv: pre={pre!r} needs scale and shift')
  scale = jnp.broadcast_to(jnp.asarray(scale, jnp.float32), (n, ci))
  shift = jnp.broadcast_to(jnp.asarray(shift, jnp.float32), (n, ci))
  x = jnp.asarray(x, jnp.float32)
  has_skip = skip is not None
  keep = keep_input or has_skip
  y, stats, z = _fused(x, jnp.asarray(kernel, jnp.float32), scale, shift,
                       jnp.asarray(skip, jnp.float32) if has_skip else x, int(stride), int(pad),
                       bool(edge), pre, has_skip, keep)
  return (y, stats, z) if keep else (y, stats)
