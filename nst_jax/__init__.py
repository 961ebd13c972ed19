"""nst_jax: neural style transfer (Gatys et al.) in JAX/Flax."""

from nst_jax.errors import NSTError
from nst_jax.engine import stylize

__all__ = ['NSTError', 'stylize']
__version__ = '0.1.0'
