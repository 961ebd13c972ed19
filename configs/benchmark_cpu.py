"""The benchmark protocol (configs/benchmark.py) small enough for 10 minutes on a 2-core CPU.

  python run.py --config=configs/benchmark_cpu.py --output_dir=outputs/benchmark_cpu

3 photos x 4 paintings = 12 pairs at 256 px through Gatys et al. (100 L-BFGS steps), the
built-in fast network (style 0), Ghiasi et al. and AdaIN; the same files as the full protocol
(results.csv/json, summary.csv/json with bootstrap 95% intervals, contact_sheet.png, images/).
Running the command again continues an interrupted run and finishes in seconds once done.

Typical time: 6-8 minutes on an idle 2-core CPU, estimated: the optimisation dominates, 100
steps at 256 px cost 20-28 s a pair at the README's per-step cost, plus about a minute of
compilation; 4 x 5 pairs would take about 11 minutes. On a machine loaded by other jobs a pair's
100 steps took 56-71 s.
measured: see docs/results
"""

from configs import benchmark


def get_config():
  c = benchmark.get_config()
  c.max_contents = 3                       # ours: 3 of the 20 photos (10 minutes on 2 cores)
  c.max_styles = 4                         # ours: 4 of the paintings (10 minutes on 2 cores)
  c.methods = 'gatys2015,fast,ghiasi,adain'  # ours: one method of each family
  c.size = 256                             # ours: 4x fewer pixels than StyleID's 512
  c.steps = 100                            # ours: 100 L-BFGS steps, recognisable at 256 px
  c.output_dir = 'outputs/benchmark_cpu'   # ours
  return c
