"""Flicker of the one-pass jobs' videos against ``temporal_smoothing`` (the jobs' default is chosen
from this measurement).

  python -m nst_jax.bench.video_flicker --json=outputs/video_flicker.jsonl
  python -m nst_jax.bench.video_flicker --methods=fast --smoothing=0,0.8 --frames_dir=/tmp/f

Each method (``fast``: the built-in 26-style network, ``style_index``; ``ghiasi`` and ``adain``:
the arbitrary job's methods with ``--style``) stylizes every frame of the clip once, at ``--size``
px and the clip's full frame rate, in the jobs' batches; then each smoothing value runs the jobs'
:class:`nst_jax.io.video.TemporalSmoother` over those frames, and the result is encoded as the jobs
encode it (H.264, :class:`nst_jax.io.video.VideoWriter`) and read back. One JSON line per (method,
smoothing):

* ``flicker_ratio``: :func:`nst_jax.evaluation.video.flicker_ratio` of the encoded video against
  the input frames (1 = as much frame-to-frame change as the input; the target is <= 3);
  ``flicker_ratio_raw``: the same before encoding;
* ``warping_error``: :func:`nst_jax.evaluation.video.warping_error` (needs OpenCV; else absent);
* ``lag_moving`` and ``ghost_ratio`` (:func:`ghosting`): how far the smoothed frame stays from
  its own stylization where the *input* moved (more than the smoother's sigma since the previous
  frame), in 0..255 and relative to the stylization's own change there (0 = no ghosting, 1 =
  stuck on the previous frame);
* ``stylize_s`` (the method's stylization of the whole clip, once) and ``metrics_s``.

``--frames_dir`` saves frames ``--frames`` of each output as PNGs (input | smoothing 0 | this
value) to look for ghosting. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

from nst_jax.evaluation import video as video_eval
from nst_jax.io import images as image_io
from nst_jax.io import video

SHARED = Path(__file__).resolve().parents[2].parent / 'shared'
CLIP = SHARED / 'videos' / 'bunny.mp4'
STYLE = SHARED / 'images' / 'styles' / 'candy.jpg'
METHODS = ('fast', 'ghiasi', 'adain')


def stylizer_for(method: str, style: Path, style_index: str) -> Any:
  """The job's stylizer for ``method`` with its default weights."""
  if method == 'fast':
    from nst_jax.jobs import fast  # pylint: disable=g-import-not-at-top
    return fast.Stylizer('multistyle26', style_index)
  from nst_jax.jobs import arbitrary  # pylint: disable=g-import-not-at-top
  return arbitrary.ArbitraryStylizer([arbitrary.load_style(style)], method)


def stylize_frames(stylizer: Any, frames: np.ndarray, batch_size: int) -> np.ndarray:
  """Every frame through ``stylizer.dispatch`` in the jobs' batches (the last one padded)."""
  out = []
  for i in range(0, len(frames), batch_size):
    batch = frames[i:i + batch_size]
    padded = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), 0)])
    out.append(np.asarray(stylizer.dispatch(padded))[:len(batch)])
  return np.concatenate(out)


