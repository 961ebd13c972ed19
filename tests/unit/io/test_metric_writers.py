"""The metrics writer, the signal handling and the atomic file helpers (no JAX needed)."""

import io
import json
import os
import signal

import pytest

from nst_jax.io import files as fileio
from nst_jax.runtime import interrupt
from nst_jax.io import metric_writers as metrics


def test_paths_for_file_and_directory(tmp_path):
  assert metrics.paths_for(tmp_path / 'o.png') == (tmp_path / 'o.config.json',
                                                   tmp_path / 'o.metrics.jsonl')
  assert metrics.paths_for(tmp_path / 'run') == (tmp_path / 'run' / 'config.json',
                                                 tmp_path / 'run' / 'metrics.jsonl')


def test_writer_writes_config_and_one_flushed_line_per_chunk(tmp_path):
  stream = io.StringIO()
  w = metrics.MetricsWriter(tmp_path / 'run', {'size': 32, 'optimizer': {'name': 'adam'}},
                            total_steps=4, images_per_step=3, stream=stream,
                            progress_keys=('loss', 'evals'))
  assert json.loads((tmp_path / 'run' / 'config.json').read_text())['optimizer']['name'] == 'adam'
  w.write(2, {'loss': 5.0}, evals=2, chunk_s=0.5)
  # Flushed before close: a killed run keeps every record up to its last chunk.
  lines = (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
  assert len(lines) == 1 and json.loads(lines[0])['loss'] == 5.0
  w.write(4, loss=float('nan'), evals=4, chunk_s=1.0)
  w.close()
  recs = metrics.read_records(tmp_path / 'run' / 'metrics.jsonl')
  assert [r['step'] for r in recs] == [2, 4]
  assert recs[0]['steps_per_s'] == 4.0 and recs[0]['images_per_s'] == 12.0
  assert recs[1]['steps_per_s'] == 2.0 and recs[1]['images_per_s'] == 6.0
  assert recs[1]['loss'] != recs[1]['loss']  # NaN survives the round trip
  assert w.history('evals') == [2, 4] and w.last(['step', 'evals']) == {'step': 4, 'evals': 4}
  out = stream.getvalue().splitlines()
  assert len(out) == 2 and '2/4' in out[0] and 'loss 5 | evals 2 | 4.00 step/s' in out[0]


def test_writer_resume_keeps_records_up_to_the_checkpoint(tmp_path):
  with metrics.MetricsWriter(tmp_path / 'o.png', quiet=True) as w:
    for s in (1, 2, 3):
      w.write(s, loss=float(s))
  with metrics.MetricsWriter(tmp_path / 'o.png', quiet=True, resume_step=2) as w:
    assert [r['step'] for r in w.records] == [1, 2]
    w.write(4, loss=4.)
  assert [r['step'] for r in metrics.read_records(tmp_path / 'o.metrics.jsonl')] == [1, 2, 4]
  with metrics.MetricsWriter(tmp_path / 'o.png', quiet=True) as w:  # A fresh run starts empty.
    pass
  assert metrics.read_records(tmp_path / 'o.metrics.jsonl') == []


def test_read_records_skips_a_torn_last_line(tmp_path):
  p = tmp_path / 'm.jsonl'
  p.write_text('{"step": 1}\n{"step": 2, "lo')
  assert metrics.read_records(p) == [{'step': 1}]


def test_quiet_writer_prints_nothing(tmp_path):
  stream = io.StringIO()
  with metrics.MetricsWriter(None, quiet=True, stream=stream) as w:
    w.write(1, loss=1.)
  assert stream.getvalue() == '' and w.records[0]['loss'] == 1.


def test_stop_on_signal_sets_flag_then_restores_handlers():
  before = signal.getsignal(signal.SIGINT)
  stream = io.StringIO()
  with interrupt.StopOnSignal(stream=stream) as stop:
    assert not stop.requested
    os.kill(os.getpid(), signal.SIGINT)  # Handled in Python: sets the flag, no exception.
    assert stop.requested and stop.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL  # a second Ctrl-C kills at once
  assert signal.getsignal(signal.SIGINT) is before
  assert 'SIGINT: stopping after the current chunk' in stream.getvalue()


def test_interrupted_message_and_resume_command():
  cmd = interrupt.resume_command(['run.py', '--config=configs/x.py', '--config.resume=False',
                                  '--output=a b.png'])
  assert cmd == "python run.py --config=configs/x.py '--output=a b.png' --config.resume=True"
  e = interrupt.Interrupted(interrupt.resume_line(7, ['o.png', 'o.ckpt.npz'], cmd), step=7)
  assert isinstance(e, KeyboardInterrupt) and not isinstance(e, Exception)
  assert str(e).startswith('interrupted at step 7: wrote o.png, o.ckpt.npz; resume with: python')
  assert e.exit_code == 130


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
  target = tmp_path / 'x.json'
  fileio.write_json(target, {'a': 1})
  def fail(tmp):
    open(tmp, 'w').write('half')
    raise RuntimeError('boom')
  with pytest.raises(RuntimeError):
    fileio.atomic_write(target, fail)
  assert json.loads(target.read_text()) == {'a': 1}
  assert sorted(p.name for p in tmp_path.iterdir()) == ['x.json']


def test_npz_with_metadata_round_trip_and_bad_files(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'a.npz'
  a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, np.int32)
  fileio.write_npz(path, {'leaf_0': a, 'x_b': b}, {'step': np.int64(3), 'key': 'k'})
  arrays, meta = fileio.read_npz(path)
  assert meta == {'step': 3, 'key': 'k'} and sorted(arrays) == ['leaf_0', 'x_b']
  np.testing.assert_array_equal(arrays['leaf_0'], a)
  assert list(fileio.read_npz(path, lambda n: n.startswith('x_'))[0]) == ['x_b']
  # Files of the earlier format (metadata as a 1-element array) and without metadata.
  np.savez(tmp_path / 'old.npz', __meta__=np.array([json.dumps({'v': 1})]), w=a)
  assert fileio.read_npz(tmp_path / 'old.npz')[1] == {'v': 1}
  fileio.write_npz(tmp_path / 'plain.npz', {'w': a})
  assert fileio.read_npz(tmp_path / 'plain.npz')[1] == {}
  with pytest.raises(ValueError, match='reserved'):
    fileio.write_npz(path, {'__meta__': a}, {})
  # Truncated, not an archive, a pickled object array, metadata that is not an object.
  (tmp_path / 'cut.npz').write_bytes(path.read_bytes()[:100])
  (tmp_path / 'text.npz').write_text('hello')
  np.savez(tmp_path / 'obj.npz', o=np.array([{'a': 1}], dtype=object))
  np.savez(tmp_path / 'list.npz', __meta__=np.array('[1, 2]'))
  for name in ('cut', 'text', 'obj', 'list'):
    with pytest.raises(ValueError):
      fileio.read_npz(tmp_path / f'{name}.npz')
  with pytest.raises(FileNotFoundError):
    fileio.read_npz(tmp_path / 'missing.npz')
