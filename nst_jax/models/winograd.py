"""Winograd 3x3 convolution (SAME padding, stride 1) with a custom VJP.

Computes exactly what ``lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`` computes (a cross-correlation, as
in Keras/TF), but with Winograd's minimal filtering algorithm F(m x m, 3 x 3):

* ``tile=2``: F(2x2, 3x3), 16 matmuls over 4x4 input tiles, 2.25x fewer
  multiplies than the direct convolution, float32 error ~1e-7 relative.
* ``tile=4``: F(4x4, 3x3), 36 matmuls over 6x6 input tiles, 4x fewer
  multiplies, float32 error ~1e-6 relative.

The input and output transforms are strided slices combined with the (small,
sparse) transform coefficients, which XLA fuses into elementwise loops; the
channel mixing is one (tiles x Cin) @ (Cin x Cout) matmul per transformed-tile
position (a*a separate dots: on XLA:CPU these ran faster than one batched
dot_general over a stacked (a*a, tiles, C) tensor).

The gradient w.r.t. the input is again a Winograd convolution of the cotangent
with the spatially flipped, in/out-swapped kernel; for layers with few pixels
and a big kernel it is instead the transpose of the forward algorithm (saves a
kernel transform). The gradient w.r.t. the kernel is taken from the direct
convolution; when only the input gradient is used (style transfer: constant
weights) XLA removes it (checked: no convolution op in the compiled HLO).

Winograd pays off where channels are many and pixels few (VGG blocks 2-5 at
NST sizes); for the first layer (Cin=3) and large low-channel layers the
direct convolution is as fast or faster because the transforms are memory-bound.
``conv3x3`` takes the raw HWIO kernel; ``transform_kernel`` is exposed for
inspection/precomputation but transforming inside is a ~1 ms matmul per layer.
"""


from functools import partial

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

_DN = ('NHWC', 'HWIO', 'NHWC')

# Transform matrices (Lavin & Gray, 2015): Y = A^T [(G g G^T) * (B^T d B)] A.
_MATRICES = {
  2: (
    np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
    np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
  ),
  4: (
    np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
    np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
    np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
              [0, 1, -1, 8, -8, 1]], np.float64),
  ),
}


def _check_tile(tile: int) -> None:
  if tile not in _MATRICES:
    raise ValueError(f'tile must be 2 or 4, got {tile!r}')


def _combine(coeffs: np.ndarray, terms: list) -> jax.Array:
  """Returns ``sum_k coeffs[k] * terms[k]``, skipping zeros and unit factors."""
  out = None
  for c, t in zip(coeffs, terms):
    if c == 0:
      continue
    if c == 1:
      term = t
    elif c == -1:
      term = -t
    else:
      term = t * jnp.asarray(c, t.dtype)
    out = term if out is None else out + term
  return out


def direct_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference SAME 3x3 stride-1 convolution (XLA's direct algorithm)."""
  return lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=_DN)


def transform_kernel(kernel: jax.Array, tile: int = 2) -> jax.Array:
  """Winograd-transforms an HWIO 3x3 kernel.

  Args:
    kernel: (3, 3, Cin, Cout) kernel.
    tile: output tile size, 2 or 4.

  Returns:
    (a*a, Cin, Cout) array, ``a = tile + 2``: ``G g G^T`` per channel pair,
    flattened row-major over the a x a tile positions.
  """
  _check_tile(tile)
  a = tile + 2
  g = _MATRICES[tile][1]
  gg = jnp.asarray(np.kron(g, g), kernel.dtype)  # (a*a, 9): vec(G k G^T) = (G kron G) vec(k)
  u = jnp.dot(gg, kernel.reshape(9, -1), precision=lax.Precision.HIGHEST)
  return u.reshape(a * a, *kernel.shape[2:])