def smooth(frames: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
  """The jobs' temporal smoothing, frame by frame, as uint8 (what the encoder is given)."""
  smoother = video.TemporalSmoother(strength)
  return np.stack([image_io.to_uint8(np.asarray(smoother(x, s), np.float32))
                   if strength else s for x, s in zip(frames, stylized)])


def encode_decode(frames: np.ndarray, fps: float, workdir: Path) -> np.ndarray:
  path = workdir / 'out.mp4'
  with video.VideoWriter(path, fps, frames.shape[1:3]) as writer:
    for f in frames:
      writer.write(f)
  decoded = np.stack(list(video.read_frames(path)))
  path.unlink()
  return decoded


def ghosting(frames: np.ndarray, stylized: np.ndarray, output: np.ndarray,
             sigma: float = 12.) -> tuple[float, float]:
  """``(lag, ratio)`` over the pixels whose input changed by more than ``sigma`` since the previous
  frame: ``lag`` = mean |output - stylized| (0..255), ``ratio`` = lag over those pixels' mean
  |stylized_t - stylized_{t-1}| (0 = follows the new frame, 1 = stuck on the previous one)."""
  lag, change, count = 0., 0., 0
  for t in range(1, len(frames)):
    moving = np.abs(frames[t].astype(np.float32) - frames[t - 1]).mean(-1) > sigma
    if moving.any():
      s = stylized[t].astype(np.float32)
      lag += float(np.abs(output[t] - s).mean(-1)[moving].sum())
      change += float(np.abs(s - stylized[t - 1]).mean(-1)[moving].sum())
      count += int(moving.sum())
  return lag / max(count, 1), lag / max(change, 1e-9)


def measure(clip: Path = CLIP, size: Optional[int] = 320, methods=METHODS,
            smoothing=(0., 0.5, 0.7, 0.8, 0.9), style: Path = STYLE, style_index: str = '0',
            batch_size: int = 4, max_frames: Optional[int] = None,
            frames_dir: Optional[Path] = None, save_frames=(60, 120), emit=None) -> list[dict]:
  """One row per (method, smoothing); ``emit(row)`` as each is ready."""
  info = video.probe(clip)
  frames = np.stack(list(video.read_frames(clip, size, max_frames)))
  warp = importlib.util.find_spec('cv2') is not None  # the warping error needs OpenCV
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for method in methods:
      t = time.perf_counter()
      stylized = stylize_frames(stylizer_for(method, style, style_index), frames, batch_size)
      stylize_s = time.perf_counter() - t
      for s in smoothing:
        t = time.perf_counter()
        raw = smooth(frames, stylized, float(s))
        encoded = encode_decode(raw, info.fps, Path(tmp))
        lag, ratio = ghosting(frames, stylized, raw)
        row: dict[str, Any] = {
            'method': method, 'temporal_smoothing': float(s),
            'flicker_ratio': round(float(video_eval.flicker_ratio(encoded, frames)), 4),
            'flicker_ratio_raw': round(float(video_eval.flicker_ratio(raw, frames)), 4),
            'lag_moving': round(lag, 3), 'ghost_ratio': round(ratio, 4)}
        if warp:
          row['warping_error'] = round(video_eval.warping_error(encoded, frames), 6)
        row.update(frames=len(frames), fps=info.fps, shape=list(frames.shape[1:3]),
                   stylize_s=round(stylize_s, 2), metrics_s=round(time.perf_counter() - t, 2))
        if frames_dir is not None:
          for k in save_frames:
            if k < len(frames):
              image_io.save_image(Path(frames_dir) / f'{method}_s{s:g}_frame{k:03d}.png',
                                  np.concatenate([frames[k], stylized[k], raw[k]], 1))
        rows.append(row)
        if emit is not None:
          emit(row)
  return rows


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--clip', default=str(CLIP))
  p.add_argument('--size', type=int, default=320, help='longest side in px (0 = the source)')
  p.add_argument('--methods', default=','.join(METHODS))
  p.add_argument('--smoothing', default='0,0.5,0.7,0.8,0.9')
  p.add_argument('--style', default=str(STYLE), help='painting of ghiasi and adain')
  p.add_argument('--style_index', default='0', help='style of the built-in 26-style network')
  p.add_argument('--batch_size', type=int, default=4)
  p.add_argument('--max_frames', type=int, default=0, help='0 = the whole clip')
  p.add_argument('--frames_dir', default=None, help='save input|stylized|smoothed PNGs here')
  p.add_argument('--frames', default='60,120', help='frame indices for --frames_dir')
  p.add_argument('--json', default=None, help='also write the JSON lines to this file')
  a = p.parse_args(argv)
  sink = open(a.json, 'w', encoding='utf-8') if a.json else None  # pylint: disable=consider-using-with

  def emit(row: dict) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if sink is not None:
      sink.write(line + '\n')
      sink.flush()

  t = time.perf_counter()
  try:
    rows = measure(Path(a.clip), a.size or None, a.methods.split(','),
                   [float(v) for v in a.smoothing.split(',')], Path(a.style), a.style_index,
                   a.batch_size, a.max_frames or None,
                   Path(a.frames_dir) if a.frames_dir else None,
                   [int(v) for v in a.frames.split(',') if v], emit)
    best = {}
    for m in dict.fromkeys(r['method'] for r in rows):
      ok = [r['temporal_smoothing'] for r in rows if r['method'] == m and r['flicker_ratio'] <= 3]
      best[m] = min(ok) if ok else None
    emit({'summary': True, 'smallest_smoothing_within_3x': best,
          'wall_s': round(time.perf_counter() - t, 1), 'clip': a.clip, 'size': a.size})
  finally:
    if sink is not None:
      sink.close()


if __name__ == '__main__':
  main(sys.argv[1:])
