"""The TensorFlow "Neural style transfer" tutorial (tensorflow.org/tutorials/generative/style_transfer).

  python run.py --config=configs/tf_tutorial.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/tf.png

Typical time (2-core CPU, whole process, warm compilation cache): 37 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.485, content distance 1.242, CFSD 0.793, SSIM 0.175.
"""

from nst_jax.config.stylize import base_config


def get_config():
  c = base_config()
  c.content_layers = 'block5_conv2'                     # tutorial
  c.style_layers = 'block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1'
  c.style_weight = 1e-2                                 # tutorial
  c.content_weight = 1e4
  c.tv_weight = 30.0                                    # tutorial, "total variation weight"
  c.loss_norm = 'tf_tutorial'                           # Gram / num_locations, mean squared errors
  c.tv_type = 'l1'                                      # tf.image.total_variation
  c.image_range = 1.0                                   # tutorial optimises a 0..1 image
  c.pooling = 'max'
  c.init = 'content'
  c.size = 512                                          # tutorial: max_dim = 512
  c.optimizer.name = 'adam'                             # Adam(0.02, beta_1=0.99, epsilon=1e-1)
  c.optimizer.learning_rate = 0.02
  c.optimizer.b1 = 0.99
  c.optimizer.eps = 0.1
  c.num_steps = 1000                                    # tutorial: 10 epochs x 100 steps
  c.log_every = 100
  c.conv_impl = 'auto'                                 # Winograd on CPU (README: Performance)
  return c
