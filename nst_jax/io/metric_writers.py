"""One metrics writer for every long-running job (single runs, sweeps, training loops).

At the start it writes the job's resolved config as ``config.json``; after every chunk the job
calls :meth:`MetricsWriter.write` with one flat record (step, loss terms, evaluations, timings),
which is appended to ``metrics.jsonl`` as one JSON line and flushed, so a killed run keeps its
metrics up to its last chunk. The same call shows progress (a bar on stderr, or absl logging),
and the job's final summary is built from the same records (:meth:`MetricsWriter.history`,
:meth:`MetricsWriter.last`).

Where the files go: a job that writes into a directory (a sweep, a training run) passes the
directory and gets ``DIR/config.json`` and ``DIR/metrics.jsonl``; a job with one output file
passes the file and gets ``STEM.config.json`` and ``STEM.metrics.jsonl`` beside it
(:func:`paths_for`).

  writer = metrics.MetricsWriter(out_dir, config, total_steps=1000, images_per_step=8)
  with writer:
    for step in ...:                        # one iteration per jitted chunk
      writer.write(step, loss=..., lr=...)  # adds elapsed_s, chunk_s, steps_per_s, images_per_s
  summary = {'final': writer.last(), 'loss_history': writer.history('loss')}

Every record gets ``step`` and the bookkeeping fields ``elapsed_s`` (since the writer started),
``chunk_s`` (since the previous record), ``steps_per_s`` and ``images_per_s`` (over that chunk;
pass ``chunk_s=`` to use your own timing, e.g. excluding compilation). Values must be JSON
numbers, strings, lists or dicts (NumPy/JAX scalars are converted). Non-finite floats are
written as ``NaN``/``Infinity`` like Python's ``json`` module does.

Resuming: ``MetricsWriter(..., resume_step=N)`` keeps the existing records with ``step <= N``
(the checkpoint's step) and appends after them; without it the file starts empty.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, Iterable, Mapping, Optional, Sequence, TextIO

from nst_jax.io import files as fileio
from nst_jax.io import log

PROGRESS_MODES = ('bar', 'log', 'none')
BOOKKEEPING = ('step', 'elapsed_s', 'chunk_s', 'steps_per_s', 'images_per_s')


def paths_for(target: fileio.PathLike) -> tuple[Path, Path]:
  """(config.json path, metrics.jsonl path) for a run directory or an output file.

  A path with a suffix (``out/x.png``) is an output file: ``out/x.config.json`` and
  ``out/x.metrics.jsonl``. Anything else is a directory: ``DIR/config.json``, ``DIR/metrics.jsonl``.
  """
  target = Path(target)
  if target.suffix and not target.is_dir():
    return (target.with_name(target.stem + '.config.json'),
            target.with_name(target.stem + '.metrics.jsonl'))
  return target / 'config.json', target / 'metrics.jsonl'


def read_records(path: fileio.PathLike) -> list[dict]:
  """The records of a ``metrics.jsonl`` (a torn last line from a killed writer is skipped)."""
  records = []
  try:
    with open(path) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          break
  except FileNotFoundError:
    pass
  return records


def _plain(value: Any) -> Any:
  """JSON-ready copy: NumPy / JAX scalars and arrays become Python numbers and lists."""
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, (str, bool, int, float)) or value is None:
    return value
  if hasattr(value, 'tolist'):
    return value.tolist()
  return float(value)


def _fmt(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


class MetricsWriter:
  """Writes ``config.json`` once and one JSONL record per chunk; shows progress.

  Args:
    target: the run's directory, or its output file (see :func:`paths_for`); None = keep the
      records in memory only (progress still shown).
    config: the resolved config (a ConfigDict or a dict) written as config.json; None = none.
    total_steps: the step the job ends at (for the progress bar), or None.
    images_per_step: images processed per step (batch size; configs in a sweep), for
      ``images_per_s``.
    progress: 'bar' (one line per chunk on ``stream``), 'log' (absl/standard logging at INFO)
      or 'none'.
    quiet: shorthand for ``progress='none'``.
    progress_keys: the record fields the progress line shows, in order (default: every
      number that is not bookkeeping). Missing keys are skipped.
    stream: where the bar goes (default: sys.stderr).
    resume_step: keep the existing records up to this step and append (see module doc).
    unit: the word after the rate in the progress line (``step/s``).
  """

  def __init__(self, target: Optional[fileio.PathLike], config: Any = None, *,
               total_steps: Optional[int] = None, images_per_step: int = 1,
               progress: str = 'bar', quiet: bool = False,
               progress_keys: Optional[Sequence[str]] = None, stream: Optional[TextIO] = None,
               resume_step: Optional[int] = None, unit: str = 'step'):
    if progress not in PROGRESS_MODES:
      raise ValueError(f'progress must be one of {PROGRESS_MODES}, got {progress!r}')
    self.progress = 'none' if quiet else progress
    self.total_steps = total_steps
    self.images_per_step = images_per_step
    self.progress_keys = progress_keys
    self.stream = stream
    self.unit = unit
    self.records: list[dict] = []
    self.config_path: Optional[Path] = None
    self.path: Optional[Path] = None
    self._file: Optional[TextIO] = None
    self._t0 = self._last_t = time.perf_counter()
    self._last_step: Optional[int] = None
    if target is not None:
      self.config_path, self.path = paths_for(target)
      self.path.parent.mkdir(parents=True, exist_ok=True)
      if config is not None:
        cfg = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
        fileio.write_json(self.config_path, _plain(cfg))
      if resume_step is not None:
        self.records = [r for r in read_records(self.path) if r.get('step', 0) <= resume_step]
      text = ''.join(json.dumps(r) + '\n' for r in self.records)
      fileio.write_text(self.path, text)  # Atomically: the kept records, or an empty file.
      self._file = open(self.path, 'a')
    if self.records:
      self._last_step = int(self.records[-1]['step'])

  # --- Writing.

  def write(self, step: int, record: Optional[Mapping[str, Any]] = None, *,
            chunk_s: Optional[float] = None, show: bool = True, **fields: Any) -> dict:
    """Appends one record (``record`` and/or keyword fields) at ``step``; returns it.

    Adds the bookkeeping fields (module doc) unless the caller gives them. The line is
    flushed to disk before this returns; then the progress line is shown (unless ``show``
    is False).
    """
    now = time.perf_counter()
    data = _plain(dict(record or {}, **fields))
    dt = now - self._last_t if chunk_s is None else float(chunk_s)
    steps = step - (self._last_step if self._last_step is not None else 0)
    if steps <= 0:  # The step count restarted (a new stage, group or chunk of configs).
      steps = step
    rec: dict[str, Any] = {'step': int(step)}
    rec.update(data)
    rec.setdefault('elapsed_s', now - self._t0)
    rec.setdefault('chunk_s', dt)
    rate = steps / dt if dt > 0 and steps > 0 else 0.
    rec.setdefault('steps_per_s', rate)
    rec.setdefault('images_per_s', rate * self.images_per_step)
    self.records.append(rec)
    if self._file is not None:
      self._file.write(json.dumps(rec) + '\n')
      self._file.flush()
      try:
        os.fsync(self._file.fileno())
      except OSError:
        pass
    self._last_t, self._last_step = now, int(step)
    if show:
      self.show(rec)
    return rec

  def show(self, rec: Mapping[str, Any]) -> None:
    """Shows one record as a progress line (bar on the stream, or a log line)."""
    if self.progress == 'none':
      return
    keys = self.progress_keys
    if keys is None:
      keys = [k for k, v in rec.items() if k not in BOOKKEEPING and isinstance(v, (int, float))
              and not isinstance(v, bool)]
    parts = [f'{k} {_fmt(rec[k])}' for k in keys if k in rec]
    parts.append(f'{rec.get("steps_per_s", 0.):.2f} {self.unit}/s')
    total = self.total_steps
    step = rec['step']
    if self.progress == 'bar':
      width = 24
      filled = int(width * step / max(total, 1)) if total else 0
      head = (f'[{"#" * filled}{"." * (width - filled)}] {step}/{total} ' if total
              else f'step {step} ')
      stream = self.stream or sys.stderr
      stream.write(head + ' | '.join(parts) + '\n')
      stream.flush()
    else:
      head = f'{step}/{total}' if total else f'step {step}'
      log.info(f'{head}: ' + ' | '.join(parts))

  def message(self, text: str) -> None:
    """Shows one line of text through the same channel as the progress (not recorded)."""
    if self.progress == 'bar':
      stream = self.stream or sys.stderr
      stream.write(text + '\n')
      stream.flush()
    elif self.progress == 'log':
      log.info(text)

  # --- Reading back (the summary is built from these).

  def history(self, key: str) -> list:
    """``key``'s value in every record that has it, in order."""
    return [r[key] for r in self.records if key in r]

  def last(self, keys: Optional[Iterable[str]] = None) -> Optional[dict]:
    """The last record (restricted to ``keys`` if given), or None before the first chunk."""
    if not self.records:
      return None
    rec = self.records[-1]
    return dict(rec) if keys is None else {k: rec[k] for k in keys if k in rec}

  def select(self, keys: Iterable[str]) -> list[dict]:
    """Every record restricted to ``keys`` (those it has), e.g. the loss terms per chunk."""
    keys = list(keys)
    return [{k: r[k] for k in keys if k in r} for r in self.records]

  def summary(self, keys: Optional[Iterable[str]] = None) -> dict:
    """``{'records': n, 'last': ..., 'elapsed_s': ..., 'steps_per_s': mean over chunks}``."""
    rates = [r['steps_per_s'] for r in self.records if r.get('steps_per_s')]
    return {'records': len(self.records), 'last': self.last(keys),
            'elapsed_s': time.perf_counter() - self._t0,
            'steps_per_s': (sum(rates) / len(rates)) if rates else 0.,
            'metrics': None if self.path is None else str(self.path)}

  # --- Lifetime.

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> 'MetricsWriter':
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def finite_or_none(obj: Any) -> Any:
  """A copy with NaN/Inf floats replaced by None (for strict JSON readers)."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, Mapping):
    return {k: finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_or_none(v) for v in obj]
  return obj
