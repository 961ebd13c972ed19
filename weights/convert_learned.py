"""Converts the official PyTorch weights of the learned metrics into the .npz that nst_jax reads.

You run this once, with torch installed (`pip install torch`); nst_jax itself never imports
torch and never unpickles anything. Download the files first (docs/guide/evaluation.md,
"Learned metrics", lists the URLs), then:

  python weights/convert_learned.py fid_inception --pth pt_inception-2015-12-05-6726825d.pth
  python weights/convert_learned.py art_inception --pth art_inception.pth
  python weights/convert_learned.py lpips_vgg --lin vgg.pth --backbone vgg16-397923af.pth
  python weights/convert_learned.py lpips_alex --lin alex.pth --backbone alexnet-owt-7be5be79.pth

Each writes weights/NAME.npz (or --out PATH). Every source file's sha256 is compared with the
official one where it is published (a mismatch stops here unless --allow-unofficial) and is
recorded in the .npz metadata with a digest of the arrays; nst_jax checks both when it loads.
"""

import argparse
import hashlib
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # Run from a checkout.

# pylint: disable=wrong-import-position
from nst_jax.errors import NSTError, WeightsError  # noqa: E402
from nst_jax.evaluation import learned  # noqa: E402
from nst_jax.io import files as fileio  # noqa: E402
from nst_jax.models import inception, lpips  # noqa: E402

