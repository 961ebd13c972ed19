"""Scale control (Gatys et al. 2016, Sec. 5): coarse-to-fine synthesis.

A first stage at low resolution settles the large-scale structure cheaply; each later stage
starts from the previous result, upsampled, and refines it at a higher resolution. Runs as is
from the project root:

  python run.py --config=configs/coarse_to_fine.py --output=outputs/coarse_to_fine.png

Stages are 'SIZE:STEPS' (longest side in pixels), e.g. --config.stages=256:300,512:100,1024:50.
"""

from nst_jax.config import base_config


def get_config():
  c = base_config()
  c.content = '../shared/images/tubingen.jpg'
  c.style = '../shared/images/starry_night.jpg'
  c.stages = '256:200,512:100'                          # overrides size and num_steps
  c.content_layers = 'conv4_2'
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'
  c.content_weight = 1.0
  c.style_weight = 1e3
  c.loss_norm = 'gatys'
  c.pooling = 'avg'
  c.init = 'noise'                                      # where the coarse stage helps most
  c.optimizer.name = 'lbfgs_torch'
  c.log_every = 50
  return c
