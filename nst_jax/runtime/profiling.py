"""Measurement helpers shared by the benchmarks and sweeps: XLA FLOP counts, peak memory.
"""

from __future__ import annotations

import resource


def xla_flops(lowered) -> float:
  """XLA's FLOP count of a lowered (not compiled) program, NaN if unavailable.

  The pre-optimisation HLO is analysed: it is the whole (unpartitioned) program on every
  backend, while compiled GPU programs hide their cuDNN convolutions from the cost analysis.
  A ``lax.scan`` body is counted once, so lower one step to get the FLOPs per step.
  """
  try:
    cost = lowered.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return float('nan')
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', float('nan')))


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.