# torch BasicConv2d leaves for our flat leaf names.
_INCEPTION_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                     'mean': 'running_mean', 'var': 'running_var'}
# torchvision `features` indices of the convolutions, in nst_jax.models.lpips order.
_FEATURE_INDEX = {'vgg': (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                  'alex': (0, 3, 6, 8, 10)}


def sha256_file(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def load_state_dict(path: Path) -> Dict[str, Any]:
  """A .pth's tensors as NumPy arrays (torch.load with weights_only=True: no code runs)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise WeightsError('the converter needs torch (`pip install torch`); nst_jax itself does '
                       'not') from e
  if not path.is_file():
    raise WeightsError(f'{path} does not exist; download it first (docs/guide/evaluation.md)')
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # pickle, zip or format errors
    raise WeightsError(f'{path} is not a PyTorch weights file ({type(e).__name__}: '
                       f'{" ".join(str(e).split())[:200]})') from e
  if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise WeightsError(f'{path} holds a {type(obj).__name__}, not a state dict')
  return {str(k): v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, 'detach')}


def _strip_prefix(state: Dict[str, np.ndarray], anchor: str, path: Path) -> Dict[str, np.ndarray]:
  """Drops a common prefix (``module.``, ``net.``...) found in front of ``anchor``."""
  for key in state:
    if key.endswith(anchor):
      prefix = key[:-len(anchor)]
      return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
  raise WeightsError(f'{path} has no {anchor}: not the expected network')


def _take(state: Dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
  if key not in state:
    raise WeightsError(f'{path} lacks {key}')
  value = np.asarray(state[key])
  if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
    raise WeightsError(f'{path}: {key} is not a finite float tensor')
  return value.astype(np.float32)


def _fit(arrays: Dict[str, np.ndarray], shapes: Dict[str, tuple], path: Path) -> None:
  for name, shape in shapes.items():
    if tuple(arrays[name].shape) != tuple(shape):
      raise WeightsError(f'{path}: {name} has shape {arrays[name].shape}, expected {shape}')


def inception_arrays(state: Dict[str, np.ndarray], variant: str, path: Path
                     ) -> Dict[str, np.ndarray]:
  """pytorch-fid / torchvision Inception3 state dict -> nst_jax flat names (kernels HWIO)."""
  state = _strip_prefix(state, 'Conv2d_1a_3x3.conv.weight', path)
  shapes = inception.param_shapes(variant)
  arrays = {}
  for name in shapes:
    *module, leaf = name.split('/')
    value = _take(state, '.'.join(module) + '.' + _INCEPTION_LEAVES[leaf], path)
    arrays[name] = value.transpose(2, 3, 1, 0) if leaf == 'kernel' else value
  _fit(arrays, shapes, path)
  return arrays


def lpips_arrays(lin: Dict[str, np.ndarray], backbone_state: Dict[str, np.ndarray],
                 backbone: str, lin_path: Path, backbone_path: Path) -> Dict[str, np.ndarray]:
  """lpips v0.1 linear layers + torchvision backbone -> nst_jax flat names."""
  state = _strip_prefix(backbone_state, 'features.0.weight', backbone_path)
  arrays = {}
  for (name, *_), index in zip(lpips.conv_layers(backbone), _FEATURE_INDEX[backbone]):
    w = _take(state, f'features.{index}.weight', backbone_path)
    arrays[f'{name}/kernel'] = w.transpose(2, 3, 1, 0)
    arrays[f'{name}/bias'] = _take(state, f'features.{index}.bias', backbone_path)
  lin = _strip_prefix(lin, 'lin0.model.1.weight' if any(
      k.endswith('lin0.model.1.weight') for k in lin) else 'lin0.model.0.weight', lin_path)
  for i in range(len(lpips.CHANNELS[backbone])):
    key = f'lin{i}.model.1.weight' if f'lin{i}.model.1.weight' in lin else f'lin{i}.model.0.weight'
    arrays[f'lin{i}/weight'] = _take(lin, key, lin_path).reshape(-1)
  _fit(arrays, lpips.param_shapes(backbone), lin_path)
  return arrays


def _source(spec: learned.Metric, role: str, path: Path, allow_unofficial: bool
            ) -> Dict[str, Any]:
  official = next(s for s in spec.sources if s.role == role)
  digest = sha256_file(path)
  if official.sha256 is not None and digest != official.sha256 and not allow_unofficial:
    raise WeightsError(f'{path} has sha256 {digest}, not that of the official '
                       f'{official.filename} ({official.sha256}); download {official.url} again, '
                       'or pass --allow-unofficial to convert this file anyway (then give its '
                       'sha256 to nst_jax when loading)')
  return {'file': path.name, 'sha256': digest, 'bytes': path.stat().st_size,
          'official_sha256': official.sha256, 'url': official.url}


def convert(name: str, out: Path, pth: Optional[Path] = None, lin: Optional[Path] = None,
            backbone: Optional[Path] = None, allow_unofficial: bool = False) -> Path:
  """Converts the source files of ``name`` into ``out``; returns ``out``."""
  spec = learned.metric_spec(name)
  if spec.model == 'inception':
    if pth is None:
      raise WeightsError(f'{name} needs --pth (the official {spec.sources[0].filename})')
    sources = {'weights': _source(spec, 'weights', pth, allow_unofficial)}
    arrays = inception_arrays(load_state_dict(pth), spec.variant, pth)
  else:
    if lin is None or backbone is None:
      raise WeightsError(f'{name} needs --lin ({spec.sources[0].filename}) and --backbone '
                         f'({spec.sources[1].filename})')
    sources = {'lin': _source(spec, 'lin', lin, allow_unofficial),
               'backbone': _source(spec, 'backbone', backbone, allow_unofficial)}
    arrays = lpips_arrays(load_state_dict(lin), load_state_dict(backbone), spec.variant,
                          lin, backbone)
  meta = {'metric': name, 'format_version': learned.FORMAT_VERSION, 'sources': sources,
          'arrays_sha256': learned.arrays_digest(arrays), 'converter': 'weights/convert_learned.py'}
  out.parent.mkdir(parents=True, exist_ok=True)
  fileio.write_npz(out, arrays, meta)
  return out


def main(argv: Optional[List[str]] = None) -> int:
  """Runs the converter; returns the exit status."""
  parser = argparse.ArgumentParser(description=(__doc__ or '').splitlines()[0])
  parser.add_argument('name', choices=sorted(learned.LEARNED), help='which weights to convert')
  parser.add_argument('--pth', type=Path, help='the Inception .pth (fid_inception, art_inception)')
  parser.add_argument('--lin', type=Path, help="LPIPS' linear layers (lpips/weights/v0.1/*.pth)")
  parser.add_argument('--backbone', type=Path, help="torchvision's vgg16 / alexnet .pth (LPIPS)")
  parser.add_argument('--out', type=Path, help='output .npz (default: weights/NAME.npz)')
  parser.add_argument('--allow-unofficial', action='store_true',
                      help='convert a source whose sha256 is not the official one')
  args = parser.parse_args(argv)
  try:
    out = convert(args.name, args.out or learned.default_path(args.name), args.pth, args.lin,
                  args.backbone, args.allow_unofficial)
  except NSTError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
