"""The seed report's loss-weight grid: content x style x TV weights (3 x 3 x 2), one program.

  python run.py --config=configs/sweep_loss_weights.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_loss_weights

Base: the Keras example's losses and layers (whose weight scale the grid spans) with the seed
report's chosen optimiser, RMSProp 0.1 with exponential decay (configs/popart_portrait.py).
Contact sheet: one row per content weight, columns style x TV.
"""

from configs import keras_example


def get_config():
  c = keras_example.get_config()
  c.size = 256
  c.num_steps = 500
  c.optimizer.name = 'rmsprop'                          # RMSProp lr 0.1, exponential decay
  c.optimizer.learning_rate = 0.1
  c.optimizer.schedule = 'exponential'
  c.optimizer.eps = 1e-7                                # Keras RMSprop default
  c.sweep.mode = 'product'
  c.sweep.axes = ('content_weight=2.5e-10,2.5e-8,2.5e-2; style_weight=1e-10,1e-6,1e-2; '
                  'tv_weight=1e-6,1e-2')
  c.sweep.max_batch = 18
  return c
