"""Learned metrics whose weights no package ships: FID, LPIPS and ArtFID, as adapters over a
weights file the user downloads and converts (docs/guide/evaluation.md, "Learned metrics").

Nothing here downloads or unpickles anything. The user fetches the official PyTorch files
(:data:`LEARNED` names them, with their URLs), converts them once with
``python weights/convert_learned.py NAME ...`` (which needs torch) into a plain ``.npz`` whose
metadata records the sha256 of every source file and a digest of the arrays, and passes that
``.npz`` here. :func:`load_learned` checks, in order: the file exists (else one
:class:`~nst_jax.errors.WeightsError` line naming the file, the download and the docs), it is a
converted file of that metric, its recorded source hashes equal the official sha256 where one
is published (or the user's ``sha256``, which then replaces the official check and may be the
hash of the ``.npz`` itself or of its source file), the arrays still match the converter's digest,
and every parameter has the shape the model expects.

Metrics (every image RGB 0..255, HxWx3):

* ``fid``: Frechet distance between the pool3 Inception features of two image sets
  (:func:`fid`, pytorch-fid's formula in float64, scipy's ``sqrtm``), with pytorch-fid's
  Inception (``fid_inception``: resized to 299, [-1, 1]);
* ``lpips_vgg`` / ``lpips_alex``: LPIPS v0.1 (:func:`lpips`, :mod:`nst_jax.models.lpips`);
* ``art_fid = (1 + LPIPS) * (1 + FID)`` (Wright & Ommer 2022; :func:`art_fid`) with the
  art-trained Inception (``art_inception``: torchvision blocks, [0, 1] input at the image's own
  size) against the style images, and LPIPS-AlexNet against the content images, as ArtFID
  and StyleID compute it.

:func:`learned_metrics` computes whichever of these the given weights allow, for one method's
outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path
import re
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from nst_jax.errors import ConfigError, ImageError, WeightsError
from nst_jax.io import files as fileio
from nst_jax.io import log
from nst_jax.models import inception as inception_lib
from nst_jax.models import lpips as lpips_lib
from nst_jax.models import weights as weights_lib

PathLike = Union[str, Path]
FORMAT_VERSION = 1
DOCS = 'docs/guide/evaluation.md ("Learned metrics")'
FID_EPS = 1e-6  # pytorch-fid: added to the covariances' diagonals when sqrtm is not finite


@dataclasses.dataclass(frozen=True)
class Source:
  """One official file a converted weights file is made from."""
  role: str             # 'weights' (Inception), 'lin' / 'backbone' (LPIPS)
  filename: str
  url: str
  sha256: Optional[str]  # None where no source publishes it (the converter's record is used)


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str
  model: str            # 'inception' or 'lpips'
  variant: str          # Inception variant or LPIPS backbone
  sources: tuple[Source, ...]
  convert: str          # the converter's command line

  def shapes(self) -> dict[str, tuple[int, ...]]:
    if self.model == 'inception':
      return inception_lib.param_shapes(self.variant)
    return lpips_lib.param_shapes(self.variant)


_LPIPS_RAW = 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/'
_TORCHVISION = 'https://download.pytorch.org/models/'
# sha256 of the official files, as published beside them by downstream projects that pin them
# (see the docs); torchvision's and pytorch-fid's file names carry the first 8 hex digits.
LEARNED: dict[str, Metric] = {m.name: m for m in (
    Metric('fid_inception', 'inception', 'fid', (Source(
        'weights', 'pt_inception-2015-12-05-6726825d.pth',
        'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
        'pt_inception-2015-12-05-6726825d.pth',
        '6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2'),),
        'python weights/convert_learned.py fid_inception '
        '--pth pt_inception-2015-12-05-6726825d.pth'),
    Metric('art_inception', 'inception', 'torchvision', (Source(
        'weights', 'art_inception.pth',
        'https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth',
        None),),
        'python weights/convert_learned.py art_inception --pth art_inception.pth'),
    Metric('lpips_vgg', 'lpips', 'vgg', (
        Source('lin', 'vgg.pth', _LPIPS_RAW + 'vgg.pth',
               'a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868'),
        Source('backbone', 'vgg16-397923af.pth', _TORCHVISION + 'vgg16-397923af.pth',
               '397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0')),
        'python weights/convert_learned.py lpips_vgg --lin vgg.pth --backbone vgg16-397923af.pth'),
    Metric('lpips_alex', 'lpips', 'alex', (
        Source('lin', 'alex.pth', _LPIPS_RAW + 'alex.pth',
               'df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0'),
        Source('backbone', 'alexnet-owt-7be5be79.pth', _TORCHVISION + 'alexnet-owt-7be5be79.pth',
               '7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02')),
        'python weights/convert_learned.py lpips_alex --lin alex.pth '
        '--backbone alexnet-owt-7be5be79.pth'),
)}
_HEX64 = re.compile(r'^[0-9a-f]{64}$')


@dataclasses.dataclass(frozen=True)
class LearnedWeights:
  """A verified, loaded weights file: ``params`` in the form its model takes."""
  name: str
  path: Path
  params: Any
  meta: Mapping[str, Any]

  @property
  def metric(self) -> Metric:
    return LEARNED[self.name]


def metric_spec(name: str) -> Metric:
  if name not in LEARNED:
    raise ConfigError(f'unknown learned metric weights {name!r}; choose one of '
                      f'{", ".join(LEARNED)}')
  return LEARNED[name]


def default_path(name: str) -> Path:
  """Where the converter writes by default: ``<weights cache dir>/NAME.npz``."""
  return weights_lib.default_cache_dir() / f'{name}.npz'


def check_sha256(value: str, what: str = 'sha256') -> str:
  """A lower-case 64-digit hex digest, else :class:`ConfigError`."""
  digest = str(value).strip().lower()
  if not _HEX64.match(digest):
    raise ConfigError(f'{what} {value!r} is not a sha256 (64 hex digits)')
  return digest


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
  """sha256 over the arrays in name order (name, dtype, shape, bytes): what the converter
  records as ``arrays_sha256`` and :func:`load_learned` recomputes."""
  h = hashlib.sha256()
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(f'{name}\0{a.dtype.str}\0{a.shape}\0'.encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _how_to(spec: Metric) -> str:
  downloads = ' and '.join(s.url for s in spec.sources)
  return f'download {downloads}, run `{spec.convert}` and see {DOCS}'


def load_learned(name: str, path: Optional[PathLike] = None,
                 sha256: Optional[str] = None) -> LearnedWeights:
  """Resolves, verifies and loads the converted weights of ``name`` (a key of :data:`LEARNED`).

  ``path``: the converted ``.npz`` (default :func:`default_path`). ``sha256``: the user's
  expected hash, of the ``.npz`` or of the file it was converted from; given, it replaces the
  check against the official hash. Raises :class:`WeightsError` (one line) for a missing,
  unconverted, corrupt or mismatching file and :class:`ConfigError` for a bad name or hash.
  """
  spec = metric_spec(name)
  expected = check_sha256(sha256, f'the sha256 given for {name}') if sha256 else None
  resolved = Path(path).expanduser() if path else default_path(name)
  if not resolved.is_file():
    raise WeightsError(f'{name} weights file {resolved} does not exist; {_how_to(spec)}')
  if resolved.suffix.lower() in ('.pth', '.pt', '.pkl', '.ckpt', '.bin'):
    raise WeightsError(f'{resolved} is a PyTorch checkpoint, which nst_jax never unpickles; '
                       f'convert it to .npz first: `{spec.convert}` (see {DOCS})')
  st = resolved.stat()
  return _load(name, str(resolved.resolve()), st.st_size, st.st_mtime_ns, expected)


@functools.lru_cache(maxsize=8)
def _load(name: str, path: str, size: int, mtime_ns: int,
          expected: Optional[str]) -> LearnedWeights:
  del size, mtime_ns  # cache keys: a rewritten file is read again
  spec, p = LEARNED[name], Path(path)
  redo = f'convert the official files again: `{spec.convert}` (see {DOCS})'
  try:
    arrays, meta = fileio.read_npz(p)
  except ValueError as e:
    raise WeightsError(f'{p} is not a readable .npz ({e}); {redo}') from e
  if meta.get('metric') != name:
    held = meta.get('metric')
    raise WeightsError(f'{p} holds {f"{held} weights" if held else "no converted weights"}, '
                       f'not {name}; {redo}')
  if meta.get('format_version') != FORMAT_VERSION:
    raise WeightsError(f'{p} has format version {meta.get("format_version")!r}, this nst_jax '
                       f'reads {FORMAT_VERSION}; {redo}')
  _check_provenance(spec, p, meta, expected)
  if arrays_digest(arrays) != meta.get('arrays_sha256'):
    raise WeightsError(f'{p} is corrupt: its arrays do not match the digest the converter '
                       f'recorded; {redo}')
  _check_shapes(spec, p, arrays)
  if spec.model == 'inception':
    params: Any = inception_lib.unflatten(arrays)
  else:
    params = {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}
  return LearnedWeights(name, p, params, meta)


def _recorded(spec: Metric, path: Path, meta: Mapping[str, Any]) -> dict[str, str]:
  sources = meta.get('sources')
  recorded = {}
  for source in spec.sources:
    entry = sources.get(source.role) if isinstance(sources, Mapping) else None
    digest = entry.get('sha256') if isinstance(entry, Mapping) else None
    if not isinstance(digest, str) or not _HEX64.match(digest):
      raise WeightsError(f'{path} does not record the sha256 of its {source.role} source file; '
                         f'convert it again with `{spec.convert}` (see {DOCS})')
    recorded[source.role] = digest
  return recorded


def _check_provenance(spec: Metric, path: Path, meta: Mapping[str, Any],
                      expected: Optional[str]) -> None:
  recorded = _recorded(spec, path, meta)
  if expected is not None:
    own = weights_lib.sha256sum(path)
    if expected != own and expected not in recorded.values():
      sources = ', '.join(f'{role} {digest}' for role, digest in recorded.items())
      raise WeightsError(f'{path} has sha256 {own} and was converted from files with sha256 '
                         f'{sources}; none is the sha256 {expected} given for {spec.name}')
    return
  for source in spec.sources:
    got = recorded[source.role]
    if source.sha256 is not None and got != source.sha256:
      name = meta['sources'][source.role].get('file', '?')
      raise WeightsError(
          f'{path} was converted from {name} with sha256 {got}, not from the official '
          f'{source.filename} (sha256 {source.sha256}); download {source.url} and convert it '
          f'again, or pass its sha256 explicitly to use this file as it is (see {DOCS})')


def _check_shapes(spec: Metric, path: Path, arrays: Mapping[str, np.ndarray]) -> None:
  want = spec.shapes()
  missing = sorted(set(want) - set(arrays))
  wrong = sorted(k for k in want if k in arrays and tuple(arrays[k].shape) != want[k])
  if missing or wrong:
    what = (f'missing {", ".join(missing[:3])}' if missing else
            f'{wrong[0]} has shape {tuple(arrays[wrong[0]].shape)}, expected {want[wrong[0]]}')
    raise WeightsError(f'{path} does not fit {spec.name} ({what}); convert it again with '
                       f'`{spec.convert}` (see {DOCS})')


# --- The metrics --------------------------------------------------------------------------------

def _as_images(images: Any, what: str) -> list[np.ndarray]:
  if isinstance(images, (np.ndarray, jax.Array)) and np.ndim(images) == 4:
    out = list(np.asarray(images))
  elif isinstance(images, (np.ndarray, jax.Array)) and np.ndim(images) == 3:
    out = [np.asarray(images)]
  else:
    out = [np.asarray(im) for im in images]
  for im in out:
    if im.ndim != 3 or im.shape[-1] != 3:
      raise ImageError(f'{what}: expected RGB images (H, W, 3), got shape {im.shape}')
  return out


def _batches(shapes: Sequence[tuple[int, ...]], batch_size: int) -> list[list[int]]:
  """Indices batched by image shape, ``min(batch_size, N)`` at most per batch."""
  by_shape: dict[tuple[int, ...], list[int]] = {}
  for i, shape in enumerate(shapes):
    by_shape.setdefault(tuple(shape), []).append(i)
  size = max(1, min(batch_size, len(shapes)))
  return [idx[k:k + size] for idx in by_shape.values() for k in range(0, len(idx), size)]


def _padded(images: Sequence[np.ndarray], idx: list[int], size: int) -> np.ndarray:
  """The batch of ``idx``, its last image repeated up to ``size`` rows: every batch of a run has
  one shape, so each network compiles once per image size (the extra rows are dropped)."""
  rows = [images[i] for i in idx] + [images[idx[-1]]] * (size - len(idx))
  return np.stack(rows).astype(np.float32)


def _require(weights: LearnedWeights, model: str) -> None:
  if weights.metric.model != model:
    raise ConfigError(f'{weights.name} weights are not {model} weights')


def inception_features(weights: LearnedWeights, images: Any, batch_size: int = 16,
                       size: Optional[int] = inception_lib.FID_SIZE) -> np.ndarray:
  """pool3 features ``(N, 2048)`` (float64) of RGB 0..255 images (a batch or a list of HxWx3
  arrays of any sizes). ``size``: the FID Inception's resize (299); ArtFID's never resizes."""
  _require(weights, 'inception')
  ims = _as_images(images, 'inception_features')
  out = np.zeros((len(ims), inception_lib.FEATURES), np.float64)
  rows = max(1, min(batch_size, len(ims)))
  for idx in _batches([im.shape for im in ims], batch_size):
    feats = inception_lib.features(weights.params, _padded(ims, idx, rows),
                                   weights.metric.variant, size)
    out[idx] = np.asarray(feats)[:len(idx)]
  return out


def lpips(weights: LearnedWeights, a: Any, b: Any, batch_size: int = 16) -> np.ndarray:
  """LPIPS distances ``(N,)`` between paired RGB 0..255 images (each pair of one shape)."""
  _require(weights, 'lpips')
  xs, ys = _as_images(a, 'lpips'), _as_images(b, 'lpips')
  if len(xs) != len(ys):
    raise ImageError(f'lpips pairs images: got {len(xs)} and {len(ys)}')
  for x, y in zip(xs, ys):
    if x.shape != y.shape:
      raise ImageError(f'lpips compares images of one size, got {x.shape} and {y.shape}')
  out = np.zeros(len(xs), np.float64)
  rows = max(1, min(batch_size, len(xs)))
  for idx in _batches([x.shape for x in xs], batch_size):
    d = lpips_lib.distance(weights.params, _padded(xs, idx, rows), _padded(ys, idx, rows),
                           weights.metric.variant)
    out[idx] = np.asarray(d)[:len(idx)]
  return out


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray, eps: float = FID_EPS) -> float:
  """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, as pytorch-fid computes it."""
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
  if mu1.shape != mu2.shape or s1.shape != s2.shape:
    raise ConfigError(f'Frechet distance of statistics of different sizes: {mu1.shape}, '
                      f'{mu2.shape}')
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.all(np.isfinite(covmean)):
    log.info(f'fid: singular covariance product; adding {eps} to the diagonals')
    offset = np.eye(s1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f'fid: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm')
    covmean = covmean.real
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2. * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FID between two feature sets ``(N, D)``: sample means and (N - 1)-normalised covariances.

  The trace term is computed exactly, without a matrix square root: with the centred features
  ``A`` (n x D) and ``B`` (m x D), ``S1 S2 = A'A B'B / ((n-1)(m-1))`` has the squared singular
  values of ``A B'`` as its non-zero eigenvalues, so ``tr (S1 S2)^(1/2)`` is the nuclear norm
  of ``A B' / sqrt((n-1)(m-1))``, an n x m matrix (the D x D form ``sqrt(S1) S2 sqrt(S1)`` when
  the sets are larger than D). This equals pytorch-fid's ``sqrtm`` result up to rounding where
  that is accurate, and stays exact (and fast) for the rank-deficient covariances of fewer than
  D images, where ``sqrtm`` is slow and loses digits.
  """
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ConfigError(f'fid compares two (N, D) feature sets, got {a.shape} and {b.shape}')
  if min(len(a), len(b)) < 2:
    raise ConfigError(f'fid needs at least 2 images in each set, got {len(a)} and {len(b)}')
  mu_a, mu_b = a.mean(0), b.mean(0)
  ca, cb = (a - mu_a) / np.sqrt(len(a) - 1), (b - mu_b) / np.sqrt(len(b) - 1)
  if min(len(a), len(b)) <= a.shape[1]:
    tr_covmean = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
  else:
    w, v = np.linalg.eigh(ca.T @ ca)
    root = (v * np.sqrt(np.clip(w, 0., None))) @ v.T
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ (cb.T @ cb) @ root), 0.,
                                       None)).sum())
  diff = mu_a - mu_b
  return float(diff @ diff + np.sum(ca * ca) + np.sum(cb * cb) - 2. * tr_covmean)


