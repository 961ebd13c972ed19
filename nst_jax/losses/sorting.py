"""``sort``: ``jnp.sort`` and its gradient, fast on CPUs. Pure and jittable; used by the
sorted-value style losses (:mod:`nst_jax.losses.distribution`).

Why not ``jnp.sort``: its gradient co-sorts an iota with the values (a two-operand sort, 6x the
time of a one-operand one on XLA:CPU); and XLA:CPU sorts floats through a comparator with NaN
handling, called per comparison, on one thread.

Two implementations with one meaning (their tests compare them bit for bit), picked per call by
``impl``:

* ``'native'`` (float32 on the CPU, the default there): the radix-sort custom call of
  :mod:`nst_jax.runtime.native` (``cpu_sort.cc``), which returns the sorted values and, where the
  gradient is needed, the stable permutation; 25-30x XLA:CPU's sort on the style losses' rows.
  Where it cannot be built (no compiler, ``$NST_JAX_NATIVE=off``) ``'auto'`` takes ``'xla'``.
* ``'xla'``: the values mapped to order-preserving integer keys (:func:`_to_keys`) and sorted as
  integers by XLA. Where the gradient is needed, each key is packed with its index into one int64
  and sorted once (:func:`_packed_sort`): the high half is the sorted keys, the low half the
  permutation. Every platform with native 64-bit integers, and every float width up to 32 bits.

Either way the permutation takes the cotangent back (:func:`_unsort`).

Tried for the XLA path and not kept (measured on the 2-core EPYC, docs/results): the int32 sort
followed by a branchless binary search for each element's rank with tie-run means of the
cotangent (a histogram-loss evaluation at 256 px 1.55-1.66x gram's against 1.26-1.38x with the
packed sort); NumPy's SIMD sort through ``jax.pure_callback`` (2.3x faster alone at (64, 49152)
int32, no faster inside the objective, and a host callback would gather a sharded sweep onto one
device); ranks from one NumPy sort of ``key * 2^32 + index``; splitting the sort or the search
into blocks of rows.
"""

from __future__ import annotations

import functools

import jax
from jax.experimental import xla_metadata
import jax.numpy as jnp
import numpy as np

from nst_jax.runtime import native


# --- Keys -----------------------------------------------------------------------------------------

def _int_dtype(dtype) -> np.dtype:
  bits = jnp.finfo(dtype).bits
  return np.dtype({16: np.int16, 32: np.int32, 64: np.int64}[bits])


def _to_keys(x: jax.Array) -> jax.Array:
  """Floats -> signed integers of the same width whose integer order is the float order.

  Sign-magnitude to two's complement: a negative float of magnitude bits ``m`` becomes ``-m``, a
  non-negative one keeps its bits, so ``-0.0`` and ``+0.0`` share the key 0 (equal, as floats
  compare); every NaN becomes the largest key (after ``+inf``, as :func:`jnp.sort` puts NaNs).
  """
  it = _int_dtype(x.dtype)
  i = jax.lax.bitcast_convert_type(x, it)
  k = jnp.where(i < 0, it.type(np.iinfo(it).min) - i, i)
  return jnp.where(jnp.isnan(x), it.type(np.iinfo(it).max), k)


def _from_keys(k: jax.Array, dtype) -> jax.Array:
  """The inverse of :func:`_to_keys` (key 0 -> ``+0.0``; the NaN key -> a NaN)."""
  it = k.dtype
  return jax.lax.bitcast_convert_type(jnp.where(k < 0, it.type(np.iinfo(it).min) - k, k), dtype)


# --- Sorting and the permutation -----------------------------------------------------------------

def _rows(a):
  return a.reshape(-1, a.shape[-1])


def _sort_keys(k: jax.Array) -> jax.Array:
  return jax.lax.sort(k, dimension=k.ndim - 1, is_stable=False)


