"""The compilation cache: JAX's persistent cache on, off and with corrupt entries, its default
directories, and the store of whole executables (loaded without tracing; corrupt, foreign-owned
and custom-call programs)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.runtime import compile_cache


def test_compile_cache_on_off_corrupt_and_default_dirs(tmp_path, monkeypatch):
  session_dir = compile_cache.current_dir()
  min_time = jax.config.jax_persistent_cache_min_compile_time_secs
  try:
    d = compile_cache.enable(str(tmp_path / 'cc'))
    assert d == tmp_path / 'cc' and compile_cache.current_dir() == d
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    monkeypatch.setenv(compile_cache.STORE_ENV_VAR, 'off')  # JAX's own cache alone
    f = jax.jit(lambda x: jnp.sin(x) * 3.25 + 0.5)
    compile_cache.compiled(f, jnp.ones((7, 3)))
    entries = [p for p in d.iterdir() if p.name.endswith('-cache')]
    assert entries, 'nothing was written to the cache'
    # A corrupt entry: a warning, then the entry is rebuilt, never a crash.
    for p in entries:
      p.write_bytes(b'not a compiled program')
    jax.clear_caches()
    compile_cache.clear_compiled()
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      exe, _ = compile_cache.compiled(f, jnp.ones((7, 3)))
      np.testing.assert_allclose(exe(jnp.ones((7, 3))), np.sin(1.) * 3.25 + 0.5, rtol=1e-6)
    assert any('corrupt compilation cache entry' in str(w.message) for w in caught)
    # The program's corrupt entry is gone, and the next process's compilation writes it afresh.
    program = [p for p in entries if p.name.startswith('jit__lambda-')]
    assert program and not any(p.exists() for p in program)
    jax.clear_caches()
    compile_cache.clear_compiled()
    compile_cache.compiled(f, jnp.ones((7, 3)))
    assert all(p.exists() and p.read_bytes() != b'not a compiled program' for p in program)
    monkeypatch.delenv(compile_cache.STORE_ENV_VAR)
    # Off (config field or environment): nothing is written.
    before = sorted(d.iterdir())
    assert compile_cache.enable('off') is None and compile_cache.current_dir() is None
    jax.jit(lambda x: jnp.cos(x) * 1.75)(jnp.ones((5,))).block_until_ready()
    assert sorted(d.iterdir()) == before
    monkeypatch.setenv('NST_JAX_COMPILE_CACHE', 'off')
    assert compile_cache.resolve('') is None
    monkeypatch.delenv('NST_JAX_COMPILE_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert compile_cache.resolve('') == tmp_path / 'xdg' / 'nst_jax' / 'jax_cache'
    # An unusable directory warns and runs without a cache.
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.warns(UserWarning, match='unusable'):
      assert compile_cache.enable(str(blocker / 'sub')) is None
  finally:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', min_time)
    compile_cache.enable(str(session_dir) if session_dir else 'off')


def test_executables_stored_whole_and_loaded_without_tracing(tmp_path):
  """A program compiled through compile_cache.compiled is stored whole; a later process (here:
  after clearing the in-process memo) loads it without tracing; a corrupt file is rebuilt."""
  session_dir = compile_cache.current_dir()
  traced = []

  def body(x, y):
    traced.append(x.shape)
    return {'s': jnp.sin(x) * y + 0.5}

  f = jax.jit(body)

  try:
    d = compile_cache.enable(str(tmp_path / 'cc'))
    x, y = jnp.arange(6.).reshape(2, 3), jnp.float32(3.)
    want = np.sin(np.arange(6.).reshape(2, 3)) * 3. + 0.5
    exe, _ = compile_cache.compiled(f, x, y)
    stored = list((d / compile_cache.EXE_DIR).iterdir())
    assert len(stored) == 1 and len(traced) == 1
    compile_cache.clear_compiled()
    jax.clear_caches()  # As in a new process: JAX's own trace cache is empty too.
    with compile_cache.CompileStats() as stats:
      exe, _ = compile_cache.compiled(f, x, y)
      np.testing.assert_allclose(exe(x, y)['s'], want, rtol=1e-6)
    assert len(traced) == 1, 'the stored executable was traced again'
    assert stats.stats()['executables_loaded'] == 1 and stats.stats()['compilations'] == 0
    compile_cache.clear_compiled()  # Another shape: another program, another file.
    compile_cache.compiled(f, jnp.ones((4,)), y)
    assert len(traced) == 2 and len(list((d / compile_cache.EXE_DIR).iterdir())) == 2
    # A donating wrapper of the same function is another program, stored apart.
    compile_cache.compiled(jax.jit(body, donate_argnums=(0,)), jnp.ones((4,)), y)
    assert len(list((d / compile_cache.EXE_DIR).iterdir())) == 3
    stored[0].write_bytes(b'not an executable')  # Corrupt: a warning, rebuilt, never a crash.
    compile_cache.clear_compiled()
    with pytest.warns(UserWarning, match='unreadable stored executable'):
      exe, _ = compile_cache.compiled(f, x, y)
    np.testing.assert_allclose(exe(x, y)['s'], want, rtol=1e-6)
    assert stored[0].read_bytes() != b'not an executable'
    assert stored[0].stat().st_mode & 0o777 == 0o600
    # A file others could have written is never unpickled: a warning, then a normal compile.
    stored[0].chmod(0o666)
    compile_cache.clear_compiled()
    jax.clear_caches()
    n = len(traced)
    with pytest.warns(UserWarning, match='owned by you and writable by no one else'):
      with compile_cache.CompileStats() as stats:
        exe, _ = compile_cache.compiled(f, x, y)
    assert stats.stats()['executables_loaded'] == 0 and len(traced) == n + 1
    np.testing.assert_allclose(exe(x, y)['s'], want, rtol=1e-6)
    # A program with a custom call (here LAPACK's triangular solve) is not stored: a process
    # loading it would not have registered the call's target, and crashed running it.
    solve = jax.jit(lambda a, b: jax.scipy.linalg.solve_triangular(a, b, lower=True))
    compile_cache.compiled(solve, jnp.eye(3), jnp.ones(3))
    assert len(list((d / compile_cache.EXE_DIR).iterdir())) == 3
    compile_cache.enable('off')  # Cache off: nothing stored.
    compile_cache.clear_compiled()
    compile_cache.compiled(f, jnp.ones((5,)), y)
    assert len(list((d / compile_cache.EXE_DIR).iterdir())) == 3
  finally:
    compile_cache.clear_compiled()
    compile_cache.enable(str(session_dir) if session_dir else 'off')


class _Broken:
  """A loaded executable whose first call fails as XLA:CPU's incomplete ones do."""

  def __init__(self, consume=None):
    self.calls, self._consume = 0, consume

  def __call__(self, *args):
    self.calls += 1
    if self._consume is not None:
      self._consume.delete()  # a donated input, already consumed
    raise jax.errors.JaxRuntimeError('NOT_FOUND: Function wrapped_broadcast.1 not found '
                                     '(type id: 1)')


