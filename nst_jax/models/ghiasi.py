"""Ghiasi et al. 2017 arbitrary-style transfer: Magenta's pretrained networks, ported to Flax.

"Exploring the structure of a real-time, arbitrary neural artistic stylization network" (Ghiasi,
Lee, Kudlur, Dumoulin & Shlens 2017). Two networks, rebuilt module by module from the int8
TFLite release shipped as ONNX (``../shared/weights/magenta/arbitrary_{predict,transform}.onnx``):

* :class:`StylePredictor`: a MobileNetV2 (ReLU6, inverted residual blocks, TF 'SAME' zero padding,
  batch norm folded into the convs) -> global average pool -> 1x1 conv -> the 100-d style
  embedding. The painting goes in at 256x256, RGB in 0..1.
* :class:`Transformer`: reflection-padded convs (9x9 3->8, two stride-2 3x3 to 16 and 32), five
  residual blocks of 32 channels, two nearest x2 upsamplings + 3x3 convs (16, 8), a 9x9 conv to
  RGB and a sigmoid. Every conv after the contraction is followed by conditional instance
  normalisation whose gamma/beta are 1x1 convs (affine maps) of the embedding. The contraction's
  batch norm is folded into its convs. Fully convolutional: any content size (the output is
  cropped back to the input's size when the size is not a multiple of 4).

The int8 weights are dequantized once (per-tensor or per-channel scale and zero point) by
:func:`convert`, which reads the ONNX graphs (the ``onnx`` package: a conversion-time extra, never
needed at run time) and writes a plain ``.npz`` to the weights cache; the graphs' activation
fake-quantization (QuantizeLinear/DequantizeLinear pairs between ops) is dropped, so the port
matches the reference outputs of the float graph (``reference_outputs.npz``, ``*_float``).

Speed on CPU (same results, see README): the transformer's convs use the reformulations of
:mod:`nst_jax.models.transformer` (row strips: XLA:CPU slows down 5-15x once a conv's working set
passes a few MB; 9x9 and stride-2 convs on 2x2 space-to-depth cells; nearest-x2 + 3x3 conv as one
sub-pixel conv; one-pass norm statistics); the predictor's depthwise convs are nine shifted
multiply-adds (:func:`depthwise3x3_same`: XLA's grouped convolution is 30-100x slower).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union, cast

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import WeightsError
from nst_jax.io import files as fileio
from nst_jax.models import convolution
from nst_jax.models import onnx_import as onnx_convert
from nst_jax.models import transformer as networks
from nst_jax.models import weights

PathLike = Union[str, os.PathLike]
Params = Mapping[str, Any]

PREDICT_ONNX = 'arbitrary_predict.onnx'
TRANSFORM_ONNX = 'arbitrary_transform.onnx'
FORMAT_VERSION = 1
EMBEDDING_DIM = 100
STYLE_SIZE = 256  # The predictor's training input size (Magenta: 256x256).
MIN_CONTENT_SIDE = 8  # Reflection padding of the 1/4-resolution 3x3 convs needs >= 2 px there.

# MobileNetV2 (width 1.0): (expansion, output channels, stride) of expanded_conv .. _16.
_MBV2_BLOCKS = ((1, 16, 1),
                (6, 24, 2), (6, 24, 1),
                (6, 32, 2), (6, 32, 1), (6, 32, 1),
                (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
                (6, 96, 1), (6, 96, 1), (6, 96, 1),
                (6, 160, 2), (6, 160, 1), (6, 160, 1),
                (6, 320, 1))
_RESIDUALS = 5
_DN = ('NHWC', 'HWIO', 'NHWC')


def _block_name(i: int) -> str:
  return 'expanded_conv' if i == 0 else f'expanded_conv_{i}'


# --- Layers ----------------------------------------------------------------------------------

def _tf_same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
  """TensorFlow 'SAME' padding (the extra row/column goes at the end)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2


