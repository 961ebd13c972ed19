"""Neural style transfer from the command line.

  python run.py --config=configs/gatys2015.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/tubingen.png \
      --config.size=256 --config.num_steps=300

Any config field can be overridden as --config.FIELD=VALUE. Errors in the inputs print one line
and exit with status 1.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from nst_jax import runner
from nst_jax.errors import NSTError

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/gatys2015.py', 'Preset config file.')
_CONTENT = flags.DEFINE_string('content', None, 'Content image (overrides config.content).')
_STYLE = flags.DEFINE_string('style', None, 'Style image(s), comma separated (config.style).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output PNG path (config.output).')
_WEIGHTS = flags.DEFINE_string('weights', None, 'VGG19 weights .h5/.npz (config.weights).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  for field, flag in (('content', _CONTENT), ('style', _STYLE), ('output', _OUTPUT),
                      ('weights', _WEIGHTS)):
    if flag.value is not None:
      config[field] = flag.value
  try:
    runner.run(config)
  except NSTError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
