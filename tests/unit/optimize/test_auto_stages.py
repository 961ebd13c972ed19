"""stages='auto': coarse-to-fine only above 256 px and from 125 steps (the rule the default
preset takes from the 512 px quality-at-time curves)."""

import ml_collections
import pytest

from nst_jax.config import schema
from nst_jax.errors import ConfigError
from nst_jax.losses import controls
from nst_jax.optimize import stages


@pytest.mark.parametrize('size,steps,want', [
    (256, 500, []),                              # 256 px: one scale
    (512, 100, []),                              # too few steps: one scale
    (512, 125, [(256, 75), (512, 50)]),          # the measured schedule
    (512, 500, [(256, 300), (512, 200)]),        # the default preset's
    (1024, 200, [(512, 120), (1024, 80)]),       # half the size
    (300, 125, [(256, 75), (300, 50)]),          # never below 256 px
])
def test_auto_rule(size, steps, want):
  assert controls.parse_stages('auto', size, steps) == want
  assert sum(n for _, n in want) in (0, steps)


def test_stage_configs_resolve_auto():
  c = schema.lock(ml_collections.ConfigDict({'size': 512, 'num_steps': 500, 'stages': 'auto',
                                             'init': 'content', 'resume': True}))
  got = stages.stage_configs(c)
  assert [(s.size, s.num_steps, s.init, s.stages) for s in got] == [
      (256, 300, 'content', ''), (512, 200, 'image', '')]
  c.num_steps = 50
  assert stages.stage_configs(c) == [c]


def test_bad_stages_name_auto():
  with pytest.raises(ConfigError, match='or be "auto"'):
    controls.parse_stages('automatic', 512, 500)
