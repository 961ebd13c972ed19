"""The photo / folder / video pipeline shared by the one-pass jobs (``fast``, ``arbitrary``).

A job builds a stylizer (anything with ``dispatch(batch) -> device array``: the fast job's
:class:`nst_jax.jobs.fast.Stylizer`, the arbitrary job's ``ArbitraryStylizer``) and hands it
here with the content's kind: :func:`run_folder` stylizes every photo of a folder, batched and
pipelined so host I/O overlaps the device work, and :func:`run_video` streams a video's frames
through it (audio kept, an interrupted video discarded rather than left half-written).

A photo of a folder that cannot be read or stylized (a truncated file, too small) is skipped with a
warning naming it; every other photo is written, and the job then ends with one error saying how
many failed (:func:`check_failures`, after the summary is written).
"""

from __future__ import annotations

from pathlib import Path
import time
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from nst_jax.errors import ImageError
from nst_jax.io import images as image_io
from nst_jax.io import log
from nst_jax.runtime import interrupt


class Stylizer(Protocol):
  """What the pipeline needs of a job's stylizer: one asynchronous batch call."""

  def dispatch(self, batch: np.ndarray) -> Any:
    ...


def report(config, text: str) -> None:
  """A progress line on stderr unless ``config.quiet``."""
  if not config.quiet:
    log.info(text)


def default_output(content: Path, kind: str) -> Path:
  name = content.stem if kind != 'folder' else content.name
  suffix = {'image': '.png', 'video': '.mp4', 'folder': ''}[kind]
  return Path('outputs') / f'{name}_fast{suffix}'


def content_kind(path: str) -> tuple[Path, str]:
  """The content path and its kind (``image``, ``folder`` or ``video``); ImageError if missing."""
  content = Path(path).expanduser()
  if not content.exists():
    raise ImageError(f'content not found: {content} (give a photo, a folder or a video)')
  return content, 'folder' if content.is_dir() else 'video' if is_video(content) else 'image'


def is_video(path: Path) -> bool:
  from nst_jax.io import video  # pylint: disable=g-import-not-at-top
  return video.is_video(path)


def output_names(files: Sequence[Path]) -> list[str]:
  """``<stem>.png`` per file; files sharing a stem keep their extension in the name."""
  stems = [f.stem for f in files]
  return [f'{f.stem}.png' if stems.count(f.stem) == 1 else f'{f.stem}_{f.suffix[1:]}.png'
          for f in files]


def folder_jobs(files: Sequence[Path], out_dir: Path, skip_existing: bool
                ) -> list[tuple[Path, str]]:
  """(photo, output name) per photo of a folder; with ``skip_existing``, those whose output
  already exists in ``out_dir`` are left out (a folder run resumed after Ctrl-C)."""
  jobs = list(zip(files, output_names(files)))
  if skip_existing:
    jobs = [(f, n) for f, n in jobs if not (out_dir / n).exists()]
  return jobs


def _pipelined(batches: Iterable[tuple[Any, np.ndarray]], stylizer: Stylizer,
               catch: tuple[type[Exception], ...] = ()) -> Iterator[tuple[Any, Any]]:
  """Dispatches batch k+1 before fetching batch k, so host I/O overlaps the device work.

  An exception of a ``catch`` type from a batch's dispatch is yielded in place of its result.
  """
  pending = None
  for tag, batch in batches:
    try:
      result = stylizer.dispatch(batch)
    except catch as e:
      result = e
    if pending is not None:
      yield pending[0], _fetch(pending[1])
    pending = (tag, result)
  if pending is not None:
    yield pending[0], _fetch(pending[1])


def _fetch(result: Any) -> Any:
  return result if isinstance(result, Exception) else np.asarray(result)


def check_failures(summary: dict) -> None:
  """ImageError naming how many photos of a folder run failed (each was warned about as it was
  skipped); nothing when none did. Called by the jobs after their summary is written."""
  failed = summary.get('failed') or []
  if failed:
    total = len(failed) + int(summary.get('count', 0))
    raise ImageError(f'{len(failed)} of {total} photos could not be read or stylized and were '
                     f'skipped (named in the warnings above); the other {total - len(failed)} '
                     f'were written to {summary.get("output", "the output folder")}')