def test_an_incomplete_stored_executable_is_removed_and_rebuilt(tmp_path):
  from nst_jax.errors import NSTError
  path = tmp_path / 'f-123'
  path.write_bytes(b'x')
  f = jax.jit(lambda x: x * 2.)
  x = jnp.arange(3.)
  checked = compile_cache._FirstCallChecked(_Broken(), path, lambda: f.lower(x).compile())
  with pytest.warns(UserWarning, match='stored executable .f-123. was incomplete'):
    out = checked(x)
  np.testing.assert_array_equal(out, [0., 2., 4.])
  assert not path.exists()
  np.testing.assert_array_equal(checked(x + 1), [2., 4., 6.])  # the rebuilt program from now on
  # A failure that is not a missing kernel is not hidden.
  other = compile_cache._FirstCallChecked(lambda *a: (_ for _ in ()).throw(
      jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: out of memory')), path, None)
  with pytest.raises(jax.errors.JaxRuntimeError, match='RESOURCE_EXHAUSTED'):
    other(x)
  # The failed call consumed a donated input: one clear error, the file gone.
  path.write_bytes(b'x')
  y = jnp.arange(3.)
  consumed = compile_cache._FirstCallChecked(_Broken(consume=y), path, None)
  with pytest.warns(UserWarning), pytest.raises(NSTError, match='run the command again'):
    consumed(y)
  assert not path.exists()