def _input_transform(x: jax.Array, tile: int, valid: bool = False,
                     odd_grid: bool = False) -> tuple[list, int, int]:
  """Pads x, cuts overlapping a x a tiles at stride ``tile`` and applies B^T d B.

  ``valid``: the tiles cover a VALID convolution of ``x`` (no leading pad, output H-2 x W-2)
  instead of a SAME one. ``odd_grid``: one more tile row / column where their count is even.

  Returns:
    a*a arrays of shape (N*nh*nw, C) (row-major over tile positions) and the
    tile-grid size (nh, nw).
  """
  bt = _MATRICES[tile][0]
  a = tile + 2
  n, h, w, c = x.shape
  lead = 0 if valid else 1
  oh, ow = h + 2 * lead - 2, w + 2 * lead - 2
  nh, nw = -(-oh // tile), -(-ow // tile)
  if odd_grid:
    nh, nw = nh + 1 - nh % 2, nw + 1 - nw % 2
  xp = jnp.pad(x, ((0, 0), (lead, nh * tile + 2 - h - lead), (lead, nw * tile + 2 - w - lead),
                   (0, 0)))
  # Row transform: rows[u][:, i] = sum_t bt[u, t] * xp[:, i*tile + t].
  sh = [lax.slice_in_dim(xp, t, t + (nh - 1) * tile + 1, tile, axis=1) for t in range(a)]
  out = []
  for u in range(a):
    r = _combine(bt[u], sh)
    sw = [lax.slice_in_dim(r, t, t + (nw - 1) * tile + 1, tile, axis=2) for t in range(a)]
    out.extend(_combine(bt[v], sw).reshape(n * nh * nw, c) for v in range(a))
  return out, nh, nw


def _output_transform(m: list, tile: int, n: int, nh: int, nw: int) -> jax.Array:
  """Applies A^T M A to a*a arrays (N*nh*nw, C); returns (N, nh*tile, nw*tile, C)."""
  at = _MATRICES[tile][2]
  a = tile + 2
  c = m[0].shape[-1]
  rows = [[_combine(at[p], m[j::a]) for j in range(a)] for p in range(tile)]
  y = jnp.stack([jnp.stack([_combine(at[q], r) for q in range(tile)]) for r in rows])
  y = y.reshape(tile, tile, n, nh, nw, c).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(n, nh * tile, nw * tile, c)


# F(2x2,3x3): G J = P G (J reverses the 3 taps, P swaps G's rows 0 and 3), so the transform of
# the flipped kernel is the kernel's transform with tile positions 0 <-> 3 swapped in both axes:
# U_flip[4i + j] = U[4 p(i) + p(j)]. The input gradient reuses the forward's U (no second
# transformed kernel in memory: ~16/9 x the kernel bytes per layer).
_FLIP2 = tuple(4 * (3 - i if i in (0, 3) else i) + (3 - j if j in (0, 3) else j)
               for i in range(4) for j in range(4))


def _winograd(x: jax.Array, u: jax.Array, tile: int, contract_out: bool = False,
              order: tuple = (), dtype: str = 'float32', valid: bool = False,
              odd_grid: bool = False) -> jax.Array:
  """Winograd convolution of x with an already transformed kernel u (a*a, I, O).

  With ``contract_out`` the kernel is used transposed (x has O channels and the
  result I), which the input gradient needs; ``order`` picks u's tile positions
  (position p uses ``u[order[p]]``; default: in order). With ``dtype='bfloat16'`` the products'
  operands (transformed input and kernel) are rounded to bfloat16 and accumulated in float32.
  """
  n, h, w, _ = x.shape
  v, nh, nw = _input_transform(x, tile, valid, odd_grid)
  dims = (((1,), (1 if contract_out else 0,)), ((), ()))
  order = order or tuple(range(len(v)))
  dtype = x.dtype if dtype == 'float32' else dtype  # float32: no rounding (float64 stays)
  u = u.astype(dtype)
  m = [lax.dot_general(vp.astype(dtype), u[order[p]], dims, precision=lax.Precision.HIGHEST,
                       preferred_element_type=x.dtype) for p, vp in enumerate(v)]
  if valid:
    h, w = h - 2, w - 2
  return _output_transform(m, tile, n, nh, nw)[:, :h, :w, :]


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x: jax.Array, kernel: jax.Array, tile: int, dtype: str = 'float32') -> jax.Array:
  return _winograd(x, transform_kernel(kernel, tile), tile, dtype=dtype)


