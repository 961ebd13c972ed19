"""Content reconstruction (Gatys et al. 2015, Fig. 1 top row): content loss only, from noise.

  python run.py --config=configs/content_reconstruction.py \
      --content=../shared/images/tubingen.jpg --output=outputs/recon.png \
      --config.content_layers=conv2_2
"""

from nst_jax.config import base_config


def get_config():
  c = base_config()
  c.mode = 'content_reconstruction'                     # no style term
  c.content_layers = 'conv4_2'                          # paper: conv1_2..conv5_2 reconstructions
  c.content_weight = 1.0
  c.style_weight = 0.0
  c.loss_norm = 'gatys'
  c.pooling = 'avg'
  c.init = 'noise'
  c.optimizer.name = 'lbfgs_torch'
  c.num_steps = 500
  c.size = 256
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