def art_fid(fid_value: float, lpips_value: float) -> float:
  """ArtFID = (1 + LPIPS) * (1 + FID) (Wright & Ommer 2022): lower is better."""
  return (1. + float(lpips_value)) * (1. + float(fid_value))


def _match_size(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  if image.shape == shape:
    return image
  out = jax.image.resize(jnp.asarray(image, jnp.float32), shape, method='linear')
  return np.asarray(jnp.clip(out, 0., 255.))


def learned_metrics(outputs: Any, contents: Any, styles: Any,
                    weights: Mapping[str, Optional[PathLike]],
                    sha256: Optional[Mapping[str, str]] = None, batch_size: int = 16,
                    fid_size: int = inception_lib.FID_SIZE) -> dict[str, float]:
  """One method's learned metrics: ``outputs[i]`` stylises ``contents[i]``; ``styles`` are the
  paintings (one per output as ArtFID pairs them, or any set).

  ``weights``: metric weights name (:data:`LEARNED`) -> converted ``.npz`` path (``None``: the
  default path); ``sha256``: optional user hashes by name. Returns those of ``fid``
  (fid_inception), ``lpips_vgg``, ``lpips_alex``, ``fid_art`` (art_inception) and ``art_fid``
  (art_inception and lpips_alex) that the given weights allow. LPIPS resizes an output to its
  photo's size when they differ. ``fid_size``: the FID Inception's input size (pytorch-fid's
  299; values at other sizes are not comparable with published FIDs).
  """
  for name in weights:
    metric_spec(name)
  loaded = {name: load_learned(name, path, (sha256 or {}).get(name))
            for name, path in weights.items()}
  outs = _as_images(outputs, 'outputs')
  result: dict[str, float] = {}
  if 'lpips_vgg' in loaded or 'lpips_alex' in loaded:
    photos = _as_images(contents, 'contents')
    if len(photos) != len(outs):
      raise ImageError(f'{len(outs)} outputs for {len(photos)} content images')
    resized = [_match_size(o, c.shape) for o, c in zip(outs, photos)]
    for name in ('lpips_vgg', 'lpips_alex'):
      if name in loaded:
        result[name] = float(np.mean(lpips(loaded[name], resized, photos, batch_size)))
  paintings = None
  for name, key in (('fid_inception', 'fid'), ('art_inception', 'fid_art')):
    if name in loaded:
      paintings = _as_images(styles, 'styles') if paintings is None else paintings
      if min(len(outs), len(paintings)) < 2:
        raise ConfigError(f'{key} needs at least 2 outputs and 2 style images')
      if len(outs) < inception_lib.FEATURES:
        log.info(f'{key}: {len(outs)} images give a covariance of rank below '
                 f'{inception_lib.FEATURES}; the value is biased and comparable only at equal N')
      result[key] = fid(inception_features(loaded[name], outs, batch_size, fid_size),
                        inception_features(loaded[name], paintings, batch_size, fid_size))
  if 'fid_art' in result and 'lpips_alex' in result:
    result['art_fid'] = art_fid(result['fid_art'], result['lpips_alex'])
  return result
