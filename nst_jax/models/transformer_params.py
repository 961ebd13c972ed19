"""The transformer's parameters: the flat ``'layer/name'`` form of ``model.npz``, Flax's
``'layer.name'`` variables, validation against a :class:`NetworkConfig`, the ONNX import and a
fresh draw (the architecture itself is :mod:`nst_jax.models.transformer`)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax.numpy as jnp
import numpy as np

from nst_jax.errors import ConfigError
from nst_jax.models.transformer import NetworkConfig, multistyle26, param_shapes

def flatten_params(params: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """``{layer: {name: array}}`` (or Flax's ``{'layer.name': array}``) -> flat
  ``{'layer/name': array}``."""
  flat = {}
  for k, v in params.items():
    if isinstance(v, Mapping):
      for n, a in v.items():
        flat[f'{k}/{n}'] = np.asarray(a, np.float32)
    else:
      flat[k.replace('.', '/')] = np.asarray(v, np.float32)
  return flat


def unflatten_params(flat: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  nested: dict[str, dict[str, np.ndarray]] = {}
  for k, a in flat.items():
    layer, _, name = k.replace('.', '/').rpartition('/')
    nested.setdefault(layer, {})[name] = np.asarray(a)
  return nested


def check_params(c: NetworkConfig, params: Mapping[str, Mapping[str, Any]], where: str = ''
                 ) -> dict[str, dict[str, np.ndarray]]:
  """Validates nested params against the config; returns float32 numpy copies.

  Raises:
    ConfigError: a missing/unexpected parameter or a wrong shape (names the first one).
  """
  where = f' in {where}' if where else ''
  want = param_shapes(c)
  out: dict[str, dict[str, np.ndarray]] = {}
  for layer, names in want.items():
    for name, shape in names.items():
      a = params.get(layer, {}).get(name)
      if a is None:
        raise ConfigError(f'parameter {layer}/{name} is missing{where}; the weights do not match '
                          'the network config')
      a = np.asarray(a, np.float32)
      if a.shape != shape:
        raise ConfigError(f'parameter {layer}/{name} has shape {a.shape}, expected {shape}{where}'
                          '; the weights do not match the network config')
      if not np.all(np.isfinite(a)):
        raise ConfigError(f'parameter {layer}/{name} has NaN or Inf values{where}')
      out.setdefault(layer, {})[name] = a
  extra = sorted(f'{l}/{n}' for l, p in params.items() for n in p if n not in want.get(l, {}))
  if extra:
    raise ConfigError(f'unexpected parameter(s) {", ".join(extra[:3])}{where}; the weights do not '
                      'match the network config')
  return out


def from_onnx_arrays(arrays: Mapping[str, np.ndarray], config: Optional[NetworkConfig] = None
                     ) -> tuple[NetworkConfig, dict[str, dict[str, np.ndarray]]]:
  """The multistyle26 ONNX initializers (``contract.0.w``, ``contract.0.norm.gamma``...) ->
  (config, nested params): OIHW kernels become HWIO."""
  config = config or multistyle26()
  params: dict[str, dict[str, np.ndarray]] = {}
  for k, a in arrays.items():
    parts = k.split('.')
    if parts[-1] == 'w':
      params.setdefault('_'.join(parts[:-1]), {})['kernel'] = np.transpose(a, (2, 3, 1, 0))
    elif parts[-1] == 'b':
      params.setdefault('_'.join(parts[:-1]), {})['bias'] = np.asarray(a)
    elif parts[-2:] in (['norm', 'gamma'], ['norm', 'beta']):
      params.setdefault('_'.join(parts[:-2]), {})[parts[-1]] = np.asarray(a)
  return config, check_params(config, params, 'the ONNX file')


def init_params(config: NetworkConfig, seed: int = 0) -> dict[str, Any]:
  """Fresh Flax variables ``{'params': {'layer.name': array}}`` (what ``Transformer.init``
  gives, drawn with numpy: kernels N(0, 1/fan_in), biases and betas 0, gammas 1).

  Numpy instead of ``Transformer(config).init``: XLA:CPU takes seconds to compile each
  ``jax.random`` draw, this takes milliseconds.
  """
  rng = np.random.default_rng(seed)
  out = {}
  for layer, shapes in param_shapes(config).items():
    for name, shape in shapes.items():
      if name == 'kernel':
        a = rng.normal(0., 1. / np.sqrt(np.prod(shape[:-1])), size=shape)
      else:
        a = np.full(shape, 1. if name == 'gamma' else 0.)
      out[f'{layer}.{name}'] = jnp.asarray(a, jnp.float32)
  return {'params': out}


def nested_from_flax(variables: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  return unflatten_params(dict(variables['params']))


def flax_from_nested(params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  return {'params': {f'{l}.{n}': jnp.asarray(a) for l, p in params.items() for n, a in p.items()}}
