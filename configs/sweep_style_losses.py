"""Every style loss on one pair at equal wall time: one sweep, one contact sheet.

  python run.py --config=configs/sweep_style_losses.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_style_losses

Each row is one paper's preset (its loss, layers, weights, pooling, start and optimiser) at
256 px, single-scale (a sweep runs one size; li2016_mrf and kolkin2019 are coarse-to-fine on
their own), with as many steps as gatys2015's 100 take: the step counts come from
``python -m nst_jax.bench.style_losses`` (each preset's seconds per evaluation at 256 px, same
run; docs/results/2026-12-03-style-losses.md, 2026-12-07-native-sort.md). Per-layer weights are uniform here (kalischek2021's
own are not a sweep value). One compiled program per loss (style_loss is a
static choice); rows of the sheet: the loss. The harness's table for these losses over several
pairs: configs/benchmark_style_losses.py.
"""

from configs import (efdm2022, gatys2015, heitz2021, kalischek2021, kolkin2019, kolkin2022,
                     li2016_mrf, li2017_mean_std, li2017_mmd)

# (preset, steps in gatys2015's time for 100 steps at 256 px). Ours: 100 x gatys2015's seconds
# per evaluation (0.470 s) / the preset's (bench.style_losses, idle 2-core EPYC, one run:
# mean_std 0.435, mmd 0.527, cmd 0.474, mrf 0.388, strotss 0.934); kolkin2022 1.78x gatys2015's
# in a later run (docs/results/2026-12-06-nnst.md); efdm 0.83x and heitz 1.57x gatys2015's with
# the native sort (docs/results/2026-12-07-native-sort.md).
PRESETS = ((gatys2015, 100), (li2017_mean_std, 108), (li2017_mmd, 89), (kalischek2021, 99),
           (efdm2022, 120), (heitz2021, 64), (li2016_mrf, 121), (kolkin2019, 50), (kolkin2022, 57))
FIELDS = ('style_loss', 'style_weight', 'style_layers', 'content_layers', 'content_loss',
          'content_weight', 'loss_norm', 'pooling', 'mmd_kernel', 'cmd_order', 'sw_projections',
          'mrf_patch_size', 'mrf_stride', 'style_samples', 'tv_weight', 'init', 'optimizer.name',
          'optimizer.learning_rate')


def _value(c, field):
  node = c
  for part in field.split('.'):
    node = node[part]
  return str(node).replace(',', '+')  # '+' joins a list inside one sweep value


def get_config():
  c = gatys2015.get_config()
  c.size = 256
  c.conv_impl = 'direct'                # ours: one evaluation's cost is the comparison's unit
  configs = [(p.get_config(), steps) for p, steps in PRESETS]
  c.sweep.mode = 'zip'
  axes = [f'{f}=' + ','.join(_value(pc, f) for pc, _ in configs) for f in FIELDS]
  axes.append('num_steps=' + ','.join(str(n) for _, n in configs))
  c.sweep.axes = ';'.join(axes)
  c.sweep.rows = 'style_loss'
  return c
