"""Ctrl-C that loses nothing: stop at the end of the current chunk, save, say how to resume.

Every long-running job (single run, sweep, training loop) wraps its chunk loop in
:class:`StopOnSignal`. The first SIGINT (Ctrl-C) or SIGTERM only sets a flag (and prints one
line saying so); the loop checks the flag after each chunk, saves its current image or model and
a checkpoint atomically, and raises :class:`Interrupted` with ONE line saying what was written
and how to resume. ``run.py`` prints that line and exits with status 130 (no traceback). A second
Ctrl-C (or SIGTERM) while the job finishes its chunk kills the process at once: the handler puts
the default signal action back after the first signal, so the second one needs no Python code to
run (the shell reports status 130 / 143).

  from nst_jax.runtime import interrupt

  with interrupt.StopOnSignal() as stop:
    for step in range(start, total, chunk):
      state = run_chunk(state)
      if stop.requested:
        save_image(...); save_checkpoint(...)          # atomic (nst_jax.io.files)
        raise interrupt.Interrupted(interrupt.resume_line(
            step, [out_png, ckpt], interrupt.resume_command()))

Signal handlers can only be installed from the main thread; elsewhere (a worker thread, some
notebook kernels) :class:`StopOnSignal` installs nothing and ``requested`` stays False unless
:meth:`StopOnSignal.request` is called. Leaving the ``with`` block restores the previous handlers.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional, Sequence, TextIO, Union

from nst_jax.io import files as fileio

EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
  """A job stopped on a signal after saving its work; ``str(e)`` is the one line to print.

  A subclass of KeyboardInterrupt, so ``except Exception`` does not swallow it and a notebook
  shows it as an interruption. ``exit_code`` is 130.
  """

  exit_code = EXIT_CODE

  def __init__(self, message: str, step: Optional[int] = None,
               paths: Sequence[fileio.PathLike] = ()):
    super().__init__(message)
    self.message = message
    self.step = step
    self.paths = [str(p) for p in paths]

  def __str__(self) -> str:
    return self.message


_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


class StopOnSignal:
  """Context manager: SIGINT/SIGTERM set :attr:`requested` instead of raising.

  Args:
    signals: the signals to catch (default SIGINT and SIGTERM).
    quiet: do not print the "finishing the current chunk" line on the first signal.
    stream: where that line goes (default sys.stderr).
    what: how the line names the unit of work (``chunk``).
  """

  def __init__(self, signals: Sequence[int] = SIGNALS, quiet: bool = False,
               stream: Optional[TextIO] = None, what: str = 'chunk'):
    self.signals = tuple(signals)
    self.quiet = quiet
    self.stream = stream
    self.what = what
    self.signum: Optional[int] = None
    self._previous: dict[int, _Handler] = {}

  @property
  def requested(self) -> bool:
    """True once a stop was requested (a signal, or :meth:`request`)."""
    return self.signum is not None

  def __bool__(self) -> bool:
    return self.requested

  def request(self, signum: int = signal.SIGINT) -> None:
    """Requests a stop as if ``signum`` had arrived (for tests and callers without signals)."""
    if self.signum is None:
      self.signum = signum

  def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
    del frame
    first = self.signum is None
    self.request(signum)
    for s in self.signals:  # The next signal acts at once (default action: terminate).
      signal.signal(s, signal.SIG_DFL)
    if first and not self.quiet:
      name = signal.Signals(signum).name
      stream = self.stream or sys.stderr
      stream.write(f'\n{name}: stopping after the current {self.what} to save your work '
                   '(press Ctrl-C again to quit at once, losing it)\n')
      stream.flush()

  def __enter__(self) -> 'StopOnSignal':
    if threading.current_thread() is threading.main_thread():
      for s in self.signals:
        self._previous[s] = signal.getsignal(s)
        signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    for s, h in self._previous.items():
      signal.signal(s, h if h is not None else signal.SIG_DFL)
    self._previous.clear()


def resume_command(argv: Optional[Sequence[str]] = None,
                   flag: str = '--config.resume=True') -> str:
  """The command line that resumes this job: ``python ARGV... --config.resume=True``.

  ``argv`` defaults to ``sys.argv``; an existing resume flag is not repeated; ``flag=''`` gives
  the command as it was.
  """
  argv = list(sys.argv if argv is None else argv)
  if not flag:
    return ' '.join(shlex.quote(a) for a in ['python', *argv])
  name = flag.split('=')[0]
  argv = [a for a in argv if a.split('=')[0] != name]
  return ' '.join(shlex.quote(a) for a in ['python', *argv, flag])


def resume_line(step: int, paths: Sequence[fileio.PathLike], command: str,
                what: str = 'step') -> str:
  """The one line a stopped job prints: what it wrote and how to resume."""
  wrote = ', '.join(str(p) for p in paths)
  return f'interrupted at {what} {step}: wrote {wrote}; resume with: {command}'
