"""Texture synthesis (Gatys, Ecker & Bethge 2015, "Texture Synthesis Using CNNs"): style loss only.

  python run.py --config=configs/texture_synthesis.py --style=../shared/images/starry_night.jpg \
      --output=outputs/texture.png

Typical time (2-core CPU, whole process, warm compilation cache): 43 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.378, content distance 1.617, CFSD 1.058, SSIM 0.036.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                            # the algorithm it builds on
  c.mode = 'texture_synthesis'                          # no content term
  c.style_weight = 1.0
  c.content_weight = 0.0
  c.size = 256
  return c
