"""Chollet's Keras neural style transfer example (keras.io/examples/generative/neural_style_transfer).

  python run.py --config=configs/keras_example.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/keras.png

Typical time (2-core CPU, whole process, warm compilation cache): 37 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.373, content distance 1.385, CFSD 0.782, SSIM 0.296.
"""

from nst_jax.config.stylize import base_config


def get_config():
  c = base_config()
  c.content_layers = 'block5_conv2'                     # Keras example
  c.style_layers = 'block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1'
  c.content_weight = 2.5e-8                             # Keras example
  c.style_weight = 1e-6
  c.tv_weight = 1e-6
  c.loss_norm = 'keras'                                 # style / (4 * 3^2 * (H*W)^2)
  c.tv_type = 'keras'                                   # sum((dx^2 + dy^2)^1.25)
  c.pooling = 'max'
  c.init = 'content'                                    # the example starts from the photo
  c.size = 400                                          # example: img_nrows = 400 (height)
  c.optimizer.name = 'sgd'                              # SGD, ExponentialDecay(100, 100, 0.96)
  c.optimizer.learning_rate = 100.0
  c.optimizer.schedule = 'exponential'
  c.optimizer.decay_steps = 100
  c.optimizer.decay_rate = 0.96
  c.num_steps = 4000                                    # example: iterations = 4000
  c.log_every = 100
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
