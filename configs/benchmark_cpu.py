"""The benchmark protocol (configs/benchmark.py) small enough for 10 minutes on a 2-core CPU.

  python run.py --config=configs/benchmark_cpu.py --output_dir=outputs/benchmark_cpu

3 photos x 4 paintings = 12 pairs at 256 px through Gatys et al. (100 L-BFGS steps), the
built-in fast network (style 0), Ghiasi et al. and AdaIN; the same files as the full protocol
(results.csv/json, summary.csv/json with bootstrap 95% intervals, contact_sheet.png, images/).
Running the command again continues an interrupted run and finishes in seconds once done.

Typical time: 8.5 minutes on an idle 2-core CPU (measured: 8 min 30 s whole process, peak RSS
1.47 GB; gatys2015's 100 steps are 32.9 s of each pair's ~42 s). 4 x 5 pairs would take ~14
minutes, hence 3 x 4.
Measured (docs/results/2026-12-03-benchmark.md), mean style distance / content distance / SSIM:
gatys2015 0.347 / 1.78 / 0.040, fast 0.832 / 1.00 / 0.447, ghiasi 0.421 / 1.44 / 0.325,
adain 0.527 / 1.55 / 0.111.
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
