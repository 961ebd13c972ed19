"""Spatial control (Gatys et al. 2016, Sec. 3): a different style in each region of the content.

The portrait mask doubles as a two-colour label image: its black region (background) takes the
first style image, its white region (the person) the second. Runs as is from the project root:

  python run.py --config=configs/spatial_two_styles.py --output=outputs/two_styles.png

Two mask files instead of a label image: --masks=bg.png,person.png --style=a.jpg,b.jpg; a style
of 'none' keeps its region from the content.
"""

from nst_jax.config import base_config


def get_config():
  c = base_config()
  c.content = '../shared/images/brad_pitt.jpg'
  c.style = '../shared/images/starry_night.jpg,../shared/images/picasso_selfport1907.jpg'
  c.labels = '../shared/images/brad_pitt_mask.png'     # black -> style 1, white -> style 2
  c.content_layers = 'conv4_2'                          # Gatys et al. 2016 settings
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'
  c.content_weight = 1.0
  c.style_weight = 1e3
  c.loss_norm = 'gatys'
  c.pooling = 'avg'
  c.init = 'content'
  c.optimizer.name = 'lbfgs_torch'
  c.num_steps = 300
  c.size = 384
  return c