def _conv_fwd(x, kernel, tile, dtype):
  return _conv(x, kernel, tile, dtype), (x, kernel)


def _conv_bwd(tile, dtype, res, g):
  x, kernel = res
  n, h, w, cin = x.shape
  if n * h * w * 64 < cin * kernel.shape[3]:
    # Few pixels, big kernel: transpose the forward algorithm (reuses U; no
    # second kernel transform).
    _, vjp_x = jax.vjp(lambda x: _winograd(x, transform_kernel(kernel, tile), tile, dtype=dtype),
                       x)
    (dx,) = vjp_x(g)
  else:
    # SAME, stride 1, odd kernel: dx is the correlation of g with the flipped,
    # in/out-swapped kernel (the swap is done by contracting U's output axis).
    if tile == 2:
      dx = _winograd(g, transform_kernel(kernel, tile), tile, contract_out=True, order=_FLIP2,
                     dtype=dtype)
    else:
      dx = _winograd(g, transform_kernel(kernel[::-1, ::-1], tile), tile, contract_out=True,
                     dtype=dtype)
  # Kernel gradient via the direct conv's VJP; dead code when unused.
  _, vjp_k = jax.vjp(lambda k: direct_conv3x3(x, k), kernel)
  (dk,) = vjp_k(g)
  return dx, dk


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv3x3(x: jax.Array, kernel: jax.Array, tile: int = 2, dtype: str = 'float32') -> jax.Array:
  """SAME, stride-1 3x3 convolution by Winograd F(tile x tile, 3 x 3).

  Args:
    x: (N, H, W, Cin) input, any H and W >= 1.
    kernel: (3, 3, Cin, Cout) HWIO kernel.
    tile: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3).
    dtype: operand dtype of the matrix products ('float32' or 'bfloat16'; float32 accumulation).

  Returns:
    (N, H, W, Cout), equal (to rounding) to ``direct_conv3x3(x, kernel)``.
    Differentiable w.r.t. both arguments; works under ``jit`` and ``vmap``.
  """
  _check_tile(tile)
  if kernel.shape[:2] != (3, 3) or x.shape[-1] != kernel.shape[2]:
    raise ValueError(f'expected x (N,H,W,C) and kernel (3,3,C,O); got {x.shape}, {kernel.shape}')
  return _conv(x, kernel, tile, dtype)


def conv3x3_valid(x: jax.Array, kernel: jax.Array, tile: int = 2) -> jax.Array:
  """VALID, stride-1 3x3 convolution by Winograd F(tile x tile, 3 x 3), float32.

  For inputs the caller has already padded (the feed-forward networks' reflect padding):
  (N, H, W, Cin) -> (N, H-2, W-2, Cout). Plain JAX autodiff (no custom VJP): it is used for
  inference, where the transposed slices and products of the gradient are not needed.

  F(4x4,3x3) runs on an odd number of tile rows and columns (one spare tile, cropped): with an
  even count (a power of two at the usual sizes) it was 2-2.3x slower on the 2-core CPU, the
  spare tile's extra work included (docs/results/2026-12-03-one-pass.md).
  """
  _check_tile(tile)
  if kernel.shape[:2] != (3, 3) or x.shape[-1] != kernel.shape[2] or min(x.shape[1:3]) < 3:
    raise ValueError(f'expected x (N,H,W,C) with H, W >= 3 and kernel (3,3,C,O); got {x.shape}, '
                     f'{kernel.shape}')
  return _winograd(x, transform_kernel(kernel, tile), tile, valid=True, odd_grid=tile == 4)
