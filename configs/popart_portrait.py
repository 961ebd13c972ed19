"""Pop-art portrait setup of the seed report: mixed-block style layers, RMSProp, a person mask.

  python run.py --config=configs/popart_portrait.py --content=../shared/images/brad_pitt.jpg \
      --style=../shared/images/picasso_selfport1907.jpg --output=outputs/popart.png

Typical time (2-core CPU, whole process, warm compilation cache): 45 s for 256 px, 100 steps
(brad_pitt x picasso_selfport1907 with its mask). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.725, content distance 0.495, CFSD 0.041, SSIM 0.949.
"""

from nst_jax.config.stylize import base_config


def get_config():
  c = base_config()
  c.content_layers = 'block5_conv2'                     # seed report
  c.style_layers = 'block1_conv1,block2_conv2,block3_conv3,block4_conv2,block5_conv3'  # "on a whim"
  c.content_weight = 2.5e-8                             # seed report (Keras-example scale)
  c.style_weight = 1e-2
  c.tv_weight = 1e-2
  c.loss_norm = 'keras'                                 # built on the Keras example's losses
  c.tv_type = 'keras'
  c.init = 'content'
  c.size = 512
  c.optimizer.name = 'rmsprop'                          # RMSProp lr 0.1, exponential decay
  c.optimizer.learning_rate = 0.1
  c.optimizer.schedule = 'exponential'
  c.optimizer.decay_steps = 100                         # Keras ExponentialDecay as in the example
  c.optimizer.decay_rate = 0.96
  c.optimizer.eps = 1e-7                                # Keras RMSprop default
  c.num_steps = 1000
  c.log_every = 100
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
