"""Texture synthesis with the sliced Wasserstein loss (Heitz, Vanhoey, Chambon & Belcour 2021),
from noise, no content.

  python run.py --config=configs/heitz2021_texture.py --style=../shared/images/starry_night.jpg \
      --output=outputs/heitz2021_texture.png

Against Gatys et al.'s Gram textures (configs/texture_synthesis.py) with the harness
(configs/benchmark_textures.py, 6 paintings at 256 px): 85 steps take 37.8 s against 200 Gram
steps' 34.6 s, with feature-histogram distance 0.155 against 0.157; 40 steps (17.1 s) 0.255
against 100 Gram steps' (18.3 s) 0.214 (docs/results/2026-12-07-native-sort.md).
"""

from configs import heitz2021


def get_config():
  c = heitz2021.get_config()
  c.mode = 'texture_synthesis'                     # the paper's use: no content term
  c.content_weight = 0.0
  c.style_weight = 1e4                             # ours: style alone, but at 1 L-BFGS-torch's
  #                                                  curvature test (y.s > 1e-10) kept candy noise
  c.init = 'noise'                                 # code: noise (around the mean colour)
  c.size = 256                                     # code: 256 x 256 crops
  c.num_steps = 500                                # ours (code: 20 L-BFGS calls of 64 evals)
  return c