def _packed_sort(k: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(rows, n) integer keys (up to 32 bits) -> (sorted keys, int32 permutation), from one
  one-operand int64 sort of ``key * 2^32 + index``: the index breaks ties in order, so the
  permutation is a stable sort's.

  On XLA:CPU (2 cores, (64, 49152) rows) this sort takes 1.5x the plain int32 sort, and the
  permutation it yields replaces a binary search for each element's rank that took half the
  plain sort, plus a co-sorted iota (a two-operand sort, 6x the plain one). The 64-bit keys need
  64-bit integers, enabled for this trace only.
  """
  with jax.enable_x64(True):
    idx = jax.lax.broadcasted_iota(jnp.int64, k.shape, 1)
    packed = _sort_keys(jnp.left_shift(k.astype(jnp.int64), 32) | idx)
    keys = jnp.right_shift(packed, 32).astype(k.dtype)
    perm = (packed & jnp.int64(0xFFFFFFFF)).astype(jnp.int32)
  return keys, perm


def _unsort(perm: jax.Array, g: jax.Array) -> jax.Array:
  """Row-wise scatter of the sorted cotangent back to the elements: ``out[r, perm[r, j]] =
  g[r, j]`` (each row's permutation hits every position once). As one flat scatter where the
  flat index fits int32 (1.5x faster on XLA:CPU than the two-index form)."""
  r, n = g.shape
  if g.size >= 2**31:
    rows = jax.lax.broadcasted_iota(jnp.int32, g.shape, 0)
    return jnp.zeros_like(g).at[rows, perm].set(g, unique_indices=True,
                                                mode='promise_in_bounds')
  flat = (perm + jax.lax.broadcasted_iota(jnp.int32, g.shape, 0) * n).reshape(-1)
  out = jnp.zeros((r * n,), g.dtype).at[flat].set(g.reshape(-1), unique_indices=True,
                                                   mode='promise_in_bounds')
  return out.reshape(r, n)


# --- The native custom call ----------------------------------------------------------------------

def _native_call(target: str, x: jax.Array, out):
  # Every leading axis is a batch axis (rows sort independently): with the target registered as
  # batch partitionable, ``num_batch_dims`` lets XLA's partitioner keep a sharded sweep or batch
  # axis sharded through the call instead of gathering it onto every device.
  with xla_metadata.set_xla_metadata(num_batch_dims=str(x.ndim - 1)):
    return jax.ffi.ffi_call(target, out, vmap_method='expand_dims')(x)


def _native_values(x: jax.Array) -> jax.Array:
  target = native.sort_targets()[0]  # type: ignore[index]
  return _native_call(target, x, jax.ShapeDtypeStruct(x.shape, x.dtype))


def _native_with_perm(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  target = native.sort_targets()[1]  # type: ignore[index]
  out = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(x.shape, jnp.int32))
  return _native_call(target, x, out)


# --- The custom VJP ------------------------------------------------------------------------------

def _sort_last_fwd(x, impl):
  if impl == 'native':
    y, perm = _native_with_perm(x)
    return y, _rows(perm)
  keys, perm = _packed_sort(_rows(_to_keys(x)))
  return _from_keys(keys, x.dtype).reshape(x.shape), perm


def _sort_last_bwd(impl, perm, g):
  del impl
  return (_unsort(perm, _rows(g)).reshape(g.shape),)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _sort_last(x: jax.Array, impl: str) -> jax.Array:
  # Not differentiated (a style target, a loss's value): the values only, no permutation.
  if impl == 'native':
    return _native_values(x)
  return _from_keys(_sort_keys(_to_keys(x)), x.dtype)


# Jitted pieces: one compilation per shape when called eagerly, inlined under an outer jit.
_sort_last.defvjp(jax.jit(_sort_last_fwd, static_argnums=1),
                  jax.jit(_sort_last_bwd, static_argnums=0))

# Where 64-bit integers are native; elsewhere (TPUs emulate them) jnp.sort's own sort and gradient.
_PACKED_PLATFORMS = ('cpu', 'cuda', 'rocm', 'gpu')


IMPLS = ('auto', 'native', 'xla')


def resolve_impl(x: jax.Array, axis: int = -1, impl: str = 'auto') -> str:
  """What :func:`sort` runs for ``x``: ``'native'``, ``'xla'`` or ``'jnp'`` (``jnp.sort``)."""
  if impl not in IMPLS:
    raise ValueError(f'sort impl {impl!r}: one of {IMPLS}')
  if (not jnp.issubdtype(x.dtype, jnp.floating) or x.ndim == 0 or x.size == 0
      or jnp.finfo(x.dtype).bits > 32 or x.shape[axis] >= 2**31
      or jax.default_backend() not in _PACKED_PLATFORMS):
    return 'jnp'
  native_ok = (x.dtype == jnp.float32 and jax.default_backend() == 'cpu'
               and native.sort_targets() is not None)
  if impl == 'native' and not native_ok:
    raise ValueError(f'the native sort takes float32 on the CPU with the kernel built; got '
                     f'{x.dtype} on {jax.default_backend()}')
  if impl == 'auto':
    return 'native' if native_ok else 'xla'
  return impl


@functools.partial(jax.jit, static_argnames=('axis', 'impl'))
def sort(x: jax.Array, axis: int = -1, impl: str = 'auto') -> jax.Array:
  """``jnp.sort(x, axis)`` of a float array and its gradient, fast on CPUs.

  Forward: the sorted axis is moved last (contiguous) and sorted by ``impl`` (the module
  docstring; ``'auto'``: the native kernel for float32 on the CPU where it is built, else the
  XLA integer-key sort). For finite inputs the values equal ``jnp.sort``'s exactly; zeros all
  come back as ``+0.0`` (``jnp.sort`` keeps a ``-0.0`` where the stable order puts it; equal as
  floats); NaNs of either sign go last, as in ``jnp.sort`` (as some NaN).

  Backward (reverse mode only: a ``custom_vjp``): the sorted cotangent scattered back through
  the stable sort's permutation, which is autodiff's gradient through ``jnp.sort`` exactly, ties
  included (tied elements take the cotangents of their ranks in index order). Ties are where a
  choice exists; the style losses' ties are ReLU's exact zeros, whose gradient ReLU discards
  whichever cotangent they receive, so the choice does not reach the image.

  Float64 (keys too wide to pack with an index), rows of 2^31 or more, platforms without native
  64-bit integers, and integer, empty or 0-d arrays: ``jnp.sort``.
  """
  x = jnp.asarray(x)
  which = resolve_impl(x, axis, impl)
  if which == 'jnp':
    return jnp.sort(x, axis=axis)
  return jnp.moveaxis(_sort_last(jnp.moveaxis(x, axis, -1), which), -1, axis)
