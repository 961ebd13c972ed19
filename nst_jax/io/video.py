"""Video in and out with the ffmpeg that the ``imageio-ffmpeg`` package ships.

* :func:`probe`: frame rate, size, duration, frame count estimate and whether there is audio;
* :func:`read_frames`: RGB uint8 (H, W, 3) frames, optionally resized (the rules of
  :func:`nst_jax.io.images.resize_image`);
* :class:`VideoWriter`: H.264 (yuv420p) at the given rate into a temp file beside the target,
  the source's audio copied in when there is some, renamed into place only when complete;
* :class:`TemporalSmoother`: optional flicker reduction for per-frame stylization.

Every failure (missing package, unreadable or non-video file, encoder error) raises
:class:`VideoError` with one line; a failed or interrupted write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Iterator, Optional, Union
import warnings

import numpy as np

from nst_jax.errors import NSTError
from nst_jax.io import images as image_io

PathLike = Union[str, os.PathLike]
VIDEO_SUFFIXES = ('.mp4', '.mov', '.m4v', '.mkv', '.avi', '.webm', '.mpg', '.mpeg', '.gif')
_INSTALL = 'pip install "nst_jax[video]" (or pip install imageio-ffmpeg)'


class VideoError(NSTError):
  """A video could not be read, decoded or written."""


def is_video(path: PathLike) -> bool:
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _ffmpeg():
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise VideoError(f'reading and writing video needs imageio-ffmpeg: {_INSTALL}') from e
  # ffmpeg runs as a fork+exec'd subprocess (no Python in the child, so JAX's threads are safe),
  # and we resize on read on purpose: silence both warnings.
  warnings.filterwarnings('ignore', message=r'os\.fork\(\) was called', category=RuntimeWarning)
  logging.getLogger('imageio_ffmpeg').setLevel(logging.ERROR)
  return imageio_ffmpeg


def _one_line(e: BaseException) -> str:
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  return (lines[-1] if lines else type(e).__name__)[:300]


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  fps: float
  width: int
  height: int
  duration: float
  frames: int          # estimate: round(duration * fps)
  has_audio: bool
  codec: str = ''


def _check_file(path: Path) -> None:
  if not path.exists():
    raise VideoError(f'video file not found: {path} (check the path)')
  if path.is_dir():
    raise VideoError(f'video path is a directory, not a file: {path}')
  if not os.access(path, os.R_OK):
    raise VideoError(f'cannot read video {path}: permission denied')


def _open(path: Path, size=None):
  """The imageio-ffmpeg frame generator (primed: its metadata read) and that metadata."""
  ff = _ffmpeg()
  _check_file(path)
  output_params = None
  if size is not None:
    output_params = ['-vf', f'scale={size[1]}:{size[0]}:flags=area']
  try:
    gen = ff.read_frames(str(path), output_params=output_params)
    meta = next(gen)
  except (RuntimeError, OSError, StopIteration, ValueError) as e:
    raise VideoError(f'cannot read video {path}: {_one_line(e)} (is it a complete video '
                     'file?)') from e
  if not meta.get('size') or not meta.get('fps'):
    gen.close()
    raise VideoError(f'cannot read video {path}: no video stream found')
  return gen, meta


def probe(path: PathLike) -> VideoInfo:
  """Frame rate, size and audio presence of a video file (VideoError if unreadable)."""
  path = Path(path).expanduser()
  gen, meta = _open(path)
  gen.close()
  w, h = meta['size']
  fps = float(meta['fps'])
  duration = float(meta.get('duration') or 0.)
  return VideoInfo(fps, int(w), int(h), duration, int(round(duration * fps)),
                   bool(meta.get('audio_codec')), str(meta.get('codec', '')))


def output_shape(info: VideoInfo, size: Optional[int] = None) -> tuple[int, int]:
  """(H, W) of the frames :func:`read_frames` yields for ``size`` (longest side), made even
  (H.264 in yuv420p needs even sides)."""
  h, w = info.height, info.width
  if size:
    scale = size / max(h, w)
    h, w = max(2, round(h * scale)), max(2, round(w * scale))
  return h - h % 2, w - w % 2


def read_frames(path: PathLike, size: Optional[int] = None, max_frames: Optional[int] = None
                ) -> Iterator[np.ndarray]:
  """Yields RGB uint8 (H, W, 3) frames; resized to :func:`output_shape` (even sides) by ffmpeg.

  Raises:
    VideoError: the file is missing, not a video, or decoding fails midway.
  """
  path = Path(path).expanduser()
  info = probe(path)
  h, w = output_shape(info, size)
  resize = (h, w) != (info.height, info.width)
  gen, _ = _open(path, (h, w) if resize else None)
  n = 0
  try:
    for raw in gen:
      frame = np.frombuffer(raw, np.uint8)
      if frame.size != h * w * 3:
        raise VideoError(f'cannot decode video {path}: frame {n} has {frame.size} bytes, '
                         f'expected {h}x{w}x3')
      yield frame.reshape(h, w, 3)
      n += 1
      if max_frames and n >= max_frames:
        break
  except RuntimeError as e:
    raise VideoError(f'cannot decode video {path} at frame {n}: {_one_line(e)}') from e
  finally:
    gen.close()
  if n == 0:
    raise VideoError(f'video {path} has no frames')


class VideoWriter:
  """Writes frames to an H.264 ``.mp4`` atomically; ``audio_from``: copy that file's audio
  (cut after ``max_frames`` frames' worth when given).

  Use as a context manager: the file appears at ``path`` only if the block completes; on an
  exception (Ctrl-C included) the temp file is deleted.
  """

  def __init__(self, path: PathLike, fps: float, shape: tuple[int, int],
               audio_from: Optional[PathLike] = None, quality: float = 7.,
               max_frames: Optional[int] = None):
    self.path = Path(path).expanduser()
    if self.path.suffix.lower() not in ('.mp4', '.m4v', '.mov', '.mkv'):
      raise VideoError(f'video output {self.path} needs a .mp4 (or .mov/.mkv) extension')
    h, w = shape
    if h % 2 or w % 2:
      raise VideoError(f'H.264 needs even frame sides, got {w}x{h}')
    self.shape, self.fps, self.frames = (int(h), int(w)), float(fps), 0
    self.audio_from = str(audio_from) if audio_from else None
    # Audio beyond the last frame is cut with -t (ffmpeg's -shortest can drop the last frame).
    self.max_frames = max_frames
    self.quality = quality
    self._tmp: Optional[str] = None
    self._gen: Any = None  # imageio-ffmpeg's write_frames generator

  def __enter__(self) -> 'VideoWriter':
    ff = _ffmpeg()
    try:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f'.{self.path.stem}.',
                                       suffix=self.path.suffix)
      os.close(fd)
    except OSError as e:
      raise VideoError(f'cannot write video {self.path}: {e.strerror or e}') from e
    extra = []
    if self.audio_from and self.max_frames:
      extra = ['-t', f'{(self.max_frames + 0.5) / self.fps:.6f}']
    h, w = self.shape
    self._gen = ff.write_frames(self._tmp, (w, h), fps=self.fps, codec='libx264',
                                quality=self.quality, macro_block_size=2,
                                audio_path=self.audio_from,
                                audio_codec='copy' if self.audio_from else None,
                                output_params=extra + ['-movflags', '+faststart'])
    try:
      self._gen.send(None)
    except (RuntimeError, OSError) as e:
      self._cleanup()
      raise VideoError(f'cannot start the video encoder for {self.path}: {_one_line(e)}') from e
    return self

  def write(self, frame: np.ndarray) -> None:
    frame = np.ascontiguousarray(image_io.to_uint8(frame) if frame.dtype != np.uint8 else frame)
    if frame.shape != (*self.shape, 3):
      raise VideoError(f'frame of shape {frame.shape} for a {self.shape[1]}x{self.shape[0]} video')
    try:
      self._gen.send(frame)
    except (RuntimeError, OSError, StopIteration) as e:
      raise VideoError(f'video encoder failed writing {self.path}: {_one_line(e)}') from e
    self.frames += 1

  def _cleanup(self) -> None:
    if self._gen is not None:
      with contextlib.suppress(Exception):
        self._gen.close()
      self._gen = None
    if self._tmp and os.path.exists(self._tmp):
      os.unlink(self._tmp)
    self._tmp = None

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is not None or self.frames == 0:
      self._cleanup()
      if exc_type is None:
        raise VideoError(f'no frames written to {self.path}')
      return
    tmp = self._tmp
    assert tmp is not None
    try:
      self._gen.close()  # flushes and waits for ffmpeg
      self._gen = None
      os.chmod(tmp, 0o644)
      os.replace(tmp, self.path)
      self._tmp = None
    except (RuntimeError, OSError) as e:
      self._cleanup()
      raise VideoError(f'video encoder failed finishing {self.path}: {_one_line(e)}') from e
    finally:
      self._cleanup()


class TemporalSmoother:
  """Reduces frame-to-frame flicker of independently stylized frames.

  ``out_t = s_t + w * (out_{t-1} - s_t)`` with a per-pixel weight ``w = strength *
  exp(-(d / sigma)^2)``, where ``d`` is the mean absolute change of the *input* photo between the
  two frames (0..255 units): static regions keep their previous look (no flicker), moving regions
  follow the new frame (no ghosting). ``strength`` in [0, 1); 0 disables it.
  """

  def __init__(self, strength: float, sigma: float = 12.):
    if not 0. <= strength < 1.:
      raise NSTError(f'temporal_smoothing must be in [0, 1), got {strength}')
    self.strength, self.sigma = float(strength), float(sigma)
    self._prev_in: Optional[np.ndarray] = None
    self._prev_out: Optional[np.ndarray] = None

  def __call__(self, photo: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    if self.strength == 0.:
      return stylized
    x = np.asarray(photo, np.float32)
    s = np.asarray(stylized, np.float32)
    prev_in, prev_out = self._prev_in, self._prev_out
    if prev_in is None or prev_out is None or prev_out.shape != s.shape:
      out = s
    else:
      d = np.abs(x - prev_in).mean(-1, keepdims=True)
      w = self.strength * np.exp(-np.square(d / self.sigma))
      out = s + w * (prev_out - s)
    self._prev_in, self._prev_out = x, out
    return out
