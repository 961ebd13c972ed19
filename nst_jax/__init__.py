"""nst_jax: neural style transfer in JAX/Flax.

The public Python API (everything else is reachable by its module path, see the README's
"How the code is organised"):

* :func:`stylize`: optimisation-based style transfer (Gatys et al.; every preset's knobs as
  keyword arguments), an array in, an array out.
* :func:`extract` and :func:`load_vgg19`: VGG19 feature extraction and its weights.
* :func:`stylize_fast`: a trained feed-forward network (the built-in 26 styles by default).
* :func:`stylize_arbitrary`: any painting in one pass (Ghiasi et al. 2017, or AdaIN).
* :func:`train`: the training job (a feed-forward network or the AdaIN decoder) from a config.

Imports are lazy (PEP 562), so ``import nst_jax`` does not load JAX until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from nst_jax.errors import NSTError

_API = {
    'stylize': ('nst_jax.optimize.stylize', 'stylize'),
    'extract': ('nst_jax.models.vgg', 'extract'),
    'load_vgg19': ('nst_jax.models.weights', 'load_vgg19'),
    'stylize_fast': ('nst_jax.jobs.fast', 'stylize'),
    'stylize_arbitrary': ('nst_jax.jobs.arbitrary', 'stylize_arbitrary'),
    'train': ('nst_jax.jobs.train', 'run'),
}

__all__ = ['NSTError', *_API]
__version__ = '0.1.0'


def __getattr__(name: str) -> Any:
  if name in _API:
    module, attr = _API[name]
    return getattr(importlib.import_module(module), attr)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(__all__)
