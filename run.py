"""Neural style transfer from the command line.

  python run.py --config=configs/gatys2015.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/tubingen.png \
      --config.size=256 --config.num_steps=300

Sweeps (configs/sweep_*.py, or any preset with --config.sweep.axes=...) run as batched grids
and write PNGs, a contact sheet and results.csv/json into --output_dir:

  python run.py --config=configs/sweep_loss_weights.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output_dir=outputs/sweep_weights

Perceptual control (masks, colour, coarse-to-fine, Novak & Nikulin; see README.md):

  python run.py --config=configs/popart_portrait.py --content=../shared/images/brad_pitt.jpg \
      --style=../shared/images/picasso_selfport1907.jpg \
      --mask=../shared/images/brad_pitt_mask.png --output=outputs/popart.png

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
_MASK = flags.DEFINE_string('mask', None, 'Region mask: white = styled, black = kept from the '
                            'content (config.mask).')
_MASKS = flags.DEFINE_string('masks', None, 'One mask per --style image, comma separated '
                             '(config.masks).')
_STYLE_MASKS = flags.DEFINE_string('style_masks', None, 'One mask per style image selecting the '
                                   'part to use; empty entries = whole image (config.style_masks).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Sweep output directory (sweep configs).')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', None, 'jax.profiler trace dir (profile_dir).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  for field, flag in (('content', _CONTENT), ('style', _STYLE), ('output', _OUTPUT),
                      ('weights', _WEIGHTS), ('profile_dir', _PROFILE_DIR), ('mask', _MASK),
                      ('masks', _MASKS), ('style_masks', _STYLE_MASKS)):
    if flag.value is not None:
      config[field] = flag.value
  try:
    if 'sweep' in config and config.sweep.axes:  # A grid: one batched program per group.
      from nst_jax import sweep  # pylint: disable=g-import-not-at-top
      sweep.run_sweep(config, _OUTPUT_DIR.value)
    else:
      runner.run(config)
  except NSTError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
