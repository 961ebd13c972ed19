"""Gatys, Ecker & Bethge 2015, "A Neural Algorithm of Artistic Style" (arXiv:1508.06576).

  python run.py --config=configs/gatys2015.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/gatys.png

Typical time (2-core CPU, whole process, warm compilation cache): 36 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.394, content distance 1.239, CFSD 0.949, SSIM 0.049.
"""

from nst_jax.config.stylize import base_config


def get_config():
  c = base_config()
  c.content_layers = 'conv4_2'                          # paper, Sec. 2 / Fig. 2
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'  # paper, Fig. 2 (w_l = 1/5)
  c.content_weight = 1.0                                # alpha/beta = 1e-3 (paper, Fig. 3)
  c.style_weight = 1e3
  c.tv_weight = 0.0                                     # the paper has no TV term
  c.loss_norm = 'gatys'                                 # eqs. 1 and 4 of the paper
  c.pooling = 'avg'                                     # paper: average pooling "improves gradient flow"
  c.init = 'noise'                                      # paper: synthesis from white noise
  c.optimizer.name = 'lbfgs_torch'                      # L-BFGS as in the authors' Torch-based peers
  c.optimizer.learning_rate = 1.0
  c.num_steps = 500
  c.size = 512
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
