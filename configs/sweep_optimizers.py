"""The seed report's optimiser grid: twelve optimiser settings side by side, one batched sweep.

  python run.py --config=configs/sweep_optimizers.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_optimizers

Base: the Keras example (configs/keras_example.py), whose losses the seed report used.
"With decay" is Keras' ExponentialDecay(lr, 100, 0.96); settings without it are constant. One
compiled program per optimiser kind (constant and decayed rates share one, as decay_rate = 1).
Rows of the contact sheet: the optimiser.
"""

from configs import keras_example

# (optimiser, learning rate, schedule), as listed in the seed report.
SETTINGS = (
    ('sgd', 100., 'constant'), ('sgd', 10., 'constant'),
    ('adam', 0.001, 'constant'), ('adam', 0.01, 'constant'), ('adam', 0.1, 'exponential'),
    ('adam', 0.75, 'exponential'),
    ('rmsprop', 0.01, 'constant'), ('rmsprop', 0.1, 'constant'), ('rmsprop', 0.5, 'exponential'),
    ('nadam', 0.01, 'constant'), ('nadam', 0.1, 'constant'), ('nadam', 0.5, 'exponential'),
)


def get_config():
  c = keras_example.get_config()
  c.size = 256
  c.num_steps = 500
  c.optimizer.eps = 1e-7                                # Keras' Adam / RMSprop / Nadam default
  c.sweep.mode = 'zip'
  c.sweep.axes = ';'.join([
      'optimizer.name=' + ','.join(s[0] for s in SETTINGS),
      'optimizer.learning_rate=' + ','.join(f'{s[1]:g}' for s in SETTINGS),
      'optimizer.schedule=' + ','.join(s[2] for s in SETTINGS)])
  c.sweep.rows = 'optimizer.name'
  return c