def run_folder(config, stylizer: Stylizer, jobs: list[tuple[Path, str]], out_dir: Path) -> dict:
  files, names = [f for f, _ in jobs], [n for _, n in jobs]
  size, cap, bs = int(config.size) or None, int(config.max_pixels), int(config.batch_size)

  failed: list[str] = []

  def skip(indices: Sequence[int], error: ImageError) -> None:
    for j in indices:
      log.warning(f'skipping {files[j].name}: {error}')
      failed.append(str(files[j]))

  def batches():  # groups of equal shape, at most batch_size each, in file order
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i, f in enumerate(files):
      try:
        image = image_io.load_image(f, size=size, max_pixels=cap)
      except ImageError as e:  # a broken photo: skipped, the others still written
        skip([i], e)
        continue
      group = groups.setdefault(image.shape[:2], [])
      group.append((i, image))
      if len(group) == bs:
        yield [j for j, _ in group], np.stack([im for _, im in group])
        group.clear()
    for group in groups.values():
      if group:
        yield [j for j, _ in group], np.stack([im for _, im in group])

  t, done, shapes, written = time.perf_counter(), 0, set(), []
  with interrupt.StopOnSignal(quiet=bool(config.quiet), what='batch') as stop:
    # An ImageError from a batch's dispatch is about its shape (too small...): a batch holds
    # photos of one shape, so all of them are skipped.
    for idx, out in _pipelined(batches(), stylizer, catch=(ImageError,)):
      if isinstance(out, ImageError):
        skip(idx, out)
        continue
      for j, result in zip(idx, out):
        image_io.save_image(out_dir / names[j], result)
        shapes.add(result.shape[:2])
        written.append(j)
      done += len(idx)
      report(config, f'[fast] {done}/{len(files)} images, '
                   f'{done / (time.perf_counter() - t):.2f} images/s')
      if stop.requested and done + len(failed) < len(files):
        raise interrupt.Interrupted(
            f'interrupted after {done}/{len(files)} images (each written completely to '
            f'{out_dir}); continue with: '
            f'{interrupt.resume_command(flag="--config.skip_existing=True")}', done, [out_dir])
  return {'count': done, 'files': [str(out_dir / names[j]) for j in sorted(written)],
          'failed': failed, 'shapes': sorted(list(s) for s in shapes),
          'stylize_s': time.perf_counter() - t}


def run_video(config, stylizer: Stylizer, content: Path, output: Path, info) -> dict:
  from nst_jax.io import video  # pylint: disable=g-import-not-at-top
  size = int(config.size) or None
  shape = video.output_shape(info, size)
  smoother = video.TemporalSmoother(float(config.temporal_smoothing))
  bs, limit = int(config.batch_size), int(config.max_frames) or None
  total = min(info.frames, limit) if limit else info.frames

  def batches():  # the last batch is padded to batch_size: one compiled program per video
    batch = []
    for frame in video.read_frames(content, size, limit):
      batch.append(frame)
      if len(batch) == bs:
        yield np.stack(batch), np.stack(batch)
        batch = []
    if batch:
      padded = batch + [batch[-1]] * (bs - len(batch))
      yield np.stack(batch), np.stack(padded)

  t, last_log = time.perf_counter(), 0.
  with interrupt.StopOnSignal(quiet=bool(config.quiet), what='batch') as stop, \
       video.VideoWriter(output, info.fps, shape,
                         audio_from=content if info.has_audio else None,
                         max_frames=limit if limit and limit < info.frames else None) as writer:
    for photos, out in _pipelined(batches(), stylizer):
      for photo, frame in zip(photos, out):
        writer.write(smoother(photo, frame) if smoother.strength else frame)
      now = time.perf_counter()
      if now - last_log > 2.:
        last_log = now
        report(config, f'[fast] {writer.frames}/{total} frames, '
                     f'{writer.frames / (now - t):.2f} frames/s')
      if stop.requested:  # the writer discards the partial file on the way out
        raise interrupt.Interrupted(
            f'interrupted at frame {writer.frames}: the partial video was discarded, {output} '
            f'was not written; run again (--config.max_frames=N for a shorter clip)',
            writer.frames, [])
  elapsed = time.perf_counter() - t
  return {'count': writer.frames, 'fps': info.fps, 'shape': list(shape),
          'audio': info.has_audio, 'stylize_s': elapsed,
          'frames_per_s': writer.frames / max(elapsed, 1e-9)}
