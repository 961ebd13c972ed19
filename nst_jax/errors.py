"""User-facing errors.

Everything that is the user's fault (a missing file, an unknown layer name, a bad weights file, a
non-positive size) raises :class:`NSTError` with a one-line message that says what to do. The
command-line entry point prints that line and exits non-zero instead of showing a traceback.
"""

from typing import Any


class NSTError(Exception):
  """A problem with the user's input or environment, with an actionable message."""


class ImageError(NSTError):
  """An image or mask could not be read, decoded or written."""


class WeightsError(NSTError):
  """The VGG19 weights could not be found, verified or converted."""


class ConfigError(NSTError):
  """A configuration value is invalid (unknown layer, bad size, unknown optimiser...)."""


class NonFiniteLossError(NSTError):
  """The objective became NaN or Inf during optimisation.

  ``image``: the last finite image (uint8), ``step``: the step it belongs to (set by the
  engine before raising).
  """

  image: Any = None
  step: int = 0
