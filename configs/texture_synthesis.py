"""Texture synthesis (Gatys, Ecker & Bethge 2015, "Texture Synthesis Using CNNs"): style loss only.

  python run.py --config=configs/texture_synthesis.py --style=../shared/images/starry_night.jpg \
      --output=outputs/texture.png
"""

from nst_jax.config import base_config


def get_config():
  c = base_config()
  c.mode = 'texture_synthesis'                          # no content term
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'  # 2015 style-transfer paper
  c.style_weight = 1.0
  c.content_weight = 0.0
  c.loss_norm = 'gatys'
  c.pooling = 'avg'                                     # texture paper: average pooling
  c.init = 'noise'
  c.optimizer.name = 'lbfgs_torch'
  c.num_steps = 500
  c.size = 256
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
