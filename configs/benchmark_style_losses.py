"""The style losses judged by the evaluation harness at equal wall time (configs/benchmark.py's
protocol, small enough for a 2-core CPU).

  python run.py --config=configs/benchmark_style_losses.py \
      --output_dir=outputs/benchmark_style_losses

2 photos x 2 paintings at 256 px; every paper's preset for as many steps as gatys2015's 60 take
(``PRESET@STEPS``; coarse-to-fine presets keep their stages, scaled to end at 256 px, whose early
stages cost less). The step budgets: each preset's seconds per evaluation at 256 px against
gatys2015's, ``python -m nst_jax.bench.style_losses`` (docs/results/2026-12-03-style-losses.md);
the table's seconds column shows what each method actually took.
"""

from configs import benchmark

# Ours: 60 x gatys2015's seconds per evaluation / the preset's (bench.style_losses on the idle
# 2-core EPYC: 0.470 s gatys2015; mean_std 0.435, mmd 0.527, cmd 0.474). The sorted-value presets
# after the native sort (docs/results/2026-12-07-native-sort.md; gatys2015 0.269 s, the mean of
# its three runs): efdm 0.224 s -> 72 steps, heitz 0.422 s -> 38 steps.
# The coarse-to-fine presets (a compile and a style target per stage) from their whole runs:
# li2016_mrf 0.173 s per step at @135 (23.3 s, 4 pairs) -> 168 steps for gatys2015@60's 29 s;
# kolkin2019 1.40 s per step at @21 (29.5 s) (docs/results/2026-12-03-style-losses.md).
METHODS = ('gatys2015@60', 'li2017_mean_std@65', 'li2017_mmd@54', 'kalischek2021@59',
           'efdm2022@72', 'heitz2021@38', 'li2016_mrf@168', 'kolkin2019@21')


def get_config():
  c = benchmark.get_config()
  c.max_contents = 2                       # ours: 2 of the 20 photos (a 2-core CPU's quarter hour)
  c.max_styles = 2                         # ours: 2 of the paintings
  c.methods = ','.join(METHODS)
  c.size = 256                             # ours: bench.style_losses' size
  c.steps = 0                              # each method's own @STEPS
  c.output_dir = 'outputs/benchmark_style_losses'
  return c
