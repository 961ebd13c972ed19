"""Converts the Keras VGG19 weights (.h5) into the .npz that nst_jax loads.

Usage:
  python weights/convert.py                     # find a local .h5 (see weights/README.md)
  python weights/convert.py --download          # ... or download the official Keras file
  python weights/convert.py --h5 PATH [--out PATH]
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run from a checkout.

from nst_jax.models import weights  # pylint: disable=g-import-not-at-top,wrong-import-position
from nst_jax.errors import WeightsError  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv: Optional[List[str]] = None) -> int:
  """Runs the converter; returns the exit status."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--h5', type=Path, help='Keras .h5 to convert (default: search for one)')
  parser.add_argument('--out', type=Path, help='output .npz (default: <cache dir>/vgg19.npz)')
  parser.add_argument('--download', action='store_true',
                      help=f'download {weights.KERAS_FILENAME} if no local copy is found')
  args = parser.parse_args(argv)
  try:
    if args.h5:
      out = weights.convert(args.h5, args.out or weights.default_cache_dir() / weights.CACHE_NPZ)
    else:
      out = weights.resolve_weights(allow_download=args.download)
      if args.out and args.out.resolve() != out.resolve():
        out = weights.save_params(weights.load_params(out), args.out, weights.load_metadata(out))
  except WeightsError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
