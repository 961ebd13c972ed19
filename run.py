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

Any config field can be overridden as --config.FIELD=VALUE; the flags below set the config field
of the same name (an error if the config has no such field). The config's ``job`` field picks
what runs (nst_jax/jobs/__init__.py). Errors in the inputs print one line and exit with status 1;
Ctrl-C stops after the current chunk, saves, prints how to resume and exits with status 130.
"""

import sys

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from nst_jax.config import schema
from nst_jax.io import log
from nst_jax.runtime import interrupt
from nst_jax import jobs
from nst_jax.errors import NSTError

def _parse_flags(argv):
  """absl's flag parsing, with misspelt --config.FIELD overrides as one `error:` line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except (AttributeError, KeyError, TypeError, ValueError) as e:  # from config_flags overrides
    print(f'error: {_override_error(argv, e)}', file=sys.stderr)
    sys.exit(1)


def _override_error(argv, e: Exception) -> str:
  """Names the bad --config.FIELD override and the nearest valid field."""
  path = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), DEFAULT_CONFIG)
  try:
    config = schema.load_preset(path)
  except Exception:  # pylint: disable=broad-except
    return str(e).splitlines()[0].strip('\'"')
  for a in argv:
    if a.startswith('--config.'):
      field = a[len('--config.'):].split('=')[0]
      if not schema.has_field(config, field):
        return str(schema.unknown_field(config, field))
  return f'invalid config override: {str(e).splitlines()[0]}'


DEFAULT_CONFIG = 'configs/default.py'
try:  # config_flags applies --config.FIELD overrides right here, while defining the flag.
  _CONFIG = config_flags.DEFINE_config_file('config', DEFAULT_CONFIG, 'Preset config file.')
except (AttributeError, KeyError, TypeError, ValueError) as _e:
  if __name__ != '__main__':
    raise
  print(f'error: {_override_error(sys.argv, _e)}', file=sys.stderr)
  sys.exit(1)

# Each flag sets the config field of the same name. Add a flag with one line here.
FIELD_FLAGS = {
    'content': 'Content image (config.content).',
    'style': 'Style image(s), comma separated (config.style).',
    'output': 'Output image path (config.output).',
    'weights': 'VGG19 weights .h5/.npz (config.weights).',
    'mask': 'Region mask: white = styled, black = kept from the content (config.mask).',
    'masks': 'One mask per --style image, comma separated (config.masks).',
    'style_masks': 'One mask per style image selecting the part to use; empty entries = whole '
                   'image (config.style_masks).',
    'output_dir': 'Output directory of sweeps and training runs (config.output_dir).',
    'model': 'Trained feed-forward model directory (config.model; configs/fast.py).',
    'profile_dir': 'jax.profiler trace directory (config.profile_dir).',
}
for _name, _help in FIELD_FLAGS.items():
  flags.DEFINE_string(_name, None, _help)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # Other libraries' INFO lines only when asked for (--verbosity=1 or -v 0); ours always.
  log.setup(flags.FLAGS.verbosity if flags.FLAGS['verbosity'].present else None)
  config = _CONFIG.value
  if not isinstance(config, ml_collections.ConfigDict):  # config_flags defers load errors
    path = next((a.split('=', 1)[1] for a in sys.argv if a.startswith('--config=')),
                DEFAULT_CONFIG)
    print(f'error: cannot load the config file {path}; give --config=configs/NAME.py '
          '(see configs/)', file=sys.stderr)
    sys.exit(1)
  try:
    schema.apply_fields(config, {n: flags.FLAGS[n].value for n in FIELD_FLAGS})
    jobs.run(config)
  except interrupt.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
  except NSTError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