def conv_same(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int = 1,
              groups: int = 1) -> jax.Array:
  """TF 'SAME' zero-padded conv (NHWC x HWIO) + bias; ``groups`` = channels for depthwise."""
  k = kernel.shape[0]
  pads = [_tf_same_pads(x.shape[1], k, stride), _tf_same_pads(x.shape[2], k, stride)]
  y = lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=_DN,
                               feature_group_count=groups)
  return y + bias


def depthwise3x3_same(x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: int = 1
                      ) -> jax.Array:
  """TF 'SAME' depthwise 3x3 conv (kernel (3, 3, 1, C)) as nine shifted multiply-adds.

  XLA:CPU runs grouped convolutions through a slow generic loop (measured 30-100x slower than
  this at MobileNetV2's shapes); the nine strided slices fuse into one elementwise loop.
  """
  n, h, w, c = x.shape
  oh, ow = -(-h // stride), -(-w // stride)
  xp = jnp.pad(x, ((0, 0), _tf_same_pads(h, 3, stride), _tf_same_pads(w, 3, stride), (0, 0)))
  acc = jnp.broadcast_to(bias, (n, oh, ow, c))
  for dy in range(3):
    for dx in range(3):
      tap = lax.slice(xp, (0, dy, dx, 0), (n, dy + (oh - 1) * stride + 1,
                                           dx + (ow - 1) * stride + 1, c), (1, stride, stride, 1))
      acc = acc + tap * kernel[dy, dx, 0]
  return acc


# --- Modules ---------------------------------------------------------------------------------

class _ConvBias(nn.Module):
  """A conv with folded batch norm: TF 'SAME' zero padding, bias, optional ReLU6."""
  features: int
  kernel_size: int = 1
  stride: int = 1
  depthwise: bool = False
  relu6: bool = True

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    shape = (self.kernel_size, self.kernel_size, 1 if self.depthwise else cin, self.features)
    kernel = self.param('kernel', nn.initializers.lecun_normal(), shape)
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    if self.depthwise:
      y = depthwise3x3_same(x, kernel, bias, self.stride)
    elif self.kernel_size == 1 and self.stride == 1:
      y = jnp.einsum('nhwc,cd->nhwd', x, kernel[0, 0]) + bias
    else:
      y = conv_same(x, kernel, bias, self.stride)
    return jnp.clip(y, 0., 6.) if self.relu6 else y


class _InvertedResidual(nn.Module):
  """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 project, residual add."""
  expansion: int
  features: int
  stride: int

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    y = x
    if self.expansion != 1:
      y = _ConvBias(cin * self.expansion, name='expand')(y)
    y = _ConvBias(y.shape[-1], 3, self.stride, depthwise=True, name='depthwise')(y)
    y = _ConvBias(self.features, relu6=False, name='project')(y)
    return x + y if self.stride == 1 and cin == self.features else y


class StylePredictor(nn.Module):
  """Painting (N, 256, 256, 3) in 0..1 -> style embedding (N, 100)."""

  @nn.compact
  def __call__(self, style: jax.Array) -> jax.Array:
    x = _ConvBias(32, 3, 2, name='Conv')(style)
    for i, (t, c, s) in enumerate(_MBV2_BLOCKS):
      x = _InvertedResidual(t, c, s, name=_block_name(i))(x)
    x = _ConvBias(1280, name='Conv_1')(x)
    x = x.mean(axis=(1, 2), keepdims=True)
    return _ConvBias(EMBEDDING_DIM, relu6=False, name='bottleneck')(x)[:, 0, 0, :]


class _StyleNorm(nn.Module):
  """Conditional instance norm; gamma and beta are affine maps of the embedding."""
  eps: float
  one_pass: bool = True

  @nn.compact
  def __call__(self, x, embedding):
    c = x.shape[-1]
    gamma = nn.Dense(c, name='gamma')(embedding)
    beta = nn.Dense(c, name='beta')(embedding)
    return networks.instance_norm(x, gamma, beta, self.eps, self.one_pass)


class _Conv(nn.Module):
  """Reflection-padded conv + bias (+ conditional instance norm), in one of four forms:
  ``plain`` (k x k, stride 1), ``stride2`` (3x3, stride 2), ``up`` (nearest x2 resize, then 3x3)
  and ``s2d`` (9x9: on 2x2 space-to-depth cells when fast).

  ``fast``: the reformulations of :mod:`nst_jax.models.transformer` (row strips, space-to-depth 9x9
  and stride-2 convs, sub-pixel upsampling convs, Winograd 3x3 convs unless ``winograd`` is
  False, one-pass norm statistics), the same result as the plain XLA convolutions
  (``fast=False``). ``native``: each form's convolution on the native CPU kernel
  (:func:`nst_jax.models.convolution.fused_conv`, padding while reading); bias and norm in XLA.
  """
  features: int
  kernel_size: int
  form: str = 'plain'
  eps: Optional[float] = None  # None: no norm (batch norm folded into kernel and bias).
  fast: bool = True
  winograd: bool = True
  native: bool = False

  @nn.compact
  def __call__(self, x, embedding=None):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    strips = networks.STRIP_FLOATS if self.fast else None
    fc = convolution.fused_conv
    if self.native and self.form == 'stride2':
      y = fc(x, kernel, 2, 1)[0]
    elif self.native and self.form == 'up':
      y = networks.depth_to_space(fc(x, networks.subpixel_kernel(kernel), 1, 1, edge=True)[0])
    elif self.native and self.form == 's2d':
      y = networks.conv_s2d(networks.reflect_pad(x, k // 2), kernel, x.shape[1:3], native=True)
    elif self.native:
      y = fc(x, kernel, 1, k // 2)[0]
    elif self.form == 'stride2':
      y = networks.conv_stride2(networks.reflect_pad(x, 1), kernel, self.fast, strips)
    elif self.form == 'up':
      y = networks.upsample_conv(x, kernel, self.fast, strips, self.fast and self.winograd)
    elif self.form == 's2d' and self.fast:
      y = networks.conv_s2d(networks.reflect_pad(x, k // 2), kernel, x.shape[1:3], strips)
    else:
      y = networks.conv(networks.reflect_pad(x, k // 2), kernel, 1, strips,
                        self.fast and self.winograd)
    y = y + bias
    if self.eps is not None:
      y = _StyleNorm(self.eps, self.fast, name='norm')(y, embedding)
    return y


class Transformer(nn.Module):
  """Content (N, H, W, 3) in 0..1 + embedding (N, 100) -> stylized (N, H, W, 3) in 0..1.

  Attributes:
    eps: the instance norm's epsilon (read from the graph by :func:`convert`).
    impl: 'fast' (reformulated convolutions, on the CPU the native kernel where it is built;
      same result, faster) or 'direct'; 'fast_xla' (the fast path on XLA's convolutions) and
      'fast_no_winograd' (also without Winograd) let the benchmarks show what each adds.
  """
  eps: float = 1e-5
  impl: str = 'fast'

  @nn.compact
  def __call__(self, content: jax.Array, embedding: jax.Array) -> jax.Array:
    h, w = content.shape[1:3]
    f, wg = networks.impl_choices(self.impl, bench=True)
    conv = functools.partial(_Conv, fast=f, winograd=wg, native=networks.use_native(self.impl))
    x = nn.relu(conv(8, 9, 's2d', name='contract_conv1')(content))
    x = nn.relu(conv(16, 3, 'stride2', name='contract_conv2')(x))
    x = nn.relu(conv(32, 3, 'stride2', name='contract_conv3')(x))
    for i in range(1, _RESIDUALS + 1):
      y = nn.relu(conv(32, 3, eps=self.eps, name=f'residual{i}_conv1')(x, embedding))
      x = x + conv(32, 3, eps=self.eps, name=f'residual{i}_conv2')(y, embedding)
    x = nn.relu(conv(16, 3, 'up', self.eps, name='expand_conv1')(x, embedding))
    x = nn.relu(conv(8, 3, 'up', self.eps, name='expand_conv2')(x, embedding))
    x = conv(3, 9, 's2d', self.eps, name='expand_conv3')(x, embedding)
    return nn.sigmoid(x[:, :h, :w, :])


# --- Pure entry points -----------------------------------------------------------------------

@jax.jit
def predict(params: Params, style: jax.Array) -> jax.Array:
  """Style embedding(s) (N, 100) of paintings (N, 256, 256, 3) in 0..1."""
  return cast(jax.Array, StylePredictor().apply({'params': params['predict']}, style))


@functools.partial(jax.jit, static_argnums=(3,))
def _transform(params, content, embedding, impl):
  return Transformer(params['eps'], impl).apply({'params': params['transform']}, content,
                                                embedding)


def transform(params: Params, content: jax.Array, embedding: jax.Array, impl: str = 'fast'
              ) -> jax.Array:
  """Stylizes content (N, H, W, 3) in 0..1 with embeddings (N, 100) -> (N, H, W, 3) in 0..1.

  Jitted (one program per shape and ``impl``, however the options are passed).
  """
  return _transform(params, content, embedding, impl)


def interpolate(content_embedding: jax.Array, style_embedding: jax.Array,
                strength: float) -> jax.Array:
  """Magenta's style strength: ``strength * style + (1 - strength) * content`` embeddings."""
  return strength * style_embedding + (1. - strength) * content_embedding


# --- Conversion from the ONNX graphs ---------------------------------------------------------

def _graph_constants(model) -> tuple[dict, dict]:
  """Folds every DequantizeLinear of an initializer; maps activation Q/DQ outputs to inputs.

  Returns ``(consts, alias)``: ``consts[tensor] = (source initializer, float32 array)`` and
  ``alias[tensor] = tensor it is a (fake-quantized) copy of``.
  """
  from onnx import numpy_helper  # pylint: disable=g-import-not-at-top  # conversion-time only
  g = model.graph
  inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
  consts = {name: (name, arr.astype(np.float32)) for name, arr in inits.items()
            if arr.dtype.kind == 'f'}
  alias = {}
  for node in g.node:
    if node.op_type not in ('QuantizeLinear', 'DequantizeLinear'):
      continue
    src = node.input[0]
    if node.op_type == 'DequantizeLinear' and src in inits:
      axis = next((a.i for a in node.attribute if a.name == 'axis'), 1)
      zero = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
      consts[node.output[0]] = (src, onnx_convert.dequantize(inits[src], inits[node.input[1]],
                                                                 zero, axis))
    else:
      alias[node.output[0]] = src
  return consts, alias


def _convs(model) -> dict[str, dict[str, Any]]:
  """``{scope: {'kernel': HWIO or (C_in, C_out), 'bias': (C_out,), 'group': int}}`` per Conv."""
  consts, alias = _graph_constants(model)

  def const(name):
    while name in alias:
      name = alias[name]
    return consts[name]

  out = {}
  for node in model.graph.node:
    if node.op_type != 'Conv':
      continue
    wname, w = const(node.input[1])
    b = const(node.input[2])[1] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
    scope = wname.rsplit('/', 1)[0]
    group = next((a.i for a in node.attribute if a.name == 'group'), 1)
    out[scope] = {'kernel': np.transpose(w, (2, 3, 1, 0)), 'bias': b, 'group': group}
  return out


def _norm_eps(model) -> float:
  """The instance norm's epsilon: the constant added to the variance (``batchnorm/add/y``)."""
  consts, _ = _graph_constants(model)
  values = {float(arr.ravel()[0]) for src, arr in consts.values()
            if src.endswith('batchnorm/add/y')}
  if len(values) != 1:
    raise WeightsError(f'expected one instance-norm epsilon in the transform graph, found '
                       f'{sorted(values)}; is it Magenta\'s arbitrary_transform.onnx?')
  return values.pop()


def params_from_onnx(predict_model, transform_model) -> dict[str, np.ndarray]:
  """Flat ``{'predict/...': array, 'transform/...': array, 'eps': array}`` from the two graphs."""
  flat = {}
  p = _convs(predict_model)
  for scope, conv in p.items():
    name = scope.replace('MobilenetV2/', '').replace('mobilenet_conv/Conv', 'bottleneck')
    flat[f'predict/{name}/kernel'] = conv['kernel']
    flat[f'predict/{name}/bias'] = conv['bias']
  t = _convs(transform_model)
  for scope, conv in t.items():
    # transformer/contract/conv1, transformer/residual/residual1/conv1, transformer/expand/conv1/
    # conv, each + /StyleNorm/Conv (beta) or /StyleNorm/Conv_1 (gamma): 1x1 convs of the embedding.
    parts = scope.split('/')
    parts = parts[parts.index('transformer') + 1:]  # the norms' scopes start 'style_params/'
    norm = 'StyleNorm' in parts
    own = parts[:parts.index('StyleNorm')] if norm else parts
    layer = '_'.join(p_ for p_ in own if p_ not in ('conv', 'residual'))
    if norm:
      which = 'gamma' if parts[-1] == 'Conv_1' else 'beta'
      flat[f'transform/{layer}/norm/{which}/kernel'] = conv['kernel'][0, 0]
      flat[f'transform/{layer}/norm/{which}/bias'] = conv['bias']
    else:
      flat[f'transform/{layer}/kernel'] = conv['kernel']
      flat[f'transform/{layer}/bias'] = conv['bias']
  flat['eps'] = np.array(_norm_eps(transform_model), np.float32)
  return flat


def _nest(flat: Mapping[str, np.ndarray]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    *path, leaf = key.split('/')
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def expected_shapes() -> dict[str, tuple[int, ...]]:
  """``{flat name: shape}`` of every parameter of the two networks (HWIO kernels)."""
  shapes: dict[str, tuple[int, ...]] = {}

  def conv(name, k, cin, cout):
    shapes[f'{name}/kernel'] = (k, k, cin, cout) if k else (cin, cout)
    shapes[f'{name}/bias'] = (cout,)

  conv('predict/Conv', 3, 3, 32)
  cin = 32
  for i, (t, c, _) in enumerate(_MBV2_BLOCKS):
    hidden = cin * t
    if t != 1:
      conv(f'predict/{_block_name(i)}/expand', 1, cin, hidden)
    conv(f'predict/{_block_name(i)}/depthwise', 3, 1, hidden)
    conv(f'predict/{_block_name(i)}/project', 1, hidden, c)
    cin = c
  conv('predict/Conv_1', 1, cin, 1280)
  conv('predict/bottleneck', 1, 1280, EMBEDDING_DIM)
  layers = [('contract_conv1', 9, 3, 8, False), ('contract_conv2', 3, 8, 16, False),
            ('contract_conv3', 3, 16, 32, False)]
  layers += [(f'residual{i}_conv{j}', 3, 32, 32, True)
             for i in range(1, _RESIDUALS + 1) for j in (1, 2)]
  layers += [('expand_conv1', 3, 32, 16, True), ('expand_conv2', 3, 16, 8, True),
             ('expand_conv3', 9, 8, 3, True)]
  for name, k, ci, co, norm in layers:
    conv(f'transform/{name}', k, ci, co)
    if norm:
      conv(f'transform/{name}/norm/gamma', 0, EMBEDDING_DIM, co)
      conv(f'transform/{name}/norm/beta', 0, EMBEDDING_DIM, co)
  return shapes


def validate(flat: Mapping[str, np.ndarray], source: str) -> None:
  """Raises WeightsError unless ``flat`` has exactly the networks' parameters and shapes."""
  want = expected_shapes()
  got = {k: tuple(np.shape(v)) for k, v in flat.items() if k != 'eps' and not k.startswith('__')}
  missing = sorted(set(want) - set(got))
  extra = sorted(set(got) - set(want))
  bad = sorted(k for k in set(want) & set(got) if tuple(want[k]) != got[k])
  if missing or extra or bad or 'eps' not in flat:
    detail = (f'missing {missing[:3]}' if missing else f'unexpected {extra[:3]}' if extra else
              f'wrong shapes {[(k, got[k], tuple(want[k])) for k in bad[:2]]}' if bad else
              'no eps')
    raise WeightsError(f'{source} is not Magenta\'s arbitrary-stylization network ({detail}); '
                       f'pass the original {PREDICT_ONNX} and {TRANSFORM_ONNX}')
  for k, v in flat.items():
    if not k.startswith('__') and not np.all(np.isfinite(v)):
      raise WeightsError(f'{source}: parameter {k} has NaN/Inf values; re-convert it')


def convert(predict_onnx: PathLike, transform_onnx: PathLike, out_path: PathLike) -> Path:
  """Dequantizes the two ONNX graphs into one validated ``.npz`` (written atomically)."""
  predict_onnx, transform_onnx, out_path = Path(predict_onnx), Path(transform_onnx), Path(out_path)
  pm, tm = (onnx_convert.load_onnx_model(p) for p in (predict_onnx, transform_onnx))
  try:
    flat = params_from_onnx(pm, tm)
  except (KeyError, IndexError, ValueError) as e:
    raise WeightsError(f'{predict_onnx} / {transform_onnx} do not have the layout of Magenta\'s '
                       f'arbitrary-stylization graphs ({e})') from e
  validate(flat, f'{predict_onnx} + {transform_onnx}')
  meta = {'format_version': FORMAT_VERSION, 'predict': str(predict_onnx.resolve()),
          'transform': str(transform_onnx.resolve())}
  return weights.write_cached(out_path, flat, meta)


def _digest(*paths: Path) -> str:
  h = hashlib.sha256()
  for p in paths:
    with open(p, 'rb') as f:
      for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
  return h.hexdigest()[:12]


def resolve(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> Path:
  """The converted ``.npz``: ``path`` if it is one; else converted from the ONNX pair in ``path``
  (a directory), or in ``../shared/weights/magenta``, into ``<cache>/ghiasi_<sha12>.npz``.
  """
  cache = Path(cache_dir) if cache_dir is not None else weights.default_cache_dir()
  src = Path(path).expanduser() if path else onnx_convert.default_onnx_dir()
  if src.is_file():
    if src.suffix == '.npz':
      return src
    if src.suffix == '.onnx':
      src = src.parent
    else:
      raise WeightsError(f'{src} is neither a converted Ghiasi .npz nor a directory with '
                         f'{PREDICT_ONNX} and {TRANSFORM_ONNX}')
  if not src.is_dir():
    raise WeightsError(f'Ghiasi weights {src} do not exist; pass a converted .npz or a directory '
                       f'with {PREDICT_ONNX} and {TRANSFORM_ONNX}')
  pred, tran = src / PREDICT_ONNX, src / TRANSFORM_ONNX
  for p in (pred, tran):
    if not p.is_file():
      raise WeightsError(f'{p} does not exist; the directory must hold {PREDICT_ONNX} and '
                         f'{TRANSFORM_ONNX} (Magenta\'s arbitrary stylization, see README)')
  out = cache / f'ghiasi_{_digest(pred, tran)}.npz'
  return out if out.is_file() else convert(pred, tran, out)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int) -> dict:
  del mtime_ns
  p = Path(path)
  try:
    flat = fileio.read_npz(p)[0]
  except (OSError, ValueError) as e:
    raise WeightsError(f'{p} is corrupt or not a converted Ghiasi .npz ({e}); delete it and '
                       're-run to re-convert') from e
  validate(flat, str(p))
  tree = _nest(dict(flat))
  tree['eps'] = float(flat['eps'])
  return jax.tree.map(jnp.asarray, tree)


def load(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> dict:
  """The Ghiasi params ``{'predict': ..., 'transform': ..., 'eps': float}`` (see :func:`resolve`).

  Raises:
    WeightsError: missing, unreadable, corrupt or wrong files.
  """
  p = resolve(path, cache_dir).resolve()
  return _load_cached(str(p), p.stat().st_mtime_ns)
