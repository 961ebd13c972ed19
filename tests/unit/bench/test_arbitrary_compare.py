"""The arbitrary-style comparison's candidate list (bench.arbitrary --candidates)."""

import numpy as np
import pytest

from nst_jax.bench import arbitrary
from nst_jax.errors import ConfigError


def test_parse_candidates_methods_and_decoders():
  assert arbitrary.parse_candidates('ghiasi, adain,wct:runs/dec,adain:runs/dec') == [
      ('ghiasi', None), ('adain', None), ('wct', 'runs/dec'), ('adain', 'runs/dec')]
  assert arbitrary._label('wct', 'runs/dec') == 'wct:dec'


@pytest.mark.parametrize('spec, needle', [
    ('ghiasi,adian', "'adian'"),            # unknown method, the valid ones listed
    ('adain', 'at least two'),              # nothing to compare against
    ('ghiasi:some/dir,adain', 'no decoder'),
])
def test_parse_candidates_errors(spec, needle):
  with pytest.raises(ConfigError, match=needle) as e:
    arbitrary.parse_candidates(spec)
  if 'adian' in spec:
    assert 'ghiasi, adain, wct' in str(e.value)


def test_mean_luma_weights():
  img = np.zeros((2, 2, 3), np.uint8)
  img[..., 1] = 100
  assert arbitrary._mean_luma(img) == pytest.approx(58.7)
