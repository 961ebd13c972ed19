"""Colour control (Gatys et al. 2016, Sec. 4): style transfer in luminance only.

The optimisation sees grey images (the style's luminance matched to the content's mean and
variance); the content's chroma (YIQ I/Q) is put back, so the photo keeps its colours. Runs as is
from the project root:

  python run.py --config=configs/luminance_only.py --output=outputs/luminance.png

Alternatives: --config.color_control=match_style (the style's colours mapped onto the content's
mean and covariance before the run; --config.color_match_mode=eigen) or original_colors (the
content's chroma put back after an ordinary run).

Typical time (2-core CPU, whole process, warm compilation cache): 43 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.649, content distance 0.570, CFSD 0.074, SSIM 0.760.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                            # Gatys et al. 2015 settings
  c.content = '../shared/images/tubingen.jpg'
  c.style = '../shared/images/starry_night.jpg'
  c.color_control = 'luminance'                         # Gatys et al. 2016, Sec. 4
  c.init = 'content'
  c.num_steps = 300
  c.size = 384
  return c
