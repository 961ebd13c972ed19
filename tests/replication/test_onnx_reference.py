"""ONNX -> npz converter: real shipped files (checked against onnxruntime's own dequantization),
the run-time cache, and corrupt or missing files (one-line WeightsError)."""

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED

from nst_jax.models import onnx_import as onnx_convert
from nst_jax.errors import NSTError, WeightsError

MAGENTA = SHARED / 'weights' / 'magenta'
onnx = pytest.importorskip('onnx')


def _one_line(e):
  assert '\n' not in str(e), str(e)
  return str(e)


def test_multistyle26_initializers(tmp_path):
  out = onnx_convert.convert(MAGENTA / 'multistyle26.onnx', tmp_path / 'm.npz')
  arrays, meta = onnx_convert.load_arrays(out)
  assert meta['converter_version'] == onnx_convert.CONVERTER_VERSION
  assert meta['source'] == 'multistyle26.onnx' and len(meta['source_sha256']) == 64
  assert arrays['contract.0.w'].shape == (32, 3, 9, 9)
  assert arrays['expand.2.norm.gamma'].shape == (26, 3)
  assert all(a.dtype == np.float32 for a in arrays.values())
  assert sum(a.size for a in arrays.values()) == pytest.approx(166e3, rel=0.05)  # "166k params"
  ref = {i.name: onnx.numpy_helper.to_array(i)
         for i in onnx.load(str(MAGENTA / 'multistyle26.onnx')).graph.initializer}
  assert set(ref) == set(arrays)
  for k, v in ref.items():
    np.testing.assert_array_equal(arrays[k], v)


def test_dequantized_weights_match_onnxruntime(tmp_path):
  """int8 weights + per-tensor/per-channel scales: ours == onnxruntime's DequantizeLinear."""
  ort = pytest.importorskip('onnxruntime')
  src = MAGENTA / 'arbitrary_transform.onnx'
  arrays, meta = onnx_convert.load_arrays(onnx_convert.convert(src, tmp_path / 'a.npz'))
  model = onnx.load(str(src))
  inits = {i.name: i for i in model.graph.initializer}
  nodes = [n for n in model.graph.node
           if n.op_type == 'DequantizeLinear' and n.input[0] in inits]
  per_channel = [n for n in nodes
                 if onnx.numpy_helper.to_array(inits[n.input[1]]).size > 1]
  assert per_channel and len(per_channel) < len(nodes)  # both kinds are exercised
  outs = [n.output[0] for n in nodes]
  del model.graph.output[:]
  model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in outs)
  sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
  feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
           for i in sess.get_inputs()}
  for n, expected in zip(nodes, sess.run(outs, feeds)):
    for name in (n.input[0], n.output[0]):  # findable under both graph names
      assert arrays[name].dtype == np.float32
      np.testing.assert_array_equal(arrays[name], expected)
  assert set(meta['dequantized']) == {n.input[0] for n in nodes}


def test_dequantize_per_channel_by_hand():
  q = np.array([[-128, 0, 127], [5, -5, 1]], np.int8)
  got = onnx_convert.dequantize(q, np.array([0.5, 2.0], np.float32), np.array([1, -1], np.int8),
                                axis=0)
  np.testing.assert_allclose(got, [[-64.5, -0.5, 63], [12, -8, 4]])
  got = onnx_convert.dequantize(q, np.float32(0.1), np.uint8(0), axis=1)
  np.testing.assert_allclose(got, q * np.float32(0.1), rtol=1e-6)


def test_load_converted_converts_once_and_reuses(tmp_path):
  arrays = onnx_convert.load_converted('multistyle26', cache_dir=tmp_path)
  cached = tmp_path / 'multistyle26.npz'
  assert cached.is_file() and 'res.5.1.w' in arrays
  mtime = cached.stat().st_mtime_ns
  onnx_convert.load_converted('multistyle26', cache_dir=tmp_path)
  assert cached.stat().st_mtime_ns == mtime
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp files left


def test_missing_npz_without_onnx_names_the_command(tmp_path, monkeypatch):
  monkeypatch.setattr(onnx_convert, 'onnx_available', lambda: False)
  with pytest.raises(NSTError) as e:
    onnx_convert.load_converted('multistyle26', cache_dir=tmp_path)
  assert 'weights/convert_onnx.py' in _one_line(e.value)
  with pytest.raises(WeightsError) as e:
    onnx_convert.load_converted('nonexistent_net', cache_dir=tmp_path)
  assert 'nonexistent_net.onnx' in _one_line(e.value)


@pytest.mark.parametrize('content', [b'', b'not an onnx file at all', 'truncated'])
def test_corrupt_onnx(tmp_path, content):
  src = tmp_path / 'bad.onnx'
  if content == 'truncated':
    content = (MAGENTA / 'multistyle26.onnx').read_bytes()[:30000]
  src.write_bytes(content)
  with pytest.raises(WeightsError) as e:
    onnx_convert.convert(src, tmp_path / 'bad.npz')
  assert str(src) in _one_line(e.value)
  assert not (tmp_path / 'bad.npz').exists()
  with pytest.raises(WeightsError):
    onnx_convert.convert(tmp_path / 'missing.onnx', tmp_path / 'x.npz')


def test_corrupt_npz(tmp_path):
  good = onnx_convert.convert(MAGENTA / 'multistyle26.onnx', tmp_path / 'multistyle26.npz')
  bad = tmp_path / 'bad.npz'
  bad.write_bytes(good.read_bytes()[:5000])
  with pytest.raises(WeightsError) as e:
    onnx_convert.load_converted(bad)
  assert 'bad.npz' in _one_line(e.value) and 'delete it' in str(e.value)


def test_cli(tmp_path, capsys):
  import sys
  sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'weights'))
  import convert_onnx  # pylint: disable=import-outside-toplevel
  out = tmp_path / 'o.npz'
  assert convert_onnx.main(['--onnx', str(MAGENTA / 'multistyle26.onnx'), '--out', str(out)]) == 0
  assert out.is_file() and str(out) in capsys.readouterr().out
  assert convert_onnx.main(['--onnx', str(tmp_path / 'nope.onnx'), '--out', str(out)]) == 1
  err = capsys.readouterr().err
  assert err.startswith('error: ') and err.count('\n') == 1
