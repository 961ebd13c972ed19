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

They stay three functions: their operands, strides and kernel gradients differ, and each was
measured against autodiff in its own setting (the design notes in docs/design/convolutions.md).
"""

from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp

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
