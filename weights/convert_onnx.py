"""Converts an ONNX network's weights (initializers) into the .npz that nst_jax loads.

Float initializers are kept; int8/uint8/int32 initializers feeding DequantizeLinear nodes are
dequantized to float32 (stored under the initializer's and the node output's names). Needs the
optional onnx package (pip install "nst_jax[onnx]"); running the converted network does not.

Usage:
  python weights/convert_onnx.py multistyle26            # ../shared/weights/magenta/<name>.onnx
  python weights/convert_onnx.py --all                   # every .onnx there
  python weights/convert_onnx.py --onnx PATH [--out PATH]
  python weights/convert_onnx.py --onnx PATH --list      # print names, dtypes and shapes
"""

import argparse
from pathlib import Path
import sys
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run from a checkout.

from nst_jax.models import onnx_import as onnx_convert  # pylint: disable=g-import-not-at-top,wrong-import-position
from nst_jax.errors import WeightsError  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv: Optional[List[str]] = None) -> int:
  """Runs the converter; returns the exit status."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('names', nargs='*', help='network names in ../shared/weights/magenta')
  parser.add_argument('--onnx', type=Path, help='an .onnx file to convert')
  parser.add_argument('--out', type=Path, help='output .npz (default: <cache dir>/<name>.npz)')
  parser.add_argument('--all', action='store_true', help='convert every .onnx in the shared dir')
  parser.add_argument('--list', action='store_true', help='print the arrays written')
  args = parser.parse_args(argv)
  sources = [args.onnx] if args.onnx else []
  sources += [onnx_convert.default_onnx_dir() / f'{n}.onnx' for n in args.names]
  if args.all:
    sources += sorted(onnx_convert.default_onnx_dir().glob('*.onnx'))
  if not sources:
    parser.error('give a network name, --onnx PATH or --all')
  if args.out and len(sources) != 1:
    parser.error('--out needs exactly one source')
  try:
    for src in sources:
      out = args.out or onnx_convert.cached_path(src.stem)
      onnx_convert.convert(src, out)
      if args.list:
        arrays, meta = onnx_convert.load_arrays(out)
        for k, v in arrays.items():
          deq = ' (dequantized)' if k in meta.get('dequantized', {}) else ''
          print(f'  {k} {v.dtype} {tuple(v.shape)}{deq}')
      print(out)
  except WeightsError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
