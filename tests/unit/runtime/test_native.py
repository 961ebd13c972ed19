"""The native-kernel loader: cache, atomic build, broken libraries, no compiler, off switch."""

import os
import subprocess
import sys
import warnings

import pytest

from nst_jax.runtime import native

from conftest import ROOT


@pytest.fixture
def fresh(monkeypatch, tmp_path):
  """A private library cache; the registered targets forgotten before and after."""
  monkeypatch.setenv(native.ENV_DIR, str(tmp_path / 'native'))
  native.sort_targets.cache_clear()
  native.conv_targets.cache_clear()
  yield tmp_path / 'native'
  native.sort_targets.cache_clear()
  native.conv_targets.cache_clear()


@pytest.mark.skipif(native.compiler() is None, reason='no C++ compiler here')
def test_build_caches_one_library_and_rebuilds_a_truncated_one(fresh):
  cxx = native.compiler()
  path = native.library_path(native.SORT_SOURCE, cxx)
  assert path.parent == fresh and not path.exists()
  fresh.mkdir(parents=True)
  # A truncated library (an interrupted copy, a full disk) where the cache expects one. (Never
  # truncate a library this process has loaded: its mapping would fault.)
  path.write_bytes(b'\x7fELF' + bytes(96))
  lib = native.load(native.SORT_SOURCE)
  assert hasattr(lib, 'NstSortPermF32') and path.stat().st_size > 1000
  assert [p.name for p in fresh.iterdir()] == [path.name]  # no temporary left behind
  mtime = path.stat().st_mtime_ns
  assert hasattr(native.load(native.SORT_SOURCE), 'NstSortF32')
  assert path.stat().st_mtime_ns == mtime  # cached: not compiled again
  assert native.sort_targets() == (native.SORT_TARGET, native.SORT_PERM_TARGET)


def test_no_compiler_or_failed_build_warns_once_and_turns_the_kernel_off(fresh, monkeypatch):
  monkeypatch.setenv('CXX', 'no-such-compiler-nst')
  assert native.compiler() is None
  with pytest.warns(RuntimeWarning, match='native CPU sort is off .*no C\\+\\+ compiler'):
    assert native.sort_targets() is None
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    assert native.sort_targets() is None  # cached: no second warning
  native.sort_targets.cache_clear()
  monkeypatch.setenv('CXX', sys.executable)  # "compiles" by failing: python -O3 ... exits 2
  with pytest.warns(RuntimeWarning, match='exited'):
    assert native.sort_targets() is None
  with pytest.warns(RuntimeWarning, match='native CPU convolution is off .*exited'):
    assert native.conv_targets() is None
  assert not any(fresh.glob('*.so'))  # nothing half-written


def test_off_switch(fresh, monkeypatch):
  monkeypatch.setenv(native.ENV_OFF, 'off')
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    assert native.sort_targets() is None
    assert native.conv_targets() is None


@pytest.mark.skipif(native.compiler() is None, reason='no C++ compiler here')
def test_the_convolution_library_builds_and_registers_both_targets(fresh):
  assert native.conv_targets() == (native.CONV_TARGET, native.CONV_RESIDUAL_TARGET)
  lib = native.load(native.CONV_SOURCE)
  assert hasattr(lib, 'NstConvF32') and hasattr(lib, 'NstConvResidualF32')
  assert [p.name for p in fresh.iterdir()] == [native.library_path(native.CONV_SOURCE,
                                                                   native.compiler()).name]


def test_library_name_changes_with_the_source(tmp_path, monkeypatch):
  monkeypatch.setenv(native.ENV_DIR, str(tmp_path))
  src = tmp_path / 'k.cc'
  src.write_text('int f() { return 1; }\n')
  a = native.library_path(src, 'c++')
  src.write_text('int f() { return 2; }\n')
  assert native.library_path(src, 'c++') != a and a.name.startswith('libk-')
  b = native.library_path(src, 'c++')
  monkeypatch.setattr(native, 'CXX_FLAGS', native.CXX_FLAGS + ('-O0',))
  assert native.library_path(src, 'c++') != b  # and with the flags


SHARD_SCRIPT = r'''
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from nst_jax.losses import sorting
mesh = jax.sharding.Mesh(np.array(jax.devices()), ('sweep',))  # as runtime.mesh builds it
x = jax.device_put(jnp.asarray(np.random.default_rng(0).normal(size=(8, 16, 3000)), jnp.float32),
                   NamedSharding(mesh, P('sweep')))
f = jax.jit(jax.vmap(jax.value_and_grad(
    lambda a: jnp.sum(jnp.square(sorting.sort(a, -1, impl='native')[:, ::-1])))))
hlo = f.lower(x).compile().as_text()
v, g = f(x)
x0 = jnp.asarray(np.asarray(x))  # unsharded reference
vw, gw = jax.vmap(jax.value_and_grad(lambda a: jnp.sum(jnp.square(jnp.sort(a, -1)[:, ::-1]))))(x0)
calls = [l for l in hlo.splitlines() if 'custom_call_target="nst_sort' in l]
equal = bool((np.asarray(g) == np.asarray(gw)).all())
print(json.dumps({'devices': len(jax.devices()), 'equal': equal,
                  'close': bool(np.allclose(v, vw, rtol=1e-6)),
                  'per_device_call': bool(calls) and all('[2,16,3000]' in l for l in calls)}))
'''


@pytest.mark.skipif(native.sort_targets() is None, reason='the native sort is off here')
def test_sharded_sweep_axis_stays_sharded_through_the_native_sort(tmp_path):
  """Batch partitionable: with a vmapped axis sharded over 4 host devices each device sorts its
  own quarter (the call's shape is the shard's), and values and gradients are exact. (The
  result is gathered after the call: XLA's partitioner does not propagate the call's sharding.)"""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', SHARD_SCRIPT], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  import json
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out['devices'] == 4 and out['equal'] and out['close'], out
  assert out['per_device_call'], out
